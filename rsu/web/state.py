"""What the live page shows, built from the unit's local messages: pure logic, bounded state.

`LiveState.absorb` takes one MQTT message (topic, payload, arrival time); `snapshot` turns the
newest picture into plain JSON-ready data. Times shown as ages use the arrival clock (monotonic),
countdowns use the unit's message clock (`clock_s`), which in a fast simulation is simulated time.
"""

from __future__ import annotations

import re
from collections import Counter, deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rsu_contracts.config.model import SiteConfig
from rsu_contracts.messages import (
    Aggregate,
    CollisionWarning,
    DetectorStates,
    Message,
    SignalState,
    Spat,
    TrackList,
    UnitHealth,
    WarningStatus,
    WorldStatistics,
    decode,
)
from rsu_contracts.topics import (
    AGGREGATES,
    DETECTORS,
    HEALTH,
    SIGNAL_STATE,
    SIM_STATISTICS,
    SPAT_SENT,
    TRACKS,
    WARNINGS_SENT,
    Topics,
    TopicSpec,
)

WARNING_FEED_LENGTH = 40
# A warning that neither ends nor updates for this long is shown as over (its stage may have restarted).
WARNING_EXPIRY_S = 5.0
# The JSON topics the page decodes and shows (the camera preview JPEG goes to rsu.web.hub). SPaT and
# warnings are the V2X stage's internal copies: what vehicles get may be UPER or on the china
# layout's topics (v2x.encodings, v2x.topic_layout), which the page never reads.
PAGE_TOPICS: tuple[TopicSpec, ...] = (
    TRACKS,
    DETECTORS,
    SIGNAL_STATE,
    SPAT_SENT,
    WARNINGS_SENT,
    HEALTH,
    SIM_STATISTICS,
    AGGREGATES,
)


# The controller's reasons name instants as seconds since the epoch ("until t=1796350362.4 s").
_EPOCH_INSTANT = re.compile(r"\bt=(\d{9,}(?:\.\d+)?) s\b")


def readable_reason(reason: str) -> str:
    """The reason with every epoch instant as a UTC time of day ("until 13:12:42.4 UTC")."""

    def clock(match: re.Match[str]) -> str:
        instant = datetime.fromtimestamp(float(match.group(1)), tz=UTC)
        return f"{instant:%H:%M:%S}.{instant.microsecond // 100_000} UTC"

    return _EPOCH_INSTANT.sub(clock, reason)


@dataclass(frozen=True)
class Arrival:
    """When a message arrived: wall clock (for ages against capture times) and monotonic (for ages)."""

    wall_s: float
    monotonic_s: float


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


class LiveState:
    """The newest tracks, signals, lanes, counts, warnings and health of one unit."""

    def __init__(self, site: SiteConfig, realtime: bool = True) -> None:
        self.site = site
        self.realtime = realtime
        self.topics = Topics.for_site(site)
        self.schemas: dict[str, type[Message]] = self.topics.decoders(PAGE_TOPICS)
        self.lane_group = {lane.id: lane.signal_group for lane in site.lanes}
        self.tracks: TrackList | None = None
        self.detectors: DetectorStates | None = None
        self.signal: SignalState | None = None
        self.spat: Spat | None = None
        self.health: UnitHealth | None = None
        self.world: WorldStatistics | None = None
        self.aggregate: Aggregate | None = None
        self.status_text: str | None = None
        self.arrivals: dict[str, Arrival] = {}
        self.line_counts: dict[str, Counter[str]] = {line.id: Counter() for line in site.counting_lines}
        self.lane_counts: Counter[str] = Counter()
        self.active_warnings: dict[str, tuple[CollisionWarning, float]] = {}
        self.warning_feed: deque[dict[str, Any]] = deque(maxlen=WARNING_FEED_LENGTH)
        self.warnings_by_kind: Counter[str] = Counter()
        # The message clock: the newest capture time seen (used when not running in real time).
        self.newest_capture_s = 0.0

    def absorb(self, topic: str, payload: bytes, arrival: Arrival) -> Message | None:
        """Decode and apply one message; None for topics the page does not show. Raises MessageError."""
        if topic == self.topics.status:
            self.status_text = payload.decode(errors="replace")[:32]
            self.arrivals["status"] = arrival
            return None
        schema = self.schemas.get(topic)
        if schema is None:
            return None
        message = decode(schema, payload)
        self.arrivals[schema.SCHEMA] = arrival
        if not isinstance(message, UnitHealth | Aggregate):
            self.newest_capture_s = max(self.newest_capture_s, message.capture_time_s)
        if isinstance(message, TrackList):
            self.tracks = message
        elif isinstance(message, DetectorStates):
            self._absorb_detectors(message)
        elif isinstance(message, SignalState):
            self.signal = message
        elif isinstance(message, Spat):
            self.spat = message
        elif isinstance(message, CollisionWarning):
            self._absorb_warning(message, arrival)
        elif isinstance(message, UnitHealth):
            self.health = message
        elif isinstance(message, WorldStatistics):
            self.world = message
        elif isinstance(message, Aggregate):
            self.aggregate = message
        return message

    def _absorb_detectors(self, message: DetectorStates) -> None:
        if message.valid or self.detectors is None:
            self.detectors = message
        else:
            # Keep the last lanes on screen but show that they are no longer valid.
            self.detectors = self.detectors.model_copy(update={"valid": False})
        for crossing in message.crossings:
            self.line_counts.setdefault(crossing.line_id, Counter())[crossing.road_user.value] += 1
            if crossing.lane_id is not None:
                self.lane_counts[crossing.lane_id] += 1

    def _absorb_warning(self, warning: CollisionWarning, arrival: Arrival) -> None:
        if warning.status is WarningStatus.ENDED:
            self.active_warnings.pop(warning.warning_id, None)
        else:
            self.active_warnings[warning.warning_id] = (warning, arrival.monotonic_s)
        if warning.status is WarningStatus.NEW:
            self.warnings_by_kind[warning.kind.value] += 1
        entry = _warning_entry(warning)
        for i, existing in enumerate(self.warning_feed):
            if existing["warning_id"] == warning.warning_id:
                # One line per warning: its newest state replaces the old one in place.
                entry["first_time_s"] = existing["first_time_s"]
                self.warning_feed[i] = entry
                return
        self.warning_feed.appendleft(entry)

    def clock_s(self, wall_s: float) -> float:
        return wall_s if self.realtime else self.newest_capture_s

    def _age(self, schema: str, now_monotonic_s: float) -> float | None:
        arrival = self.arrivals.get(schema)
        return None if arrival is None else round(max(0.0, now_monotonic_s - arrival.monotonic_s), 2)

    def snapshot(self, now_wall_s: float, now_monotonic_s: float) -> dict[str, Any]:
        clock = self.clock_s(now_wall_s)
        for warning_id, (_, seen) in list(self.active_warnings.items()):
            if now_monotonic_s - seen > WARNING_EXPIRY_S:
                del self.active_warnings[warning_id]
        return {
            "unit_id": self.site.unit_id,
            "clock_s": clock,
            "realtime": self.realtime,
            # Only a simulated junction is "(simulated)"; a recorded clip runs on its own times.
            "simulated": self.site.is_simulated,
            "status": self.status_text,
            "tracks": self._tracks_view(now_monotonic_s),
            "signals": self._signals_view(clock, now_monotonic_s),
            "lanes": self._lanes_view(now_monotonic_s),
            "crosswalks": [c.model_dump() for c in self.detectors.crosswalks] if self.detectors else [],
            "lines": [
                {"id": line_id, "total": sum(counts.values()), "by_class": dict(counts)}
                for line_id, counts in self.line_counts.items()
            ],
            "warnings": {
                "active": [_warning_entry(w) for w, _ in self.active_warnings.values()],
                "feed": list(self.warning_feed),
                "by_kind": dict(self.warnings_by_kind),
            },
            "health": self._health_view(now_monotonic_s),
            "world": None if self.world is None else self.world.model_dump(exclude={"schema_name", "schema_version"}),
            "aggregate": self._aggregate_view(),
        }

    def _tracks_view(self, now_monotonic_s: float) -> dict[str, Any] | None:
        if self.tracks is None:
            return None
        age = self._age(TrackList.SCHEMA, now_monotonic_s)
        return {
            "camera_id": self.tracks.camera_id,
            "seq": self.tracks.seq,
            "capture_time_s": self.tracks.capture_time_s,
            "age_s": age,
            "stale": TRACKS.is_stale(age),
            "objects": [
                {
                    "id": o.track_id,
                    "type": o.road_user.value,
                    "x": round(o.x_m, 2),
                    "y": round(o.y_m, 2),
                    "speed": round(o.speed_mps, 2),
                    "heading": round(o.heading_deg, 1),
                    "length": o.length_m,
                    "width": o.width_m,
                    "lane": o.lane_id,
                }
                for o in self.tracks.objects
            ],
        }

    def _signals_view(self, clock: float, now_monotonic_s: float) -> dict[str, Any] | None:
        if self.signal is None:
            return None
        spat = {m.signal_group: m for m in self.spat.movements} if self.spat is not None else {}
        by_id = {g.signal_group: g for g in self.signal.groups}
        groups = []
        for config in self.site.signal_groups:
            state = by_id.get(config.id)
            if state is None:
                continue
            movement = spat.get(config.id)
            groups.append(
                {
                    "id": config.id,
                    "kind": config.kind.value,
                    "indication": state.indication.value,
                    "since_s": state.since_s,
                    "elapsed_s": _round(clock - state.since_s, 1),
                    "min_end_s": _round(state.min_end_time_s - clock, 1),
                    "max_end_s": _round(state.max_end_time_s - clock, 1),
                    "likely_s": _round(max(0.0, state.likely_time_s - clock), 1),
                    "spat_state": movement.event_state if movement is not None else None,
                }
            )
        age = self._age(SignalState.SCHEMA, now_monotonic_s)
        return {
            "mode": self.signal.mode.value,
            "strategy": self.signal.strategy,
            "reason": readable_reason(self.signal.reason),
            "seq": self.signal.seq,
            "age_s": age,
            "stale": SIGNAL_STATE.is_stale(age),
            "spat_age_s": self._age(Spat.SCHEMA, now_monotonic_s),
            "groups": groups,
        }

    def _lanes_view(self, now_monotonic_s: float) -> dict[str, Any] | None:
        if self.detectors is None:
            return None
        age = self._age(DetectorStates.SCHEMA, now_monotonic_s)
        return {
            "valid": self.detectors.valid,
            "age_s": age,
            "stale": DETECTORS.is_stale(age),
            "lanes": [
                {
                    "id": lane.lane_id,
                    "signal_group": self.lane_group.get(lane.lane_id),
                    "occupied": lane.stop_bar_occupied,
                    "queue_m": round(lane.queue_length_m, 1),
                    "queued": lane.queued_vehicles,
                    "approaching": lane.approaching_vehicles,
                    "max_wait_s": round(lane.max_wait_s, 1),
                    "count": self.lane_counts.get(lane.lane_id, 0),
                }
                for lane in self.detectors.lanes
            ],
        }

    def _health_view(self, now_monotonic_s: float) -> dict[str, Any] | None:
        if self.health is None:
            return None
        return {
            "status": self.health.status.value,
            "age_s": self._age(UnitHealth.SCHEMA, now_monotonic_s),
            "redis_connected": self.health.redis_connected,
            "problems": list(self.health.problems),
            "stages": [s.model_dump() for s in self.health.stages],
            "cabinet": None if self.health.cabinet is None else self.health.cabinet.model_dump(mode="json"),
        }

    def _aggregate_view(self) -> dict[str, Any] | None:
        if self.aggregate is None:
            return None
        return {
            "interval_start_s": self.aggregate.interval_start_s,
            "interval_s": self.aggregate.interval_s,
            "lanes": [
                {"id": lane.lane_id, "total": sum(lane.counts_by_class.values()), "mean_queue_m": lane.mean_queue_m}
                for lane in self.aggregate.lanes
            ],
            "lines": [
                {"id": line.line_id, "total": sum(line.counts_by_class.values())} for line in self.aggregate.lines
            ],
        }


def _warning_entry(warning: CollisionWarning) -> dict[str, Any]:
    return {
        "warning_id": warning.warning_id,
        "kind": warning.kind.value,
        "severity": warning.severity.value,
        "status": warning.status.value,
        "ttc_s": _round(warning.ttc_s),
        "time_s": warning.capture_time_s,
        "first_time_s": warning.capture_time_s,
        "x": round(warning.conflict_x_m, 1),
        "y": round(warning.conflict_y_m, 1),
        "participants": [
            {"id": p.track_id, "type": p.road_user.value, "speed": round(p.speed_mps, 1)} for p in warning.participants
        ],
    }
