"""ATSPM measures and turning movements in the interval aggregates, with hand-computed expectations.

Group "2" serves the lane north_through_right, whose vehicles cross the entry line north_in.
Every scenario starts at T0, the start of a 60 s interval.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from rsu.uplink.aggregator import AggregateBody, IntervalAggregator
from rsu_contracts.config.model import SiteConfig
from rsu_contracts.enums import Movement, RoadUserType
from rsu_contracts.messages import (
    ControllerMode,
    DetectorStates,
    Indication,
    LaneObservation,
    LineCrossing,
    SignalEvent,
    SignalGroupState,
    SignalState,
)
from rsu_contracts.messages.aggregates import PhaseAggregate, TurningMovementCount
from rsu_contracts.messages.perception import TurningMovement

T0 = 1_700_000_040.0
GROUP, LANE, ENTRY_LINE = "2", "north_through_right", "north_in"
CAR, TRUCK, BIKE = RoadUserType.CAR, RoadUserType.TRUCK, RoadUserType.BICYCLE
RED, YELLOW, GREEN = Indication.RED, Indication.YELLOW, Indication.GREEN


@pytest.fixture
def aggregator(sample_site: SiteConfig) -> IntervalAggregator:
    return IntervalAggregator(sample_site, 60.0)


def signal(t: float, indication: Indication, since_s: float, events: Sequence[tuple[float, int]] = ()) -> SignalState:
    """Group 2 shows indication since since_s; events are (time, ATSPM code) for group 2."""
    state = SignalGroupState(
        signal_group=GROUP,
        indication=indication,
        since_s=since_s,
        min_end_time_s=t + 5,
        max_end_time_s=t + 5,
        likely_time_s=t + 5,
    )
    return SignalState(
        unit_id="rsu-test",
        seq=0,
        capture_time_s=t,
        publish_time_s=t,
        mode=ControllerMode.NORMAL,
        strategy="actuated",
        groups=[state],
        events=[SignalEvent(time_s=et, code=code, parameter=GROUP) for et, code in events],
    )


def detectors(
    t: float,
    stop_bar_occupied: bool = False,
    arrivals: Sequence[tuple[float, RoadUserType]] = (),
    movements: Sequence[TurningMovement] = (),
) -> DetectorStates:
    """The lane's stop bar state at t, entry-line crossings (time, class) and turning movements."""
    return DetectorStates(
        unit_id="rsu-test",
        seq=0,
        capture_time_s=t,
        publish_time_s=t,
        camera_id="cam_pole_ne",
        valid=True,
        lanes=[
            LaneObservation(
                lane_id=LANE,
                stop_bar_occupied=stop_bar_occupied,
                queue_length_m=0.0,
                queued_vehicles=0,
                approaching_vehicles=0,
                stop_bar_gap_s=0.0,
            )
        ],
        crossings=[
            LineCrossing(line_id=ENTRY_LINE, road_user=road_user, speed_mps=10.0, time_s=time_s, lane_id=LANE)
            for time_s, road_user in arrivals
        ],
        movements=list(movements),
    )


def phase(body: AggregateBody, group: str = GROUP) -> PhaseAggregate:
    (found,) = [p for p in body.phases if p.signal_group == group]
    return found


def mean_headway(body: AggregateBody) -> float | None:
    (lane,) = [lane for lane in body.lanes if lane.lane_id == LANE]
    return lane.mean_headway_s


def test_force_offs_are_counted_beside_gap_outs_and_max_outs(aggregator: IntervalAggregator) -> None:
    aggregator.add_signal(signal(T0 + 1, GREEN, T0, events=[(T0 + 0.5, 4), (T0 + 0.6, 6), (T0 + 0.7, 6)]))
    aggregator.add_signal(signal(T0 + 2, YELLOW, T0 + 2, events=[(T0 + 1.5, 5), (T0 + 1.6, 1)]))
    [body] = aggregator.seal_until(T0 + 60)
    assert (phase(body).gap_outs, phase(body).max_outs, phase(body).force_offs) == (1, 1, 2)


def test_arrivals_on_green_and_headways_within_one_green(aggregator: IntervalAggregator) -> None:
    """Green 10-30 s, yellow 30-34 s, red, green again from 50 s.

    Arrivals: cars at 5 (red), 12, 14, 17.5 (green), 31 (yellow), 52 (second green), a truck at 13
    (green), a bicycle at 20 (not a vehicle: not an arrival).
    On green: 12, 13, 14, 17.5, 52 -> 5 of 7 = 0.7143.
    Headways within the first green: 1.0, 1.0, 3.5 -> mean 1.8333; 52 starts a new green (no pair).
    """
    aggregator.add_signal(signal(T0 + 1, RED, T0))
    aggregator.add_detectors(detectors(T0 + 6, arrivals=[(T0 + 5, CAR)]))
    aggregator.add_signal(signal(T0 + 10, GREEN, T0 + 10))
    aggregator.add_detectors(
        detectors(T0 + 18, arrivals=[(T0 + 14, CAR), (T0 + 12, CAR), (T0 + 17.5, CAR), (T0 + 13, TRUCK)])
    )
    aggregator.add_detectors(detectors(T0 + 21, arrivals=[(T0 + 20, BIKE)]))
    aggregator.add_signal(signal(T0 + 30, YELLOW, T0 + 30))
    aggregator.add_signal(signal(T0 + 34, RED, T0 + 34))
    aggregator.add_detectors(detectors(T0 + 35, arrivals=[(T0 + 31, CAR)]))
    aggregator.add_signal(signal(T0 + 50, GREEN, T0 + 50))
    aggregator.add_detectors(detectors(T0 + 53, arrivals=[(T0 + 52, CAR)]))
    [body] = aggregator.seal_until(T0 + 60)

    assert (phase(body).arrivals, phase(body).arrivals_on_green) == (7, 5)
    assert phase(body).arrivals_on_green_ratio == pytest.approx(5 / 7, abs=1e-4)
    assert mean_headway(body) == pytest.approx((1.0 + 1.0 + 3.5) / 3, abs=1e-3)


def test_without_arrivals_the_ratio_and_headway_are_unknown(aggregator: IntervalAggregator) -> None:
    aggregator.add_signal(signal(T0 + 1, GREEN, T0))
    [body] = aggregator.seal_until(T0 + 60)
    assert (phase(body).arrivals, phase(body).arrivals_on_green_ratio, mean_headway(body)) == (0, None, None)


def run_cycle(aggregator: IntervalAggregator, start_s: float, green_occupied_s: int, red_occupied_s: int) -> None:
    """One cycle from start_s: green 10-30 s, yellow 30-34 s, red from 34 s; detector messages every second.

    The stop bar is occupied for the first green_occupied_s seconds of the green and the first
    red_occupied_s seconds of the red, and free otherwise.
    """
    aggregator.add_signal(signal(start_s, RED, start_s - 1))
    for second in range(0, 60):
        t = start_s + second
        if second == 10:
            aggregator.add_signal(signal(t, GREEN, t))
        elif second == 30:
            aggregator.add_signal(signal(t, YELLOW, t))
        elif second == 34:
            aggregator.add_signal(signal(t, RED, t))
        occupied = 10 <= second < 10 + green_occupied_s or 34 <= second < 34 + red_occupied_s
        aggregator.add_detectors(detectors(t, stop_bar_occupied=occupied))


def test_split_failure_needs_both_green_and_first_5_s_of_red_occupancy_above_0_8(
    aggregator: IntervalAggregator,
) -> None:
    """Cycle 1: green occupancy 18/20 = 0.9, red 5/5 = 1.0 -> a split failure.
    Cycle 2: green 10/20 = 0.5, red 5/5 -> none. Cycle 3: green 20/20, red 3/5 = 0.6 -> none.
    Cycle 4: green 16/20 = 0.8 (not above), red 5/5 -> none."""
    run_cycle(aggregator, T0, green_occupied_s=18, red_occupied_s=5)
    run_cycle(aggregator, T0 + 60, green_occupied_s=10, red_occupied_s=5)
    run_cycle(aggregator, T0 + 120, green_occupied_s=20, red_occupied_s=3)
    run_cycle(aggregator, T0 + 180, green_occupied_s=16, red_occupied_s=5)
    bodies = aggregator.seal_until(T0 + 240)
    assert [phase(body).split_failures for body in bodies] == [1, 0, 0, 0]


def test_a_cycle_without_stop_bar_data_gives_no_verdict(aggregator: IntervalAggregator) -> None:
    aggregator.add_signal(signal(T0 + 1, GREEN, T0 + 1))
    aggregator.add_signal(signal(T0 + 20, YELLOW, T0 + 20))
    aggregator.add_signal(signal(T0 + 24, RED, T0 + 24))
    [body] = aggregator.seal_until(T0 + 60)
    assert phase(body).split_failures == 0


def movement(entry: str, exit_: str, turn: Movement, road_user: RoadUserType, t: float) -> TurningMovement:
    return TurningMovement(entry_line_id=entry, exit_line_id=exit_, movement=turn, road_user=road_user, time_s=t)


def test_turning_movements_are_counted_by_movement_and_class_without_zero_entries(
    aggregator: IntervalAggregator,
) -> None:
    aggregator.add_detectors(
        detectors(
            T0 + 5,
            movements=[
                movement("north_in", "east_out", Movement.LEFT, CAR, T0 + 3),
                movement("north_in", "east_out", Movement.LEFT, CAR, T0 + 4),
                movement("north_in", "east_out", Movement.LEFT, TRUCK, T0 + 4.5),
                movement("north_in", "south_out", Movement.THROUGH, CAR, T0 + 4.8),
                movement("north_in", "nowhere", Movement.THROUGH, CAR, T0 + 4.9),  # unknown line: ignored
            ],
        )
    )
    aggregator.add_detectors(
        detectors(T0 + 61, movements=[movement("north_in", "west_out", Movement.RIGHT, CAR, T0 + 61)])
    )
    first, second = aggregator.seal_until(T0 + 120)
    assert first.movements == (
        TurningMovementCount(
            entry_line_id="north_in", exit_line_id="east_out", movement="left", counts_by_class={"car": 2, "truck": 1}
        ),
        TurningMovementCount(
            entry_line_id="north_in", exit_line_id="south_out", movement="through", counts_by_class={"car": 1}
        ),
    )
    assert [(m.exit_line_id, m.counts_by_class) for m in second.movements] == [("west_out", {"car": 1})]
