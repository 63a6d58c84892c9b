"""Prometheus metrics of the unit, from the messages on its local broker and its health message.

The web stage feeds every message it receives to `UnitMetrics` and serves `render()` at /metrics
(Prometheus text exposition format 0.0.4). No client library: the format is a few lines of text,
and the unit's set of metrics is fixed and small.

What is measured, and where it comes from:
- frames: TrackList messages (one per processed camera frame), per camera, and their rate;
- drops: gaps in each publisher's sequence numbers (messages lost between a stage and the web
  stage), and messages the web stage's own MQTT inbox had to drop;
- per-stage latency: publish time minus capture time of each stage's output message, and the age
  of each message when it reached the web stage;
- queue lengths: per lane from DetectorStates;
- MQTT and outbox backlog: the web stage's inbox, and the uplink's Redis outbox;
- restarts, liveness and heartbeat age of every stage: from UnitHealth;
- inputs each stage refused (rsu.runtime.input_guard), per stage, topic and reason: from UnitHealth;
- the NTCIP signal cabinet (site.cabinet): reachable, in control, flash, its state, SNMP errors,
  writes and polls, the age of the last good poll, and the signal groups it shows otherwise than
  asked, by kind (ignored force-off, own plan, not served): from UnitHealth.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rsu_contracts.messages import (
    Aggregate,
    CabinetReport,
    CabinetState,
    CollisionWarning,
    DetectorStates,
    DivergenceKind,
    Message,
    SignalState,
    Spat,
    TrackList,
    UnitHealth,
    WarningStatus,
    WorldStatistics,
)
from rsu_contracts.messages.perception import CameraDetections

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Which stage produces each schema: its latency is that stage's processing time.
STAGE_OF_SCHEMA: dict[str, str] = {
    CameraDetections.SCHEMA: "world",
    TrackList.SCHEMA: "perception",
    DetectorStates.SCHEMA: "perception",
    SignalState.SCHEMA: "controller",
    Spat.SCHEMA: "v2x",
    CollisionWarning.SCHEMA: "v2x",
    Aggregate.SCHEMA: "uplink",
    UnitHealth.SCHEMA: "supervisor",
    WorldStatistics.SCHEMA: "world",
}
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
FPS_WINDOW = 30

Labels = tuple[tuple[str, str], ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _format_labels(labels: Labels, extra: Labels = ()) -> str:
    pairs = labels + extra
    if not pairs:
        return ""
    return "{" + ",".join(f'{name}="{_escape(value)}"' for name, value in pairs) + "}"


def _format_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


@dataclass
class _Histogram:
    buckets: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    count: int = 0

    def observe(self, value: float) -> None:
        if not self.counts:
            self.counts = [0] * len(self.buckets)
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[i] += 1
        self.total += value
        self.count += 1


class MetricFamily:
    """One metric name with its samples per label set: a counter, a gauge or a histogram."""

    def __init__(self, name: str, kind: str, help_text: str, buckets: Sequence[float] = LATENCY_BUCKETS_S) -> None:
        if kind not in ("counter", "gauge", "histogram"):
            raise ValueError(f"unknown metric kind {kind!r}")
        self.name = name
        self.kind = kind
        self.help_text = help_text
        self.buckets = tuple(buckets)
        self.values: dict[Labels, float] = {}
        self.histograms: dict[Labels, _Histogram] = {}

    @staticmethod
    def _key(labels: dict[str, str] | None) -> Labels:
        return tuple(sorted((labels or {}).items()))

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        key = self._key(labels)
        self.values[key] = self.values.get(key, 0.0) + amount

    def set(self, value: float, **labels: str) -> None:
        self.values[self._key(labels)] = value

    def observe(self, value: float, **labels: str) -> None:
        self.histograms.setdefault(self._key(labels), _Histogram(self.buckets)).observe(value)

    def clear(self) -> None:
        self.values.clear()

    def get(self, **labels: str) -> float | None:
        return self.values.get(self._key(labels))

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {_escape(self.help_text)}", f"# TYPE {self.name} {self.kind}"]
        if self.kind == "histogram":
            for labels, histogram in sorted(self.histograms.items()):
                counts = histogram.counts or [0] * len(self.buckets)
                for bound, count in zip(self.buckets, counts, strict=True):
                    lines.append(f"{self.name}_bucket{_format_labels(labels, (('le', _format_value(bound)),))} {count}")
                lines.append(f"{self.name}_bucket{_format_labels(labels, (('le', '+Inf'),))} {histogram.count}")
                lines.append(f"{self.name}_sum{_format_labels(labels)} {_format_value(histogram.total)}")
                lines.append(f"{self.name}_count{_format_labels(labels)} {histogram.count}")
        else:
            for labels, value in sorted(self.values.items()):
                lines.append(f"{self.name}{_format_labels(labels)} {_format_value(value)}")
        return lines


class MetricsRegistry:
    def __init__(self) -> None:
        self.families: dict[str, MetricFamily] = {}

    def _add(self, name: str, kind: str, help_text: str) -> MetricFamily:
        if name in self.families:
            raise ValueError(f"metric {name} is registered twice")
        family = MetricFamily(name, kind, help_text)
        self.families[name] = family
        return family

    def counter(self, name: str, help_text: str) -> MetricFamily:
        return self._add(name, "counter", help_text)

    def gauge(self, name: str, help_text: str) -> MetricFamily:
        return self._add(name, "gauge", help_text)

    def histogram(self, name: str, help_text: str) -> MetricFamily:
        return self._add(name, "histogram", help_text)

    def render(self) -> str:
        lines: list[str] = []
        for family in self.families.values():
            lines.extend(family.render())
        return "\n".join(lines) + "\n"


class UnitMetrics:
    """The unit's metrics; thread-safe (the MQTT feed writes while the web server renders)."""

    def __init__(self, unit_id: str) -> None:
        self.unit_id = unit_id
        self._lock = threading.Lock()
        self._last_seq: dict[tuple[str, str], int] = {}
        self._frame_times: dict[str, deque[float]] = {}
        # Recent latency per stage (exponentially weighted), for the page's health panel.
        self._recent_latency_s: dict[str, float] = {}
        registry = self.registry = MetricsRegistry()
        self.messages = registry.counter("rsu_messages_total", "Messages received from the unit's local topics")
        self.gaps = registry.counter(
            "rsu_message_gaps_total", "Messages missing from a publisher's sequence (lost between a stage and the web)"
        )
        self.invalid = registry.counter("rsu_invalid_messages_total", "Messages that did not match their schema")
        self.frames = registry.counter("rsu_frames_total", "Camera frames processed by perception (TrackList messages)")
        self.fps = registry.gauge("rsu_frames_per_second", "Processed frames per second over the last frames")
        self.tracks = registry.gauge("rsu_tracks", "Confirmed tracks in the newest TrackList")
        self.stage_latency = registry.histogram(
            "rsu_stage_latency_seconds", "Publish time minus capture time of a stage's output"
        )
        self.message_age = registry.gauge(
            "rsu_message_age_seconds", "Receive time minus capture time of the newest message (live runs)"
        )
        self.queue_vehicles = registry.gauge("rsu_lane_queue_vehicles", "Queued vehicles per lane")
        self.queue_length = registry.gauge("rsu_lane_queue_length_meters", "Queue length per lane")
        self.stop_bar = registry.gauge("rsu_lane_stop_bar_occupied", "1 while the lane's stop-bar zone is occupied")
        self.detectors_valid = registry.gauge("rsu_detectors_valid", "1 while detector states are valid")
        self.crossings = registry.counter("rsu_line_crossings_total", "Counting-line crossings by class")
        self.warnings = registry.counter("rsu_warnings_total", "New collision and violation warnings")
        self.signal_green = registry.gauge("rsu_signal_group_green", "1 while the signal group shows green")
        self.controller_mode = registry.gauge("rsu_controller_mode", "1 for the controller's current mode")
        self.stage_up = registry.gauge("rsu_stage_up", "1 while the stage process is alive")
        self.restarts = registry.counter("rsu_stage_restarts_total", "Stage restarts by the supervisor")
        self.heartbeat_age = registry.gauge("rsu_stage_heartbeat_age_seconds", "Seconds since the stage's heartbeat")
        self.unit_status = registry.gauge("rsu_unit_status", "1 for the unit's current status")
        self.problems = registry.gauge("rsu_unit_problems", "Problems listed in the newest health message")
        self.input_rejections = registry.counter(
            "rsu_input_rejections_total",
            "Local inputs a stage refused (invalid, future, stale, superseded, conflicting greens, ...)",
        )
        self.redis_up = registry.gauge("rsu_redis_up", "1 while the supervisor reaches Redis")
        self.mqtt_connected = registry.gauge("rsu_mqtt_connected", "1 while the web stage is connected to the broker")
        self.mqtt_backlog = registry.gauge(
            "rsu_mqtt_inbox_backlog_messages", "Messages waiting in the web stage's MQTT inbox"
        )
        self.mqtt_dropped = registry.counter(
            "rsu_mqtt_inbox_dropped_total", "Messages the web stage's full MQTT inbox dropped"
        )
        self.outbox_backlog = registry.gauge(
            "rsu_uplink_outbox_backlog_records", "Aggregates waiting in the Redis outbox for the centre"
        )
        self.outbox_trimmed = registry.counter(
            "rsu_uplink_outbox_trimmed_total", "Aggregates dropped from a full Redis outbox"
        )
        self.outbox_up = registry.gauge("rsu_uplink_outbox_reachable", "1 while the web stage can read the outbox")
        self.last_message = registry.gauge("rsu_last_message_timestamp_seconds", "Capture time of the newest message")
        self.cabinet_reachable = registry.gauge(
            "rsu_cabinet_reachable", "1 while the signal cabinet answers SNMP with the configured community"
        )
        self.cabinet_in_control = registry.gauge(
            "rsu_cabinet_in_control", "1 while the unit's requests are written and the cabinet follows them"
        )
        self.cabinet_flashing = registry.gauge("rsu_cabinet_flashing", "1 while the cabinet reports flash")
        self.cabinet_state = registry.gauge("rsu_cabinet_state", "1 for the cabinet's current state")
        self.cabinet_errors = registry.counter("rsu_cabinet_snmp_errors_total", "Failed SNMP requests to the cabinet")
        self.cabinet_writes = registry.counter("rsu_cabinet_writes_total", "Control writes the cabinet accepted")
        self.cabinet_polls = registry.counter("rsu_cabinet_polls_total", "Good status polls of the cabinet")
        self.cabinet_poll_age = registry.gauge(
            "rsu_cabinet_last_poll_age_seconds", "Seconds since the last good poll of the cabinet"
        )
        self.cabinet_divergent = registry.gauge(
            "rsu_cabinet_divergent_groups", "Signal groups the cabinet shows otherwise than the unit asked, by kind"
        )

    def observe(self, message: Message, received_wall_s: float | None = None) -> None:
        """Account one decoded message. received_wall_s: its arrival time (live runs), for its age."""
        with self._lock:
            self._observe(message, received_wall_s)

    def _observe(self, message: Message, received_wall_s: float | None) -> None:
        schema = message.SCHEMA
        self.messages.inc(schema=schema)
        self._count_gap(schema, message)
        stage = STAGE_OF_SCHEMA.get(schema, "unknown")
        latency = message.publish_time_s - message.capture_time_s
        if latency >= 0:
            self.stage_latency.observe(latency, stage=stage, schema=schema)
            previous = self._recent_latency_s.get(stage)
            self._recent_latency_s[stage] = latency if previous is None else previous + 0.2 * (latency - previous)
        if received_wall_s is not None:
            self.message_age.set(max(0.0, received_wall_s - message.capture_time_s), schema=schema)
        self.last_message.set(message.capture_time_s, schema=schema)
        if isinstance(message, TrackList):
            self._observe_tracks(message, received_wall_s)
        elif isinstance(message, DetectorStates):
            self._observe_detectors(message)
        elif isinstance(message, SignalState):
            for group in message.groups:
                green = 1.0 if group.indication.value == "green" else 0.0
                self.signal_green.set(green, signal_group=group.signal_group)
            self.controller_mode.clear()
            self.controller_mode.set(1.0, mode=message.mode.value)
        elif isinstance(message, CollisionWarning) and message.status is WarningStatus.NEW:
            self.warnings.inc(kind=message.kind.value, severity=message.severity.value)
        elif isinstance(message, UnitHealth):
            self._observe_health(message)

    def _count_gap(self, schema: str, message: Message) -> None:
        key = (schema, message.unit_id)
        previous = self._last_seq.get(key)
        self._last_seq[key] = message.seq
        # A lower sequence number means the publisher restarted: a new sequence, not a gap.
        if previous is not None and message.seq > previous + 1:
            self.gaps.inc(message.seq - previous - 1, schema=schema)

    def _observe_tracks(self, message: TrackList, received_wall_s: float | None) -> None:
        camera = message.camera_id
        self.frames.inc(camera=camera)
        self.tracks.set(len(message.objects), camera=camera)
        times = self._frame_times.setdefault(camera, deque(maxlen=FPS_WINDOW))
        times.append(received_wall_s if received_wall_s is not None else message.capture_time_s)
        if len(times) >= 2 and times[-1] > times[0]:
            self.fps.set((len(times) - 1) / (times[-1] - times[0]), camera=camera)

    def _observe_detectors(self, message: DetectorStates) -> None:
        self.detectors_valid.set(1.0 if message.valid else 0.0, camera=message.camera_id)
        for lane in message.lanes:
            self.queue_vehicles.set(lane.queued_vehicles, lane=lane.lane_id)
            self.queue_length.set(lane.queue_length_m, lane=lane.lane_id)
            self.stop_bar.set(1.0 if lane.stop_bar_occupied else 0.0, lane=lane.lane_id)
        for crossing in message.crossings:
            self.crossings.inc(line=crossing.line_id, road_user=crossing.road_user.value)

    def _observe_health(self, health: UnitHealth) -> None:
        for stage in health.stages:
            self.stage_up.set(1.0 if stage.alive else 0.0, stage=stage.name)
            self.restarts.set(stage.restarts, stage=stage.name)
            if stage.heartbeat_age_s is not None:
                self.heartbeat_age.set(stage.heartbeat_age_s, stage=stage.name)
        self.unit_status.clear()
        self.unit_status.set(1.0, status=health.status.value)
        self.problems.set(len(health.problems))
        for rejection in health.rejections:
            self.input_rejections.set(
                rejection.count, stage=rejection.stage, topic=rejection.topic, reason=rejection.reason
            )
        self.redis_up.set(1.0 if health.redis_connected else 0.0)
        if health.cabinet is not None:
            self._observe_cabinet(health.cabinet)

    def _observe_cabinet(self, cabinet: CabinetReport) -> None:
        address = cabinet.address
        self.cabinet_reachable.set(1.0 if cabinet.reachable else 0.0, cabinet=address)
        self.cabinet_in_control.set(1.0 if cabinet.in_control else 0.0, cabinet=address)
        self.cabinet_flashing.set(1.0 if cabinet.flashing else 0.0, cabinet=address)
        self.cabinet_state.clear()
        for state in CabinetState:
            self.cabinet_state.set(1.0 if state is cabinet.state else 0.0, cabinet=address, state=state.value)
        self.cabinet_errors.set(cabinet.snmp_errors, cabinet=address)
        self.cabinet_writes.set(cabinet.writes, cabinet=address)
        self.cabinet_polls.set(cabinet.polls, cabinet=address)
        if cabinet.last_poll_age_s is not None:
            self.cabinet_poll_age.set(cabinet.last_poll_age_s, cabinet=address)
        self.cabinet_divergent.clear()
        for kind in DivergenceKind:
            count = sum(1 for divergence in cabinet.divergences if divergence.kind is kind)
            self.cabinet_divergent.set(count, cabinet=address, kind=kind.value)

    def count_invalid(self, topic: str) -> None:
        with self._lock:
            self.invalid.inc(topic=topic)

    def set_mqtt(self, connected: bool, backlog: int, dropped_total: int) -> None:
        with self._lock:
            self.mqtt_connected.set(1.0 if connected else 0.0)
            self.mqtt_backlog.set(backlog)
            self.mqtt_dropped.set(dropped_total)

    def set_outbox(self, backlog: int | None, trimmed_total: int | None) -> None:
        """None: the outbox could not be read (Redis down)."""
        with self._lock:
            self.outbox_up.set(0.0 if backlog is None else 1.0)
            if backlog is not None:
                self.outbox_backlog.set(backlog)
            if trimmed_total is not None:
                self.outbox_trimmed.set(trimmed_total)

    def render(self) -> str:
        with self._lock:
            return self.registry.render()

    def summary(self) -> dict[str, Any]:
        """The few numbers the page's health panel shows: frame rate, recent latency, drops."""
        with self._lock:
            fps = max(self.fps.values.values(), default=None)
            track_age = self.message_age.get(schema=TrackList.SCHEMA)
            return {
                "fps": None if fps is None else round(fps, 1),
                "latency_ms": {stage: round(1000 * value, 1) for stage, value in self._recent_latency_s.items()},
                "track_age_ms": None if track_age is None else round(1000 * track_age, 1),
                "sequence_gaps": int(sum(self.gaps.values.values())),
                "invalid_messages": int(sum(self.invalid.values.values())),
                "mqtt_dropped": int(self.mqtt_dropped.get() or 0),
            }


def parse_exposition(text: str) -> dict[str, float]:
    """Samples of a text exposition as {'name{labels}': value}; for tests and `rsu doctor`-style checks."""
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        samples[name] = float(value)
    return samples


def samples_named(samples: dict[str, float], name: str) -> Iterable[tuple[str, float]]:
    return ((key, value) for key, value in samples.items() if key == name or key.startswith(name + "{"))
