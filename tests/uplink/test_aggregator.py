"""Interval aggregates: hand-computed counts, speeds, occupancy, queues, green time and ATSPM events."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest

from rsu.uplink import aggregator as aggregator_module
from rsu.uplink.aggregator import AggregateBody, IntervalAggregator
from rsu_contracts.config.model import SiteConfig
from rsu_contracts.enums import RoadUserType
from rsu_contracts.messages import (
    Aggregate,
    CollisionWarning,
    ControllerMode,
    DetectorStates,
    Indication,
    LaneObservation,
    LineCrossing,
    Participant,
    Sequencer,
    Severity,
    SignalEvent,
    SignalGroupState,
    SignalState,
    WarningKind,
    WarningStatus,
)
from rsu_contracts.messages.bounds import MAX_EVENTS_PER_MESSAGE
from rsu_contracts.messages.envelope import decode

T0 = 1_700_000_040.0  # a multiple of 60 s: the start of an interval
LANE, OTHER_LANE, LINE = "north_through_right", "north_left", "north_in"
CAR, TRUCK, BIKE = RoadUserType.CAR, RoadUserType.TRUCK, RoadUserType.BICYCLE


def detectors(
    t: float,
    lanes: dict[str, tuple[bool, float, int]] | None = None,
    crossings: list[LineCrossing] | None = None,
    valid: bool = True,
    camera_id: str = "cam_pole_ne",
) -> DetectorStates:
    """lanes maps lane id -> (stop bar occupied, queue length m, queued vehicles)."""
    return DetectorStates(
        unit_id="rsu-test",
        seq=0,
        capture_time_s=t,
        publish_time_s=t,
        camera_id=camera_id,
        valid=valid,
        lanes=[
            LaneObservation(
                lane_id=lane_id,
                stop_bar_occupied=occupied,
                queue_length_m=queue_m,
                queued_vehicles=queued,
                approaching_vehicles=0,
                stop_bar_gap_s=0.0,
            )
            for lane_id, (occupied, queue_m, queued) in (lanes or {}).items()
        ],
        crossings=crossings or [],
    )


def crossing(t: float, speed: float, road_user: RoadUserType = CAR, lane_id: str | None = LANE) -> LineCrossing:
    return LineCrossing(line_id=LINE, road_user=road_user, speed_mps=speed, time_s=t, lane_id=lane_id)


def signal(t: float, greens: dict[str, float], events: Sequence[tuple[float, int, str]] = ()) -> SignalState:
    """greens maps signal group -> since_s of its green; every other sample group is red."""
    groups = [
        SignalGroupState(
            signal_group=group,
            indication=Indication.GREEN if group in greens else Indication.RED,
            since_s=greens.get(group, t),
            min_end_time_s=t + 5,
            max_end_time_s=t + 5,
            likely_time_s=t + 5,
        )
        for group in ("2", "4", "6", "8")
    ]
    return SignalState(
        unit_id="rsu-test",
        seq=0,
        capture_time_s=t,
        publish_time_s=t,
        mode=ControllerMode.NORMAL,
        strategy="actuated",
        groups=groups,
        events=[SignalEvent(time_s=et, code=code, parameter=param) for et, code, param in events],
    )


def warning(t: float, kind: WarningKind, status: WarningStatus = WarningStatus.NEW) -> CollisionWarning:
    participant = Participant(track_id=7, road_user=CAR, x_m=1.0, y_m=2.0, speed_mps=5.0, heading_deg=0.0)
    return CollisionWarning(
        unit_id="rsu-test",
        seq=0,
        capture_time_s=t,
        publish_time_s=t,
        warning_id="w",
        kind=kind,
        severity=Severity.WARNING,
        status=status,
        conflict_x_m=1.0,
        conflict_y_m=2.0,
        conflict_latitude_deg=48.0,
        conflict_longitude_deg=11.0,
        participants=[participant],
    )


def one_interval(aggregator: IntervalAggregator, start: float = T0) -> AggregateBody:
    [body] = aggregator.seal_until(start + aggregator.interval_s)
    assert body.interval_start_s == start
    return body


def lane_of(body: AggregateBody, lane_id: str = LANE) -> Any:
    return next(lane for lane in body.lanes if lane.lane_id == lane_id)


def phase_of(body: AggregateBody, group: str) -> Any:
    return next(phase for phase in body.phases if phase.signal_group == group)


@pytest.fixture
def aggregator(sample_site: SiteConfig) -> IntervalAggregator:
    return IntervalAggregator(sample_site, 60.0)


# --- counts and speeds -------------------------------------------------------------------------


def test_counts_mean_speed_and_85th_percentile(aggregator: IntervalAggregator) -> None:
    speeds = [10.0, 12.0, 14.0, 8.0, 11.0]
    crossings = [crossing(T0 + 1 + i, v) for i, v in enumerate(speeds)]
    crossings += [crossing(T0 + 20, 9.0, TRUCK), crossing(T0 + 21, 4.0, BIKE, lane_id=None)]
    aggregator.add_detectors(detectors(T0 + 30, crossings=crossings))
    body = one_interval(aggregator)

    lane = lane_of(body)
    assert lane.counts_by_class == {"car": 5, "truck": 1}, "classes without a count are left out"
    assert lane.mean_speed_mps == pytest.approx(64.0 / 6, abs=1e-3)  # rounded to mm/s
    # Sorted 8, 9, 10, 11, 12, 14: rank 0.85 * 5 = 4.25 -> 12 + 0.25 * (14 - 12).
    assert lane.speed_p85_mps == pytest.approx(12.5)
    # The lane-less bicycle counts only on its line; lane crossings count on both.
    [line] = [m for m in body.lines if m.line_id == LINE]
    assert (line.counts_by_class["car"], line.counts_by_class["truck"], line.counts_by_class["bicycle"]) == (5, 1, 1)
    other = lane_of(body, OTHER_LANE)
    assert (other.mean_speed_mps, other.speed_p85_mps, sum(other.counts_by_class.values())) == (None, None, 0)


def test_crossings_are_placed_by_their_own_time(aggregator: IntervalAggregator) -> None:
    # Reported in a message after the boundary, the first crossing still belongs to the first interval.
    aggregator.seal_until(T0 + 1)
    aggregator.add_detectors(detectors(T0 + 60.05, crossings=[crossing(T0 + 59.95, 10.0), crossing(T0 + 60.01, 12.0)]))
    first, second = aggregator.seal_until(T0 + 120)
    assert lane_of(first).counts_by_class["car"] == 1
    assert lane_of(second).counts_by_class["car"] == 1


def test_unknown_lanes_and_lines_are_ignored(aggregator: IntervalAggregator) -> None:
    stray = LineCrossing(line_id="nowhere", road_user=CAR, speed_mps=5.0, time_s=T0 + 1, lane_id="ghost_lane")
    aggregator.add_detectors(detectors(T0 + 1, lanes={"ghost_lane": (True, 5.0, 1)}, crossings=[stray]))
    body = one_interval(aggregator)
    assert all(sum(lane.counts_by_class.values()) == 0 for lane in body.lanes)
    assert "ghost_lane" not in {lane.lane_id for lane in body.lanes}
    assert "nowhere" not in {line.line_id for line in body.lines}


def test_speed_samples_are_bounded_but_mean_and_count_exact(aggregator: IntervalAggregator) -> None:
    n = aggregator_module.MAX_SPEED_SAMPLES * 3
    crossings = [crossing(T0 + 1 + i * 50.0 / n, float(i % 20)) for i in range(n)]
    # A detector message carries at most MAX_EVENTS_PER_MESSAGE crossings: feed them in several.
    per_message = MAX_EVENTS_PER_MESSAGE
    for start in range(0, n, per_message):
        aggregator.add_detectors(detectors(T0 + 55, crossings=crossings[start : start + per_message]))
    interval = aggregator._intervals[aggregator._index(T0)]
    assert len(interval.lanes[LANE].speed_samples) == aggregator_module.MAX_SPEED_SAMPLES
    lane = lane_of(one_interval(aggregator))
    assert lane.counts_by_class["car"] == n
    assert lane.mean_speed_mps == pytest.approx(9.5)
    assert lane.speed_p85_mps == pytest.approx(16.0, abs=1.0)  # uniform 0..19: p85 of the population is 16.15


# --- occupancy and queues ----------------------------------------------------------------------


def test_occupancy_and_queues_are_time_weighted(aggregator: IntervalAggregator) -> None:
    # One message a second; the stop bar occupied for the first 15 s, a 20 m / 3 vehicle queue for 30 s.
    for k in range(60):
        queue = (20.0, 3) if k < 30 else (0.0, 0)
        aggregator.add_detectors(detectors(T0 + k, lanes={LANE: (k < 15, *queue), OTHER_LANE: (False, 0.0, 0)}))
    body = one_interval(aggregator)
    lane = lane_of(body)
    assert lane.occupancy_ratio == pytest.approx(15 / 60)
    assert lane.mean_queue_m == pytest.approx(10.0)
    assert lane.max_queue_m == pytest.approx(20.0)
    assert lane.mean_queue_vehicles == pytest.approx(1.5)
    assert lane_of(body, OTHER_LANE).occupancy_ratio == 0.0
    assert body.detector_valid_ratio == 1.0


def test_uneven_message_spacing_weights_by_time(aggregator: IntervalAggregator) -> None:
    # Occupied at 0 s, free at 1 s and 2 s, occupied at 2.5 s until the next message at 3 s, then
    # free from 3 s: occupied 1 + 0.5 of the 60 s observed.
    times_and_states = [(0.0, True), (1.0, False), (2.0, False), (2.5, True)] + [(3.0 + k, False) for k in range(57)]
    for t, occupied in times_and_states:
        aggregator.add_detectors(detectors(T0 + t, lanes={LANE: (occupied, 0.0, 0)}))
    assert lane_of(one_interval(aggregator)).occupancy_ratio == pytest.approx(1.5 / 60, abs=1e-4)


def test_a_silent_camera_holds_its_last_state_only_up_to_the_cap(aggregator: IntervalAggregator) -> None:
    # Occupied throughout, but silent from 9 s to 40 s: the 9 s state is held for 2 s (the stale age).
    for k in [*range(10), *range(40, 60)]:
        aggregator.add_detectors(detectors(T0 + k, lanes={LANE: (k >= 40, 6.0 if k < 10 else 12.0, 1)}))
    lane = lane_of(one_interval(aggregator))
    observed = 9 + 2 + 20
    assert lane.occupancy_ratio == pytest.approx(20 / observed, abs=1e-4)
    assert lane.mean_queue_m == pytest.approx((11 * 6.0 + 20 * 12.0) / observed, abs=1e-3)


def test_invalid_messages_count_only_in_the_valid_ratio(aggregator: IntervalAggregator) -> None:
    for k in range(60):
        valid = k < 45
        aggregator.add_detectors(
            detectors(T0 + k, lanes={LANE: (not valid, 30.0 if not valid else 0.0, 5)}, valid=valid)
        )
    body = one_interval(aggregator)
    assert body.detector_valid_ratio == pytest.approx(0.75)
    lane = lane_of(body)
    assert (lane.occupancy_ratio, lane.max_queue_m) == (0.0, 0.0)


def test_state_held_across_the_boundary_is_split(aggregator: IntervalAggregator) -> None:
    for k in range(59, 62):
        aggregator.add_detectors(detectors(T0 + k + 0.5, lanes={LANE: (k == 59, 0.0, 0)}))
    first, second = aggregator.seal_until(T0 + 120)
    # The 59.5 s message (occupied) holds 0.5 s into each interval; the 61.5 s one (free) is held
    # for the 2 s cap: the second interval observed 3.5 s.
    assert lane_of(first).occupancy_ratio == pytest.approx(1.0)
    assert lane_of(second).occupancy_ratio == pytest.approx(0.5 / 3.5, abs=1e-4)


def test_two_cameras_on_different_lanes(aggregator: IntervalAggregator) -> None:
    for k in range(60):
        aggregator.add_detectors(detectors(T0 + k, lanes={LANE: (True, 0.0, 0)}, camera_id="a"))
        aggregator.add_detectors(detectors(T0 + k + 0.5, lanes={OTHER_LANE: (k % 2 == 0, 0.0, 0)}, camera_id="b"))
    body = one_interval(aggregator)
    assert lane_of(body).occupancy_ratio == pytest.approx(1.0)
    # Camera b starts at 0.5 s and covers 59.5 s; occupied for 30 of its one-second holds, the last cut to 0.5 s.
    assert lane_of(body, OTHER_LANE).occupancy_ratio == pytest.approx(30 / 59.5, abs=1e-4)


# --- signal performance ------------------------------------------------------------------------


def test_green_time_green_starts_gap_outs_and_max_outs(aggregator: IntervalAggregator) -> None:
    for k in range(60):
        t = T0 + k
        greens: dict[str, float] = {}
        if 10 <= k < 30:
            greens["2"] = T0 + 10
        if 40 <= k < 55:
            greens["4"] = T0 + 40
        events = []
        if k == 30:
            events = [(T0 + 30, 4, "2"), (T0 + 30, 1, "4"), (T0 + 30, 4, "no_such_group")]
        if k == 55:
            events = [(T0 + 55, 5, "4")]
        aggregator.add_signal(signal(t, greens, events))
    body = one_interval(aggregator)
    two, four, six = phase_of(body, "2"), phase_of(body, "4"), phase_of(body, "6")
    assert (two.green_time_s, two.green_starts, two.gap_outs, two.max_outs) == (20.0, 1, 1, 0)
    assert (four.green_time_s, four.green_starts, four.gap_outs, four.max_outs) == (15.0, 1, 0, 1)
    assert (six.green_time_s, six.green_starts) == (0.0, 0)
    assert {phase.signal_group for phase in body.phases} >= {"1", "2", "p_north"}


def test_a_green_running_at_start_is_not_a_start_and_greens_split_at_boundaries(
    aggregator: IntervalAggregator,
) -> None:
    for k in range(0, 120, 1):
        greens = {"6": T0 - 20} if k < 20 else {}
        if 50 <= k < 70:
            greens["2"] = T0 + 50
        aggregator.add_signal(signal(T0 + k, greens))
    first, second = aggregator.seal_until(T0 + 120)
    assert (phase_of(first, "6").green_time_s, phase_of(first, "6").green_starts) == (20.0, 0)
    assert (phase_of(first, "2").green_time_s, phase_of(first, "2").green_starts) == (10.0, 1)
    assert (phase_of(second, "2").green_time_s, phase_of(second, "2").green_starts) == (10.0, 0)


def test_green_start_reported_after_the_seal_goes_to_the_current_interval(aggregator: IntervalAggregator) -> None:
    aggregator.add_signal(signal(T0 + 59.0, {}))
    aggregator.seal_until(T0 + 60.0)
    aggregator.add_signal(signal(T0 + 60.1, {"2": T0 + 59.95}))
    [body] = aggregator.seal_until(T0 + 120)
    assert phase_of(body, "2").green_starts == 1


# --- warnings ----------------------------------------------------------------------------------


def test_only_new_warnings_are_counted(aggregator: IntervalAggregator) -> None:
    aggregator.add_warning(warning(T0 + 1, WarningKind.CROSSING))
    aggregator.add_warning(warning(T0 + 2, WarningKind.CROSSING, WarningStatus.UPDATE))
    aggregator.add_warning(warning(T0 + 3, WarningKind.CROSSING, WarningStatus.ENDED))
    aggregator.add_warning(warning(T0 + 4, WarningKind.RED_LIGHT_VIOLATION))
    aggregator.add_warning(warning(T0 + 5, WarningKind.RED_LIGHT_VIOLATION))
    body = one_interval(aggregator)
    assert body.warnings_by_kind == {"crossing": 1, "red_light_violation": 2}, "kinds without a count left out"


# --- intervals ---------------------------------------------------------------------------------


def test_intervals_are_aligned_to_the_clock(sample_site: SiteConfig) -> None:
    aggregator = IntervalAggregator(sample_site, 15.0)
    aggregator.add_detectors(detectors(T0 + 17.3, crossings=[crossing(T0 + 17.3, 5.0)]))
    assert aggregator.seal_until(T0 + 29.99) == []
    [body] = aggregator.seal_until(T0 + 30.0)  # the interval [15, 30) ended exactly now
    assert (body.interval_start_s, body.interval_s, body.interval_end_s) == (T0 + 15, 15.0, T0 + 30)
    assert aggregator.seal_until(T0 + 30.0) == []


def test_interval_defaults_to_the_site_setting(sample_site: SiteConfig) -> None:
    assert IntervalAggregator(sample_site).interval_s == sample_site.uplink.interval_s


def test_empty_intervals_still_produce_aggregates(aggregator: IntervalAggregator) -> None:
    assert aggregator.seal_until(T0 + 1) == []  # the first call starts the clock
    aggregator.add_detectors(detectors(T0 + 5, lanes={LANE: (True, 4.0, 1)}, crossings=[crossing(T0 + 5, 9.0)]))
    bodies = aggregator.seal_until(T0 + 300.5)
    assert [b.interval_start_s - T0 for b in bodies] == [0, 60, 120, 180, 240]
    for empty in bodies[2:]:
        assert empty.detector_valid_ratio == 0.0
        assert all(sum(lane.counts_by_class.values()) == 0 for lane in empty.lanes)
        assert all(lane.mean_speed_mps is None and lane.occupancy_ratio == 0.0 for lane in empty.lanes)
        assert len(empty.lanes) == 8 and len(empty.phases) == 12 and len(empty.lines) == 8
    # The camera's last message (5 s) is held only 2 s, so the interval after it saw nothing either.
    assert lane_of(bodies[1]).occupancy_ratio == 0.0


def test_a_clock_started_at_zero_restarts_at_the_first_data(aggregator: IntervalAggregator) -> None:
    assert aggregator.seal_until(0.0) == []  # a caller without a time yet
    aggregator.add_detectors(detectors(T0 + 5, crossings=[crossing(T0 + 5, 9.0)]))
    [body] = aggregator.seal_until(T0 + 60)
    assert body.interval_start_s == T0
    assert lane_of(body).counts_by_class["car"] == 1


def test_late_data_is_dropped_and_counted(aggregator: IntervalAggregator) -> None:
    aggregator.add_detectors(detectors(T0 + 1))
    aggregator.seal_until(T0 + 60)
    aggregator.add_detectors(detectors(T0 + 61, crossings=[crossing(T0 + 59, 10.0)]))
    aggregator.add_warning(warning(T0 + 30, WarningKind.CROSSING))
    [body] = aggregator.seal_until(T0 + 120)
    assert lane_of(body).counts_by_class.get("car", 0) == 0
    assert sum(body.warnings_by_kind.values()) == 0
    assert aggregator.late_dropped_total == 2


def test_open_intervals_and_backfill_are_bounded(aggregator: IntervalAggregator) -> None:
    aggregator.add_detectors(detectors(T0))
    aggregator.add_warning(warning(T0 + 86_400, WarningKind.CROSSING))  # a day ahead: a clock glitch
    assert aggregator.future_dropped_total == 1
    assert len(aggregator._intervals) <= aggregator_module.MAX_OPEN_INTERVALS
    bodies = aggregator.seal_until(T0 + 10 * 86_400)  # ten days on: at most one day of empties
    assert len(bodies) == aggregator_module.MAX_BACKFILL_INTERVALS
    assert aggregator.skipped_intervals_total == 10 * 1440 - aggregator_module.MAX_BACKFILL_INTERVALS
    assert bodies[-1].interval_end_s == T0 + 10 * 86_400


# --- privacy -----------------------------------------------------------------------------------

FORBIDDEN_KEY_PARTS = (
    "track",
    "position",
    "latitude",
    "longitude",
    "heading",
    "object",
    "participant",
    "image",
    "plate",
)


def _is_position_like(key: str) -> bool:
    key = key.lower()
    return (
        key in {"x", "y", "x_m", "y_m", "lat", "lon"}
        or key.endswith(("_x_m", "_y_m"))
        or any(part in key for part in FORBIDDEN_KEY_PARTS)
    )


def _all_keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _all_keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _all_keys(v)}
    return set()


def test_serialised_aggregate_holds_nothing_per_vehicle(aggregator: IntervalAggregator) -> None:
    for k in range(60):
        aggregator.add_detectors(
            detectors(T0 + k, lanes={LANE: (k % 3 == 0, 12.0, 2)}, crossings=[crossing(T0 + k, 10.0 + k % 5)])
        )
        aggregator.add_signal(signal(T0 + k, {"2": T0} if k < 30 else {}))
    aggregator.add_warning(warning(T0 + 3, WarningKind.VULNERABLE_ROAD_USER))
    body = one_interval(aggregator)
    header = Sequencer("rsu-test").header(capture_time_s=body.interval_end_s, publish_time_s=body.interval_end_s + 1)
    message = Aggregate(**header, **body.fields())
    payload = json.loads(message.to_json())

    keys = _all_keys(payload)
    assert {"lanes", "counts_by_class", "occupancy_ratio", "green_time_s"} <= keys
    assert not {key for key in keys if _is_position_like(key)}
    # The schema itself has no field that could hold one.
    schema_keys = _all_keys(Aggregate.model_json_schema())
    assert not {key for key in schema_keys if _is_position_like(key)}
    assert Aggregate.model_validate_json(message.to_json()) == message


@pytest.mark.parametrize(("vehicles", "statistics_sent"), [(1, False), (2, False), (3, True), (5, True)])
def test_speed_statistics_need_at_least_k_vehicles(
    aggregator: IntervalAggregator, vehicles: int, statistics_sent: bool
) -> None:
    assert aggregator.min_vehicles_for_statistics == 3  # the site default
    for k in range(vehicles):
        aggregator.add_detectors(detectors(T0 + k, crossings=[crossing(T0 + k, 10.0 + k)]))
    lane = lane_of(one_interval(aggregator))
    assert sum(lane.counts_by_class.values()) == vehicles  # the count itself always goes
    assert (lane.mean_speed_mps is not None) is statistics_sent
    assert (lane.speed_p85_mps is not None) is statistics_sent


def test_every_serialised_aggregate_names_its_schema_and_version(aggregator: IntervalAggregator) -> None:
    aggregator.add_detectors(detectors(T0))
    body = one_interval(aggregator)
    header = Sequencer("rsu-test").header(capture_time_s=body.interval_end_s, publish_time_s=body.interval_end_s)
    payload = json.loads(Aggregate(**header, **body.fields()).to_json())
    assert (payload["schema_name"], payload["schema_version"]) == ("rsu.aggregate", 2)
    assert "observed_s" in payload
    old = {k: v for k, v in payload.items() if k not in ("schema_version", "observed_s")}
    assert decode(Aggregate, json.dumps({**old, "schema_version": 1})).observed_s is None  # v1 still read
