"""`rsu demo`: the whole unit on the simulated sample intersection, with a summary at the end.

The demo watches the unit the way its users do: a vehicle-side subscriber on the V2X topics and a
traffic-centre subscriber on the aggregates, both parsing every message against its schema.
"""

from __future__ import annotations

import math
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from rsu.runtime.broker_config import stage_login
from rsu.runtime.bus import MqttBus
from rsu.runtime.shutdown import StopSignals
from rsu.runtime.stage import RunOptions
from rsu.stages.v2x import topic_layout as wire_layout
from rsu.unit import Unit
from rsu.uplink.outbox import Outbox, OutboxUnavailable
from rsu_contracts.bus_roles import BusRole
from rsu_contracts.config import load_site_config
from rsu_contracts.messages import (
    Aggregate,
    CabinetReport,
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
)
from v2x.wire import MessageClass, TopicLayout, WireError, decode_payload

# Extra simulated time after the requested duration so the last full interval can be sealed.
RUN_OUT_S = 1.0


class DemoError(RuntimeError):
    pass


def simulated_epoch_s(now_s: float, longest_interval_s: float, realtime: bool, previous_mark_s: float | None) -> float:
    """Where the demo's simulated clock starts, so that no run re-seals an interval an earlier run sealed.

    Lock-step: on the boundary of the longest interval at or before now (a run's intervals are full
    ones and do not depend on the minute it was started), but never before the previous run's
    sealed_until mark, rounded up to that boundary: two demos in the same quarter hour would
    otherwise seal the same intervals, i.e. send the same sequence numbers with other contents.
    The stretch between the mark and the new start is sealed as "no data" by the uplink.
    Realtime: now, since the stages measure input age against the wall clock. A mark ahead of the
    wall clock (a lock-step run went ahead of it) then holds the uplink back until the clock
    passes it (the summary says so): taking the mark as start would put capture times in the future.
    """
    if realtime:
        return now_s
    epoch_s = math.floor(now_s / longest_interval_s) * longest_interval_s
    if previous_mark_s is not None and math.isfinite(previous_mark_s):
        epoch_s = max(epoch_s, math.ceil(previous_mark_s / longest_interval_s - 1e-9) * longest_interval_s)
    return epoch_s


def previous_sealed_mark_s(redis_url: str, unit_id: str, max_records: int) -> float | None:
    """The unit's sealed_until mark in Redis, None when it has none or Redis does not answer (preflight says so)."""
    try:
        return Outbox.from_url(redis_url, unit_id, max_records).sealed_until()
    except OutboxUnavailable:
        return None


@dataclass
class Observation:
    """What the vehicle-side and centre-side subscribers saw."""

    messages_per_topic: Counter[str] = field(default_factory=Counter)
    invalid_messages: list[str] = field(default_factory=list)
    warnings_new: Counter[str] = field(default_factory=Counter)
    aggregates: list[Aggregate] = field(default_factory=list)
    spat_messages: int = 0
    line_counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    latest_statistics: WorldStatistics | None = None
    latest_sim_time_s: float = 0.0
    # Capture times of the unit's own messages (not aggregates): the span of input the run covered.
    first_capture_s: float | None = None
    # The newest controller mode and number of tracked objects (the run's status line).
    latest_mode: str | None = None
    latest_objects: int = 0
    last_capture_s: float | None = None
    # Each change of what SPaT says: (publish time, J2735 state per signal group).
    spat_changes: list[tuple[float, dict[str, str]]] = field(default_factory=list)
    # The newest health message's report of the signal cabinet, when the unit drives one.
    cabinet: CabinetReport | None = None

    @property
    def covered_s(self) -> float:
        if self.first_capture_s is None or self.last_capture_s is None:
            return 0.0
        return self.last_capture_s - self.first_capture_s


class Observer:
    """Reads the unit's internal messages for the counts, and checks what went to vehicles.

    The counts (warnings, SPaT, crossings, aggregates, the simulation's statistics) come from the
    unit's own JSON topics (the V2X stage's internal copies: SPAT_SENT, WARNINGS_SENT), so they
    are the same whatever v2x.encodings and v2x.topic_layout put on the wire. The vehicle-facing
    topics of the site's layout (china included) are decoded the way a vehicle decodes them
    (v2x.wire.decode_payload: JSON or UPER), and a payload that does not decode is an invalid one.
    """

    def __init__(
        self, topics: Topics, mqtt_bus: MqttBus, sim_epoch_s: float, wire_layout: TopicLayout | None = None
    ) -> None:
        self.topics = topics
        self.bus = mqtt_bus
        self.sim_epoch_s = sim_epoch_s
        self.seen = Observation()
        self._schemas: dict[str, type[Message]] = topics.decoders(
            (SPAT_SENT, WARNINGS_SENT, AGGREGATES, SIM_STATISTICS, SIGNAL_STATE, DETECTORS, TRACKS, HEALTH)
        )
        layout = wire_layout if wire_layout is not None else TopicLayout(prefix=topics.prefix)
        self._wire: dict[str, MessageClass] = {
            topic: message_class
            for topic, message_class in layout.subscriptions(topics.unit_id).items()
            if message_class is not MessageClass.STATUS
        }

    def start(self) -> None:
        self.bus.subscribe(f"{self.topics.base}/#", qos=1)
        self.bus.subscribe(self.topics.aggregates, qos=1)
        for topic in self._wire:
            if not topic.startswith(f"{self.topics.base}/"):
                self.bus.subscribe(topic, qos=1)
        self.bus.connect()

    def pump(self) -> None:
        for item in self.bus.drain():
            self.seen.messages_per_topic[item.topic] += 1
            wire_class = self._wire.get(item.topic)
            if wire_class is not None:
                self._check_wire(item.topic, wire_class, item.payload, dict(item.user_properties))
                continue
            schema = self._schemas.get(item.topic)
            if schema is None:
                continue
            try:
                message = decode(schema, item.payload)
            except ValueError as exc:
                self.seen.invalid_messages.append(f"{item.topic}: {exc}")
                continue
            if isinstance(message, Aggregate):
                # Sealed by this run (catch-up "no data" intervals for time before the run included);
                # an earlier run's outbox backlog, forwarded now, was sealed before this run began.
                if message.publish_time_s >= self.sim_epoch_s:
                    self.seen.aggregates.append(message)
                continue
            if isinstance(message, UnitHealth):
                if message.publish_time_s > self.sim_epoch_s and message.cabinet is not None:
                    self.seen.cabinet = message.cabinet
                continue
            if message.capture_time_s <= self.sim_epoch_s:
                continue  # retained leftovers of an earlier run
            self.seen.latest_sim_time_s = max(self.seen.latest_sim_time_s, message.capture_time_s - self.sim_epoch_s)
            first = self.seen.first_capture_s
            self.seen.first_capture_s = message.capture_time_s if first is None else min(first, message.capture_time_s)
            self.seen.last_capture_s = max(self.seen.last_capture_s or 0.0, message.capture_time_s)
            if isinstance(message, CollisionWarning) and message.status is WarningStatus.NEW:
                self.seen.warnings_new[message.kind.value] += 1
            elif isinstance(message, WorldStatistics):
                self.seen.latest_statistics = message
            elif isinstance(message, Spat):
                self.seen.spat_messages += 1
                states = {movement.signal_group: movement.event_state for movement in message.movements}
                if not self.seen.spat_changes or self.seen.spat_changes[-1][1] != states:
                    self.seen.spat_changes.append((message.publish_time_s, states))
            elif isinstance(message, SignalState):
                self.seen.latest_mode = message.mode.value
            elif isinstance(message, TrackList):
                self.seen.latest_objects = len(message.objects)
            elif isinstance(message, DetectorStates):
                for crossing in message.crossings:
                    self.seen.line_counts[(crossing.line_id, crossing.road_user.value)] += 1

    def _check_wire(self, topic: str, message_class: MessageClass, payload: bytes, properties: dict[str, str]) -> None:
        if message_class is MessageClass.MAP and not payload:
            return  # a cleared retained MAP
        try:
            decode_payload(message_class, payload, properties)
        except WireError as exc:
            self.seen.invalid_messages.append(f"{topic}: {exc}")


@dataclass(frozen=True)
class DemoSummary:
    duration_s: float
    wall_time_s: float
    vehicles_served: int
    vehicles_departed: int
    mean_delay_s: float | None
    warnings_sent: dict[str, int]
    aggregates_expected: int
    aggregates_delivered: int
    long_aggregates_delivered: int
    messages_per_topic: dict[str, int]
    invalid_messages: list[str]
    stage_restarts: dict[str, int]
    line_counts: dict[tuple[str, str], int]
    # Stages that were restarted, with their restart count and last error.
    stage_troubles: dict[str, str] = field(default_factory=dict)
    # The signal that ended the run early (SIGINT, SIGTERM), None when it ran its full duration.
    stopped_by: str | None = None
    # The base aggregation interval (uplink.interval_s), for the reason of a zero.
    interval_s: float = 60.0
    # Intervals (any length) sealed by this run for time before it started: "no data" records for
    # the stretch since the previous run's sealed_until mark, so the centre sees no gap.
    catch_up_intervals: int = 0
    # How far an earlier run's sealed_until mark lay ahead of this run's start (realtime after a
    # lock-step demo): intervals before it are not sealed again, so none are sent for that stretch.
    held_back_s: float = 0.0
    # The signal cabinet the unit drove (its last health report), None without one.
    cabinet: CabinetReport | None = None
    # Wall-clock span of the run (the world's first to last message), for checks of its records.
    first_capture_s: float | None = None
    last_capture_s: float | None = None
    # Each change of what SPaT said: (publish time, J2735 state per group).
    spat_changes: list[tuple[float, dict[str, str]]] = field(default_factory=list)

    def render(self) -> str:
        delay = "n/a" if self.mean_delay_s is None else f"{self.mean_delay_s:.1f} s"
        stopped = [] if self.stopped_by is None else [f"rsu demo: stopped by {self.stopped_by}"]
        lines = [
            "",
            *stopped,
            f"rsu demo: {self.duration_s:.0f} simulated seconds in {self.wall_time_s:.1f} s wall time "
            f"({self.duration_s / max(self.wall_time_s, 1e-9):.1f}x real time)",
            f"  vehicles served        {self.vehicles_served} (of {self.vehicles_departed} departed)",
            f"  mean delay             {delay} per served vehicle",
            f"  warnings sent          {sum(self.warnings_sent.values())} "
            + (
                f"({', '.join(f'{k} {v}' for k, v in sorted(self.warnings_sent.items()))})"
                if self.warnings_sent
                else "(no conflict or violation was detected)"
            ),
            f"  aggregates delivered   {self.aggregates_delivered} of {self.aggregates_expected} intervals"
            + (f" (+{self.long_aggregates_delivered} longer)" if self.long_aggregates_delivered else "")
            + (
                f" (the run covered {self.duration_s:.0f} s, shorter than the {self.interval_s:.0f} s interval)"
                if self.aggregates_expected == 0
                else ""
            )
            + (
                f" (an earlier run of this unit already sealed the first {self.held_back_s:.0f} s of this run's "
                "time; their sequence numbers are taken, so those intervals are not sent again)"
                if self.held_back_s > 0 and self.aggregates_delivered < self.aggregates_expected
                else ""
            ),
            *(
                [
                    f"  catch-up intervals     {self.catch_up_intervals} sent as no data, for the time between "
                    "the previous run and this one"
                ]
                if self.catch_up_intervals
                else []
            ),
            f"  invalid messages       {len(self.invalid_messages)}",
            f"  stage restarts         {sum(self.stage_restarts.values())}",
        ]
        lines += [f"    {name:<12} {trouble}" for name, trouble in sorted(self.stage_troubles.items())]
        if self.cabinet is not None:
            cabinet = self.cabinet
            lines.append(
                f"  signal cabinet         {cabinet.address} {cabinet.state.value}: {cabinet.writes} writes, "
                f"{cabinet.polls} polls, {cabinet.snmp_errors} SNMP errors"
            )
        lines += [
            "  counted at the entry lines:",
            render_line_counts(Counter(self.line_counts)),
            "  messages per topic:",
        ]
        lines += [f"    {count:>8}  {topic}" for topic, count in sorted(self.messages_per_topic.items())]
        return "\n".join(lines)


def _delivered(aggregates: list[Aggregate], interval_s: float, run_start_s: float) -> int:
    """Distinct intervals of the base length within the run that reached the centre."""
    return len(
        {a.interval_start_s for a in aggregates if a.interval_s == interval_s and a.interval_start_s >= run_start_s}
    )


def render_line_counts(line_counts: Counter[tuple[str, str]]) -> str:
    lines: dict[str, list[str]] = {}
    for (line_id, road_user), count in sorted(line_counts.items()):
        lines.setdefault(line_id, []).append(f"{road_user} {count}")
    return "\n".join(f"    {line_id:<16} {', '.join(parts)}" for line_id, parts in lines.items()) or "    (none)"


def _progress(out: TextIO, fraction: float, sim_s: float, duration_s: float) -> None:
    width = 30
    filled = int(width * min(1.0, fraction))
    out.write(f"\r[{'#' * filled}{'-' * (width - filled)}] {100 * fraction:5.1f}%  sim {sim_s:6.0f}/{duration_s:.0f} s")
    out.flush()


def run_demo(
    site_path: Path,
    duration_s: float = 600.0,
    realtime: bool = False,
    seed: int = 42,
    progress: TextIO | None = sys.stderr,
    wall_timeout_s: float | None = None,
    lamp_log: Path | None = None,
) -> DemoSummary:
    """Run the unit on the site's simulated junction; ``lamp_log``: record the simulated lamps
    there (rsu.sim.lamps.LampLog). A site with a signal cabinet runs in real time."""
    site = load_site_config(site_path)
    if not site.is_simulated:
        raise DemoError(f"{site_path}: the demo needs a simulated camera (cameras[].source: simulation)")
    interval_s = site.uplink.interval_s
    if site.cabinet is not None:
        realtime = True  # a cabinet keeps wall-clock time
    # Start simulated time on a boundary of the longest interval, so every interval of the run is a
    # full one and a run's intervals do not depend on the hour it was started.
    previous_mark_s = previous_sealed_mark_s(site.redis.url, site.unit_id, site.uplink.outbox_max_records)
    sim_epoch_s = simulated_epoch_s(time.time(), max(site.uplink.aggregation_intervals_s), realtime, previous_mark_s)
    # Realtime behind an earlier lock-step run's mark: the uplink waits for the clock to pass it.
    held_back_s = (
        previous_mark_s - sim_epoch_s if previous_mark_s is not None and previous_mark_s > sim_epoch_s else 0.0
    )
    options = RunOptions(
        realtime=realtime,
        duration_s=duration_s + RUN_OUT_S,
        sim_epoch_s=sim_epoch_s,
        seed=seed,
        lamp_log=None if lamp_log is None else str(lamp_log),
    )
    unit = Unit(site_path, options)
    expected = int(duration_s // interval_s)
    wall_start = time.monotonic()
    deadline = None if wall_timeout_s is None else wall_start + wall_timeout_s
    # From here a Ctrl-C or SIGTERM only sets a flag: the unit is stopped in order and summarised.
    with StopSignals() as signals:
        unit.preflight()
        observer = Observer(
            unit.topics,
            MqttBus(stage_login(site, BusRole.MONITOR), f"{site.unit_id}-demo-observer"),
            sim_epoch_s,
            wire_layout(site),
        )
        observer.start()
        _run_until_done(unit, observer, signals, interval_s, expected, deadline, wall_timeout_s, progress, duration_s)
    if signals.requested:
        # Stopped early: count the intervals the run really covered.
        duration_s = min(duration_s, observer.seen.latest_sim_time_s)
        expected = int(duration_s // interval_s)
    if progress is not None:
        _progress(progress, 1.0, duration_s, duration_s)
        progress.write("\n")
    seen = observer.seen
    stats = seen.latest_statistics
    return DemoSummary(
        duration_s=duration_s,
        wall_time_s=time.monotonic() - wall_start,
        vehicles_served=stats.vehicles_arrived if stats else 0,
        vehicles_departed=stats.vehicles_departed if stats else 0,
        mean_delay_s=stats.mean_delay_s if stats else None,
        warnings_sent=dict(seen.warnings_new),
        aggregates_expected=expected,
        aggregates_delivered=_delivered(seen.aggregates, interval_s, sim_epoch_s),
        long_aggregates_delivered=sum(
            1 for a in seen.aggregates if a.interval_s != interval_s and a.interval_start_s >= sim_epoch_s
        ),
        catch_up_intervals=sum(1 for a in seen.aggregates if a.interval_start_s < sim_epoch_s),
        held_back_s=held_back_s,
        messages_per_topic=dict(seen.messages_per_topic),
        invalid_messages=list(seen.invalid_messages),
        stage_restarts={s.name: s.restarts for s in unit.supervisor.health()},
        line_counts=dict(seen.line_counts),
        stage_troubles=unit.supervisor.troubled_stages(),
        stopped_by=signals.received,
        interval_s=interval_s,
        cabinet=seen.cabinet,
        first_capture_s=seen.first_capture_s,
        last_capture_s=seen.last_capture_s,
        spat_changes=list(seen.spat_changes),
    )


def _run_until_done(
    unit: Unit,
    observer: Observer,
    signals: StopSignals,
    interval_s: float,
    expected: int,
    deadline: float | None,
    wall_timeout_s: float | None,
    progress: TextIO | None,
    duration_s: float,
) -> None:
    """Run the unit until the world completes (or a stop is requested), then stop it in order."""
    last_progress = 0.0
    unit.start()
    try:
        while not unit.supervisor.is_completed("world") and not signals.requested:
            unit.tick()
            observer.pump()
            if deadline is not None and time.monotonic() > deadline:
                raise DemoError(f"the demo did not finish within {wall_timeout_s:.0f} s of wall time")
            if progress is not None and time.monotonic() - last_progress > 0.5:
                last_progress = time.monotonic()
                sim_s = observer.seen.latest_sim_time_s
                _progress(progress, sim_s / duration_s, sim_s, duration_s)
            time.sleep(0.05)
        # The last interval is sealed and forwarded shortly after the world stops.
        settle_until = time.monotonic() + 15.0
        while (
            _delivered(observer.seen.aggregates, interval_s, observer.sim_epoch_s) < expected
            and time.monotonic() < settle_until
            and not signals.requested
        ):
            unit.tick()
            observer.pump()
            time.sleep(0.05)
        time.sleep(0.3)
        observer.pump()
    finally:
        unit.stop()
        # What the stages sent while stopping (ENDED warnings, the last aggregates) is counted too.
        time.sleep(0.3)
        observer.pump()
        observer.bus.close()
