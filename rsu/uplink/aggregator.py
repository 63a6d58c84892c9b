"""Interval aggregates for the traffic centre, from detector states, signal states and warnings.

Intervals are aligned to the clock: an interval starts at floor(t / interval_s) * interval_s and
covers [start, start + interval_s). Every input is placed by its own timestamp (capture_time_s of a
message, time_s of a crossing or signal event). seal_until(now_s) returns every interval that ended
at or before now_s, empty ones included, so the centre sees no gaps. The first interval is the one
holding the first input (or the first seal_until time, if that came first). Data for an interval
that is already sealed is dropped and counted in late_dropped_total.

Restarts: resume(sealed_until_s) tells a new aggregator where the previous run of the unit stopped
sealing. If the first time it sees lies at most max_gap_s later, the intervals from sealed_until_s
up to the one holding that first time (the unit was down, or had not sealed them yet when it
stopped) are sealed as "no data" before the first interval of the new run, so the centre sees no
gap and no false zeros: observed_s 0, detector_valid_ratio 0, and no lanes, lines, phases or
movements (counts absent, not zero). Beyond the gap the run starts afresh as without resume. A first
time before sealed_until_s (a clock set back, a replayed simulation) never seals an interval the
previous run sealed (that would send a second, different record with the same sequence number):
data before sealed_until_s is dropped as late, and sealing carries on from sealed_until_s.

Definitions (per interval):

- counts_by_class (lane): line crossings whose LineCrossing.lane_id is the lane, by road-user class;
  only classes with a count are listed (a missing class is zero: keeps the upstream small).
  counts_by_class (line, MovementCount): all crossings of the counting line, with or without a lane.
- mean_speed_mps, speed_p85_mps (lane): mean and 85th percentile (linear interpolation between order
  statistics, numpy's default) of those crossings' speeds; None without crossings. Beyond
  MAX_SPEED_SAMPLES per lane the percentile uses a uniform reservoir sample; the mean stays exact.
- occupancy_ratio (lane): time the stop bar was occupied / time the lane was observed. Each valid
  detector message holds its lane states until the same camera's next message, but at most
  site.controller.detector_stale_after_s (the age at which detector data counts as stale). Time
  covered by no valid message is not observed and counts neither way; 0 when never observed.
- mean_queue_m, mean_queue_vehicles (lane): time-weighted means over the observed time, with the
  same weights; max_queue_m the largest queue held during the interval.
- green_time_s (signal group): time-weighted seconds with indication green, each SignalState held
  until the next one (same cap). green_starts: indications that turned green, placed at
  SignalGroupState.since_s (or at the message time if since_s lies in a sealed interval; a green
  that began before the first interval is not a start). gap_outs / max_outs: SignalEvent codes
  4 / 5 whose parameter is the group.
- force_offs (signal group): SignalEvent code 6 (force-off) whose parameter is the group, beside
  gap-outs and max-outs. green_time_s is the green time the group used.
- arrivals, arrivals_on_green (signal group): vehicles (car, truck, bus, motorcycle) crossing an
  entry counting line on a lane of the group, by crossing time; on green when the group's
  indication was green at that time (green from SignalGroupState.since_s of the green until since_s
  of the indication that followed it). The ratio on-green / all is derived on the centre side
  (PhaseAggregate.arrivals_on_green_ratio), None without arrivals. ATSPM's arrival at the stop bar
  is taken as the entry-line crossing, just upstream of the stop line.
- split_failures (signal group): ATSPM split failures. A cycle of the group is its green followed
  by red; it is a split failure when the green occupancy ratio (stop bar occupied / observed time
  during the green) and the red occupancy ratio over the first RED_OCCUPANCY_WINDOW_S (5 s) of
  red both exceed SPLIT_FAILURE_OCCUPANCY (0.8). The group's stop bar is occupied while any of
  its lanes' stop_bar_occupied is true (one detector per approach, ATSPM's default), held as for
  occupancy_ratio; a window without observed time gives no verdict. Counted in the interval that
  holds the end of the 5 s red window (when the verdict is known).
- mean_headway_s (lane): mean time between successive vehicles crossing an entry counting line in
  the lane during the same green of the lane's group, in the interval holding the later
  crossing; None with fewer than two such vehicles in one green.
- movements (TurningMovementCount): TurningMovement events (a confirmed track that crossed an
  entry line and later an exit line, classified left / through / right / uturn by geometry, see
  rsu.perception.counting) by (entry line, exit line) and class, placed at the exit-line time.
  Only movements with at least one road user are listed, and only classes with a count.
- warnings_by_kind: NEW warnings only (updates and ends of the same warning are not counted); only
  kinds with a count are listed.
- observed_s: seconds of the interval covered by valid detector data (the longest of the lanes'
  observed times, see occupancy_ratio); 0 for an interval nothing observed.
- k-anonymity: mean_speed_mps and speed_p85_mps need at least k speeds in the lane-interval, and
  mean_headway_s at least k headways (each one ends at a distinct vehicle of the interval), with k
  = site.uplink.min_vehicles_for_statistics (3 by default); fewer give None, as none would.
- detector_valid_ratio: detector messages with valid=True / all detector messages in the interval;
  0 when none arrived, so an interval without detector data is not mistaken for a perfect one.
  Invalid messages contribute nothing else except their line crossings.

Privacy: only counts, sums and percentiles leave this module; no track id, position or per-vehicle
time reaches an AggregateBody (and the Aggregate schema forbids extra fields anyway).
State is bounded: open intervals, cameras, speed samples and backfill are all capped.
"""

from __future__ import annotations

import math
import random
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rsu_contracts.config.model import SiteConfig
from rsu_contracts.enums import VEHICLE_TYPES, CountingLineRole, RoadUserType
from rsu_contracts.messages.aggregates import LaneAggregate, MovementCount, PhaseAggregate, TurningMovementCount
from rsu_contracts.messages.perception import DetectorStates
from rsu_contracts.messages.signal import Indication, SignalState
from rsu_contracts.messages.warnings import CollisionWarning, WarningKind, WarningStatus

GAP_OUT_EVENT = 4
MAX_OUT_EVENT = 5
FORCE_OFF_EVENT = 6
TERMINATION_EVENTS = (GAP_OUT_EVENT, MAX_OUT_EVENT, FORCE_OFF_EVENT)

# ATSPM split failure: green and first-5-s-of-red occupancy ratios both above this.
SPLIT_FAILURE_OCCUPANCY = 0.8
RED_OCCUPANCY_WINDOW_S = 5.0
# Bounds on the per-group signal and occupancy history kept for arrivals on green and split failures.
MAX_GREEN_PERIODS = 16
MAX_PENDING_CYCLES = 16
MAX_OCCUPANCY_SEGMENTS = 4096

MAX_SPEED_SAMPLES = 2000
# Intervals ahead of the oldest unsealed one that may hold data; later timestamps are dropped.
MAX_OPEN_INTERVALS = 4
# Longest run of intervals one seal_until call produces; a longer jump (a clock step) skips ahead.
MAX_BACKFILL_INTERVALS = 1440
MAX_CAMERAS = 64
# Longest downtime resume() fills with empty intervals; after a longer one the unit starts afresh.
DEFAULT_RESUME_MAX_GAP_S = 900.0


@dataclass(frozen=True)
class AggregateBody:
    """One interval's Aggregate without the envelope header: Aggregate(**header, **body.fields())."""

    interval_start_s: float
    interval_s: float
    lanes: tuple[LaneAggregate, ...]
    lines: tuple[MovementCount, ...]
    phases: tuple[PhaseAggregate, ...]
    warnings_by_kind: dict[str, int]
    detector_valid_ratio: float
    movements: tuple[TurningMovementCount, ...] = ()
    observed_s: float = 0.0

    @property
    def interval_end_s(self) -> float:
        """The Aggregate's capture_time_s."""
        return self.interval_start_s + self.interval_s

    def fields(self) -> dict[str, Any]:
        return {
            "interval_start_s": self.interval_start_s,
            "interval_s": self.interval_s,
            "lanes": list(self.lanes),
            "lines": list(self.lines),
            "phases": list(self.phases),
            "warnings_by_kind": dict(self.warnings_by_kind),
            "detector_valid_ratio": self.detector_valid_ratio,
            "movements": list(self.movements),
            "observed_s": self.observed_s,
        }


@dataclass
class _LaneTotals:
    counts: Counter[str] = field(default_factory=Counter)
    speed_sum: float = 0.0
    speed_count: int = 0
    speed_samples: list[float] = field(default_factory=list)
    observed_s: float = 0.0
    occupied_s: float = 0.0
    queue_m_s: float = 0.0  # queue length integrated over time (m·s)
    queue_vehicle_s: float = 0.0
    max_queue_m: float = 0.0
    headway_sum_s: float = 0.0
    headway_count: int = 0


@dataclass
class _PhaseTotals:
    green_s: float = 0.0
    green_starts: int = 0
    gap_outs: int = 0
    max_outs: int = 0
    force_offs: int = 0
    arrivals: int = 0
    arrivals_on_green: int = 0
    split_failures: int = 0


@dataclass
class _Interval:
    lanes: dict[str, _LaneTotals]
    lines: dict[str, Counter[str]]
    phases: dict[str, _PhaseTotals]
    warnings: Counter[str] = field(default_factory=Counter)
    # (entry line, exit line, movement) -> counts by class
    movements: dict[tuple[str, str, str], Counter[str]] = field(default_factory=dict)
    detector_messages: int = 0
    valid_detector_messages: int = 0


@dataclass(frozen=True)
class _LaneSample:
    lane_id: str
    occupied: bool
    queue_m: float
    queue_vehicles: int


@dataclass
class _Held:
    """The last state of one source, held until its next message (sample and hold)."""

    time_s: float
    credited_until_s: float
    lanes: tuple[_LaneSample, ...] = ()
    green_groups: frozenset[str] = frozenset()


@dataclass
class _Cycle:
    """One green and the red after it, waiting for the occupancy of its red window."""

    green_start_s: float
    green_end_s: float
    red_start_s: float

    @property
    def red_window_end_s(self) -> float:
        return self.red_start_s + RED_OCCUPANCY_WINDOW_S


@dataclass
class _GroupTimeline:
    """A signal group's recent greens and stop-bar occupancy (bounded)."""

    greens: deque[list[float | None]] = field(default_factory=lambda: deque(maxlen=MAX_GREEN_PERIODS))
    indication: Indication | None = None
    pending: deque[_Cycle] = field(default_factory=lambda: deque(maxlen=MAX_PENDING_CYCLES))
    # [start, end, occupied] with the same state merged; only observed time is covered.
    occupancy: deque[list[Any]] = field(default_factory=lambda: deque(maxlen=MAX_OCCUPANCY_SEGMENTS))
    observed_until_s: float | None = None
    occupied_now: bool | None = None  # None: not observed

    def green_start_at(self, t: float) -> float | None:
        """Start of the green the group showed at t, or None if it was not green then (as far as known)."""
        for start, end in reversed(self.greens):
            assert start is not None
            if start <= t and (end is None or t < end):
                return start
            if start <= t:
                return None
        return None

    def observe(self, t: float, occupied: bool | None, max_hold_s: float) -> None:
        """The stop bar's state from t on; the previous state holds until t (at most max_hold_s)."""
        if self.observed_until_s is not None and t < self.observed_until_s:
            return
        if self.observed_until_s is not None and self.occupied_now is not None:
            end = min(t, self.observed_until_s + max_hold_s)
            last = self.occupancy[-1] if self.occupancy else None
            if last is not None and last[1] == self.observed_until_s and last[2] == self.occupied_now:
                last[1] = end
            elif end > self.observed_until_s:
                self.occupancy.append([self.observed_until_s, end, self.occupied_now])
        self.observed_until_s = t
        self.occupied_now = occupied

    def occupancy_ratio(self, start_s: float, end_s: float) -> float | None:
        """Occupied / observed time within [start_s, end_s); None if none of it was observed."""
        observed = occupied = 0.0
        for seg_start, seg_end, is_occupied in self.occupancy:
            overlap = min(end_s, seg_end) - max(start_s, seg_start)
            if overlap > 0:
                observed += overlap
                occupied += overlap if is_occupied else 0.0
        return occupied / observed if observed > 0 else None

    def forget_before(self, t: float) -> None:
        while self.occupancy and self.occupancy[0][1] <= t:
            self.occupancy.popleft()


class IntervalAggregator:
    """Accumulates one unit's data into clock-aligned intervals; see the module docstring."""

    def __init__(self, site: SiteConfig, interval_s: float | None = None) -> None:
        self.interval_s = float(interval_s if interval_s is not None else site.uplink.interval_s)
        if self.interval_s <= 0:
            raise ValueError(f"interval_s must be positive, got {self.interval_s}")
        self.max_hold_s = site.controller.detector_stale_after_s
        self.min_vehicles_for_statistics = site.uplink.min_vehicles_for_statistics
        self._lane_ids = [lane.id for lane in site.lanes]
        self._line_ids = [line.id for line in site.counting_lines]
        self._group_ids = [group.id for group in site.signal_groups]
        self._known_lanes = frozenset(self._lane_ids)
        self._known_lines = frozenset(self._line_ids)
        self._known_groups = frozenset(self._group_ids)
        self._group_of_lane = {lane.id: lane.signal_group for lane in site.lanes}
        self._entry_lines = frozenset(line.id for line in site.counting_lines if line.role is CountingLineRole.ENTRY)
        self._timelines = {group_id: _GroupTimeline() for group_id in self._group_ids}
        self._groups_with_lanes = sorted(set(self._group_of_lane.values()) & self._known_groups)
        # lane -> (green start, time) of the lane's last vehicle arrival during a green, for headways
        self._last_green_arrival: dict[str, tuple[float, float]] = {}
        self._intervals: dict[int, _Interval] = {}
        self._next_index: int | None = None  # oldest interval not sealed yet
        self._has_data = False
        self._resume_index: int | None = None  # first interval a previous run did not seal
        self._resume_max_gap = 0
        self._backfill_from: int | None = None  # empty intervals owed before _next_index
        self._cameras: dict[str, _Held] = {}
        self._signal: _Held | None = None
        self._green_since: dict[str, float] = {}
        self._random = random.Random(0)  # reservoir sampling; seeded so results are reproducible
        self.late_dropped_total = 0
        self.future_dropped_total = 0
        self.skipped_intervals_total = 0
        # Set when this run's clock began before where the previous run stopped sealing.
        self.clock_behind_resume_s: float | None = None

    def resume(self, sealed_until_s: float, max_gap_s: float = DEFAULT_RESUME_MAX_GAP_S) -> None:
        """Carry on after a previous run that sealed every interval ending at or before sealed_until_s.

        Call before any input. See the module docstring for what happens to the intervals between.
        """
        if self._next_index is not None:
            raise RuntimeError("resume() must come before the first input or seal_until()")
        # The first interval starting at or after sealed_until_s (with float slack for aligned times).
        self._resume_index = math.ceil(sealed_until_s / self.interval_s - 1e-6)
        self._resume_max_gap = max(0, math.floor(max_gap_s / self.interval_s))

    # --- input ---------------------------------------------------------------------------------

    def add_detectors(self, msg: DetectorStates) -> None:
        t = msg.capture_time_s
        self._start_at(t)
        interval = self._interval_at(t)
        if interval is not None:
            interval.detector_messages += 1
            interval.valid_detector_messages += int(msg.valid)
        for crossing in sorted(msg.crossings, key=lambda c: c.time_s):
            crossing_interval = self._interval_at(crossing.time_s)
            if crossing_interval is None:
                continue
            road_user = crossing.road_user.value
            if crossing.line_id in self._known_lines:
                crossing_interval.lines[crossing.line_id][road_user] += 1
            if crossing.lane_id in self._known_lanes:
                lane = crossing_interval.lanes[crossing.lane_id]
                lane.counts[road_user] += 1
                self._add_speed(lane, crossing.speed_mps)
                if crossing.line_id in self._entry_lines and crossing.road_user in VEHICLE_TYPES:
                    self._add_arrival(crossing_interval, crossing.lane_id, crossing.time_s)
        for movement in msg.movements:
            if movement.entry_line_id not in self._known_lines or movement.exit_line_id not in self._known_lines:
                continue
            movement_interval = self._interval_at(movement.time_s)
            if movement_interval is None:
                continue
            key = (movement.entry_line_id, movement.exit_line_id, movement.movement.value)
            movement_interval.movements.setdefault(key, Counter())[movement.road_user.value] += 1

        held = self._cameras.get(msg.camera_id)
        if held is not None:
            if t < held.time_s:
                return  # out of order within one camera: its state is already superseded
            self._credit_lanes(held, t)
        elif len(self._cameras) >= MAX_CAMERAS:
            return
        samples = tuple(
            _LaneSample(obs.lane_id, obs.stop_bar_occupied, obs.queue_length_m, obs.queued_vehicles)
            for obs in msg.lanes
            if obs.lane_id in self._known_lanes
        )
        # An invalid message holds nothing: the time until the next message is unobserved.
        self._cameras[msg.camera_id] = _Held(t, t, lanes=samples if msg.valid else ())
        self._observe_stop_bars(t)
        self._judge_cycles(ready_before_s=self._latest_observation_s())

    def add_signal(self, msg: SignalState) -> None:
        t = msg.capture_time_s
        self._start_at(t)
        first_message = self._signal is None
        if self._signal is not None:
            if t < self._signal.time_s:
                return
            self._credit_green(self._signal, t)
        greens = frozenset(
            g.signal_group
            for g in msg.groups
            if g.indication is Indication.GREEN and g.signal_group in self._known_groups
        )
        self._signal = _Held(t, t, green_groups=greens)

        for group in msg.groups:
            if group.signal_group not in greens or self._green_since.get(group.signal_group) == group.since_s:
                continue
            self._green_since[group.signal_group] = group.since_s
            start_interval = self._interval_at(group.since_s, count_late=False)
            if start_interval is None and not first_message:
                start_interval = self._interval_at(t)
            if start_interval is not None:
                start_interval.phases[group.signal_group].green_starts += 1
        for group_id in list(self._green_since):
            if group_id not in greens:
                del self._green_since[group_id]
        for group in msg.groups:
            if group.signal_group in self._known_groups:
                self._follow_indication(self._timelines[group.signal_group], group.indication, group.since_s)

        for event in msg.events:
            if event.code not in TERMINATION_EVENTS or event.parameter not in self._known_groups:
                continue
            event_interval = self._interval_at(event.time_s)
            if event_interval is None:
                continue
            phase = event_interval.phases[event.parameter]
            if event.code == GAP_OUT_EVENT:
                phase.gap_outs += 1
            elif event.code == MAX_OUT_EVENT:
                phase.max_outs += 1
            else:
                phase.force_offs += 1

    def add_warning(self, msg: CollisionWarning) -> None:
        if msg.status is not WarningStatus.NEW:
            return
        self._start_at(msg.capture_time_s)
        interval = self._interval_at(msg.capture_time_s)
        if interval is not None:
            interval.warnings[msg.kind.value] += 1

    # --- output --------------------------------------------------------------------------------

    def seal_until(self, now_s: float) -> list[AggregateBody]:
        """Every interval that ended at or before now_s and was not returned before, oldest first."""
        if self._next_index is None:
            self._begin_at(self._index(now_s))  # the clock starts: this interval is the first
            return self._take_backfill()
        bodies = self._take_backfill()
        ended = self._index(now_s)  # intervals below this index have ended
        if ended - self._next_index > MAX_BACKFILL_INTERVALS:
            skip_to = ended - MAX_BACKFILL_INTERVALS
            self.skipped_intervals_total += skip_to - self._next_index
            for index in [i for i in self._intervals if i < skip_to]:
                del self._intervals[index]
            self._next_index = skip_to
        while self._next_index < ended:
            index = self._next_index
            end_s = (index + 1) * self.interval_s
            # Cycles whose red window ends in this interval are judged with what was observed.
            self._judge_cycles(ready_before_s=end_s)
            # The last held states still cover the tail of the interval.
            for held in self._cameras.values():
                self._credit_lanes(held, end_s)
            if self._signal is not None:
                self._credit_green(self._signal, end_s)
            interval = self._intervals.pop(index) if index in self._intervals else self._new_interval()
            bodies.append(self._body(index, interval))
            self._next_index = index + 1
        return bodies

    # --- internals -----------------------------------------------------------------------------

    def _index(self, t: float) -> int:
        return math.floor(t / self.interval_s)

    def _new_interval(self) -> _Interval:
        return _Interval(
            lanes={lane_id: _LaneTotals() for lane_id in self._lane_ids},
            lines={line_id: Counter() for line_id in self._line_ids},
            phases={group_id: _PhaseTotals() for group_id in self._group_ids},
        )

    def _start_at(self, t: float) -> None:
        """Data at t: the first data fixes the first interval, the one containing t.

        A clock started only by seal_until is restarted when the first data lies far beyond it (a
        caller that had no time yet and passed 0): nothing was observed in between to report.
        """
        index = self._index(t)
        if self._next_index is None or (not self._has_data and index >= self._next_index + MAX_OPEN_INTERVALS):
            self._begin_at(index)
        self._has_data = True

    def _begin_at(self, index: int) -> None:
        """Make index the first interval of this run; after resume(), owe the empty ones before it."""
        self._next_index = index
        resume = self._resume_index
        if resume is not None and index < resume:
            # Intervals up to resume were sealed by the previous run: never seal them again.
            self.clock_behind_resume_s = (resume - index) * self.interval_s
            self._next_index = resume
            self._backfill_from = None
            return
        within_gap = resume is not None and resume < index <= resume + self._resume_max_gap
        self._backfill_from = resume if within_gap else None

    def _take_backfill(self) -> list[AggregateBody]:
        """The empty intervals owed since a resumed run stopped, oldest first (once)."""
        start, self._backfill_from = self._backfill_from, None
        if start is None or self._next_index is None:
            return []
        return [self._no_data_body(index) for index in range(start, self._next_index)]

    def _first_open_index(self) -> int:
        if self._next_index is None:
            raise RuntimeError("the aggregator has not started")  # every entry point calls _start_at first
        return self._next_index

    def _interval_at(self, t: float, count_late: bool = True) -> _Interval | None:
        """The open interval containing t, or None (counted) if it is sealed or too far ahead."""
        index = self._index(t)
        first_open = self._first_open_index()
        if index < first_open:
            self.late_dropped_total += int(count_late)
            return None
        if index >= first_open + MAX_OPEN_INTERVALS:
            self.future_dropped_total += 1
            return None
        interval = self._intervals.get(index)
        if interval is None:
            interval = self._intervals[index] = self._new_interval()
        return interval

    def _add_speed(self, lane: _LaneTotals, speed_mps: float) -> None:
        lane.speed_sum += speed_mps
        lane.speed_count += 1
        if len(lane.speed_samples) < MAX_SPEED_SAMPLES:
            lane.speed_samples.append(speed_mps)
        else:
            slot = self._random.randrange(lane.speed_count)
            if slot < MAX_SPEED_SAMPLES:
                lane.speed_samples[slot] = speed_mps

    def _add_arrival(self, interval: _Interval, lane_id: str, time_s: float) -> None:
        """A vehicle reached the stop-bar area of lane_id: arrival on green, and headway within one green."""
        group_id = self._group_of_lane[lane_id]
        if group_id not in self._known_groups:
            return
        phase = interval.phases[group_id]
        phase.arrivals += 1
        green_start = self._timelines[group_id].green_start_at(time_s)
        if green_start is None:
            return
        phase.arrivals_on_green += 1
        previous = self._last_green_arrival.get(lane_id)
        if previous is not None and previous[0] == green_start and time_s >= previous[1]:
            lane = interval.lanes[lane_id]
            lane.headway_sum_s += time_s - previous[1]
            lane.headway_count += 1
        self._last_green_arrival[lane_id] = (green_start, time_s)

    @staticmethod
    def _follow_indication(timeline: _GroupTimeline, indication: Indication, since_s: float) -> None:
        """Open a green at its start, close it when the next indication begins, and queue the cycle at red."""
        previous = timeline.indication
        timeline.indication = indication
        open_green = timeline.greens[-1] if timeline.greens and timeline.greens[-1][1] is None else None
        if indication is Indication.GREEN:
            if open_green is None or open_green[0] != since_s:
                if open_green is not None:
                    open_green[1] = since_s
                timeline.greens.append([since_s, None])
            return
        if open_green is not None:
            open_green[1] = since_s
        if indication is Indication.RED and previous is not Indication.RED and timeline.greens:
            green_start, green_end = timeline.greens[-1]
            if green_start is not None and green_end is not None and green_end <= since_s:
                timeline.pending.append(_Cycle(green_start, green_end, since_s))

    def _observe_stop_bars(self, t: float) -> None:
        """Each group's stop bar from t: occupied if any held lane of the group is (None if none held)."""
        state: dict[str, bool] = {}
        for held in self._cameras.values():
            if t - held.time_s > self.max_hold_s:
                continue
            for sample in held.lanes:
                group_id = self._group_of_lane[sample.lane_id]
                state[group_id] = state.get(group_id, False) or sample.occupied
        for group_id in self._groups_with_lanes:
            self._timelines[group_id].observe(t, state.get(group_id), self.max_hold_s)

    def _latest_observation_s(self) -> float:
        return max((held.time_s for held in self._cameras.values()), default=-math.inf)

    def _judge_cycles(self, ready_before_s: float) -> None:
        """Split-failure verdicts for the cycles whose 5 s red window ended at or before ready_before_s."""
        for group_id in self._groups_with_lanes:
            timeline = self._timelines[group_id]
            while timeline.pending and timeline.pending[0].red_window_end_s <= ready_before_s:
                cycle = timeline.pending.popleft()
                green_ratio = timeline.occupancy_ratio(cycle.green_start_s, cycle.green_end_s)
                red_ratio = timeline.occupancy_ratio(cycle.red_start_s, cycle.red_window_end_s)
                if green_ratio is None or red_ratio is None:
                    continue
                if green_ratio > SPLIT_FAILURE_OCCUPANCY and red_ratio > SPLIT_FAILURE_OCCUPANCY:
                    interval = self._interval_at(cycle.red_window_end_s, count_late=False)
                    if interval is not None:
                        interval.phases[group_id].split_failures += 1
            # Occupancy is needed back to the oldest green still to be judged, or the latest green
            # (open, or waiting for its red).
            keep_from = [cycle.green_start_s for cycle in timeline.pending]
            if timeline.greens and timeline.greens[-1][0] is not None:
                keep_from.append(timeline.greens[-1][0])
            timeline.forget_before(min(keep_from, default=timeline.observed_until_s or -math.inf))

    def _credit_lanes(self, held: _Held, until_s: float) -> None:
        def credit(interval: _Interval, seconds: float) -> None:
            for sample in held.lanes:
                lane = interval.lanes[sample.lane_id]
                lane.observed_s += seconds
                lane.occupied_s += seconds if sample.occupied else 0.0
                lane.queue_m_s += sample.queue_m * seconds
                lane.queue_vehicle_s += sample.queue_vehicles * seconds
                lane.max_queue_m = max(lane.max_queue_m, sample.queue_m)

        self._credit(held, until_s, credit)

    def _credit_green(self, held: _Held, until_s: float) -> None:
        def credit(interval: _Interval, seconds: float) -> None:
            for group_id in held.green_groups:
                interval.phases[group_id].green_s += seconds

        self._credit(held, until_s, credit)

    def _credit(self, held: _Held, until_s: float, credit: Callable[[_Interval, float], None]) -> None:
        """Apply held's state to [credited_until, until) capped at max_hold_s, split by interval."""
        start = held.credited_until_s
        end = min(until_s, held.time_s + self.max_hold_s)
        if end <= start:
            return
        held.credited_until_s = end
        first_open = self._first_open_index()
        start = max(start, first_open * self.interval_s)  # sealed intervals are final
        for index in range(self._index(start), self._index(end) + 1):
            lower = max(start, index * self.interval_s)
            upper = min(end, (index + 1) * self.interval_s)
            if upper > lower and index < first_open + MAX_OPEN_INTERVALS:
                interval = self._intervals.get(index)
                if interval is None:
                    interval = self._intervals[index] = self._new_interval()
                credit(interval, upper - lower)

    def _no_data_body(self, index: int) -> AggregateBody:
        """An interval the unit did not observe: no counts at all rather than zero counts."""
        return AggregateBody(
            interval_start_s=index * self.interval_s,
            interval_s=self.interval_s,
            lanes=(),
            lines=(),
            phases=(),
            warnings_by_kind={},
            detector_valid_ratio=0.0,
            observed_s=0.0,
        )

    def _body(self, index: int, interval: _Interval) -> AggregateBody:
        classes = [road_user.value for road_user in RoadUserType]
        k = self.min_vehicles_for_statistics
        observed_s = max((lane.observed_s for lane in interval.lanes.values()), default=0.0)
        return AggregateBody(
            interval_start_s=index * self.interval_s,
            interval_s=self.interval_s,
            observed_s=round(min(observed_s, self.interval_s), 3),
            lanes=tuple(_lane_aggregate(lane_id, interval.lanes[lane_id], classes, k) for lane_id in self._lane_ids),
            lines=tuple(
                MovementCount(line_id=line_id, counts_by_class=_nonzero(interval.lines[line_id], classes))
                for line_id in self._line_ids
            ),
            phases=tuple(
                PhaseAggregate(
                    signal_group=group_id,
                    green_time_s=round(totals.green_s, 3),
                    green_starts=totals.green_starts,
                    gap_outs=totals.gap_outs,
                    max_outs=totals.max_outs,
                    force_offs=totals.force_offs,
                    arrivals=totals.arrivals,
                    arrivals_on_green=totals.arrivals_on_green,
                    split_failures=totals.split_failures,
                )
                for group_id, totals in ((g, interval.phases[g]) for g in self._group_ids)
            ),
            warnings_by_kind=_nonzero(interval.warnings, [kind.value for kind in WarningKind]),
            detector_valid_ratio=(
                round(interval.valid_detector_messages / interval.detector_messages, 4)
                if interval.detector_messages
                else 0.0
            ),
            movements=tuple(
                TurningMovementCount(
                    entry_line_id=entry,
                    exit_line_id=exit_,
                    movement=movement,
                    counts_by_class={name: count for name, count in sorted(counts.items()) if count},
                )
                for (entry, exit_, movement), counts in sorted(interval.movements.items())
                if sum(counts.values())
            ),
        )


def _lane_aggregate(lane_id: str, totals: _LaneTotals, classes: list[str], k: int) -> LaneAggregate:
    """k: fewest vehicles behind a speed or headway statistic (k-anonymity), else None."""
    observed = totals.observed_s
    has_speeds = totals.speed_count >= k
    has_headways = totals.headway_count >= k
    return LaneAggregate(
        lane_id=lane_id,
        counts_by_class=_nonzero(totals.counts, classes),
        mean_speed_mps=round(totals.speed_sum / totals.speed_count, 3) if has_speeds else None,
        speed_p85_mps=round(float(np.percentile(totals.speed_samples, 85)), 3) if has_speeds else None,
        occupancy_ratio=round(min(1.0, totals.occupied_s / observed), 4) if observed > 0 else 0.0,
        mean_queue_m=round(totals.queue_m_s / observed, 3) if observed > 0 else 0.0,
        max_queue_m=round(totals.max_queue_m, 3),
        mean_queue_vehicles=round(totals.queue_vehicle_s / observed, 3) if observed > 0 else 0.0,
        mean_headway_s=round(totals.headway_sum_s / totals.headway_count, 3) if has_headways else None,
    )


def _nonzero(counts: Counter[str], keys: Iterable[str]) -> dict[str, int]:
    """The counts of keys, in that order, leaving out zeros."""
    return {key: counts[key] for key in keys if counts.get(key, 0)}
