"""Property test: whatever the detectors say, however time advances, whichever strategy runs and
whenever data goes missing, the outputs stay safe, no call starves, and SPaT stays ordered.

The checks come from SafetyChecker (tests/signal_control/harness.py), which re-states the rules
with hand-computed interval lengths instead of reusing the controller's own plan or monitor.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rsu.config import SiteConfig
from rsu.messages.perception import CrosswalkObservation, LaneObservation
from rsu.messages.signal import ControllerMode, Indication
from signal_control import SignalController
from tests.signal_control.harness import (
    LANES_OF_GROUP,
    SAMPLE_MAX_GREEN_S,
    SAMPLE_PED_CLEARANCE_S,
    SAMPLE_STAGE_CLEARANCE_S,
    SAMPLE_WALK_S,
    SafetyChecker,
    empty_lane,
    occupied_lane,
    pedestrians_waiting,
    waiting_lane,
)

VEHICLE_GROUPS = tuple(LANES_OF_GROUP)
CROSSWALK_OF_GROUP = {"p_north": "cw_north", "p_south": "cw_south", "p_east": "cw_east", "p_west": "cw_west"}
FIXED_GREEN_S = 20.0
MAX_STEP_S = 1.0
# The longest a latched call can wait: every stage at its longest green (actuated max or fixed
# green), four stage changes, a pedestrian walk + clearance already running in the current stage,
# and every green, yellow and all-red ending up to one (1 s) step late.
STAGE_LONGEST_GREEN_S = (
    max(SAMPLE_MAX_GREEN_S["1"], FIXED_GREEN_S),
    max(SAMPLE_MAX_GREEN_S["2"], FIXED_GREEN_S),
    max(SAMPLE_MAX_GREEN_S["3"], FIXED_GREEN_S),
    max(SAMPLE_MAX_GREEN_S["4"], FIXED_GREEN_S),
)
CALL_WAIT_BOUND_S = (
    sum(STAGE_LONGEST_GREEN_S)
    + 4 * SAMPLE_STAGE_CLEARANCE_S
    + SAMPLE_WALK_S
    + SAMPLE_PED_CLEARANCE_S
    + 4 * 3 * MAX_STEP_S
)


@dataclass(frozen=True)
class Segment:
    duration_s: float
    steps_s: tuple[float, ...]
    occupied: frozenset[str]
    waiting: frozenset[str]
    gap_s: float
    pedestrians: frozenset[str]
    data: str  # "fresh", "none" (lanes=None) or "stale" (observed 5 s before now)
    switch_to: str | None


segments = st.builds(
    Segment,
    duration_s=st.floats(0.5, 45.0),
    steps_s=st.lists(st.floats(0.05, MAX_STEP_S), min_size=1, max_size=6).map(tuple),
    occupied=st.frozensets(st.sampled_from(VEHICLE_GROUPS)),
    waiting=st.frozensets(st.sampled_from(VEHICLE_GROUPS)),
    gap_s=st.floats(0.0, 8.0),
    pedestrians=st.frozensets(st.sampled_from(tuple(CROSSWALK_OF_GROUP))),
    data=st.sampled_from(("fresh", "fresh", "none", "stale")),
    switch_to=st.sampled_from((None, None, "actuated", "adaptive", "fixed_time")),
)


def _observations(segment: Segment) -> tuple[list[LaneObservation], list[CrosswalkObservation]]:
    lanes = []
    for group, group_lanes in LANES_OF_GROUP.items():
        for lane in group_lanes:
            if group in segment.occupied:
                lanes.append(occupied_lane(lane))
            elif group in segment.waiting:
                lanes.append(waiting_lane(lane))
            else:
                lanes.append(empty_lane(lane, segment.gap_s))
    crosswalks = pedestrians_waiting(*(CROSSWALK_OF_GROUP[g] for g in sorted(segment.pedestrians)))
    return lanes, crosswalks


def _demanding_groups(segment: Segment) -> set[str]:
    return set(segment.occupied | segment.waiting | segment.pedestrians)


@settings(max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(segments, min_size=1, max_size=12))
def test_random_operation_stays_safe_and_serves_every_call(sample_site: SiteConfig, plan: list[Segment]) -> None:
    controller = SignalController(sample_site)
    checker = SafetyChecker.for_site(sample_site)
    waiting_since: dict[str, float] = {}
    now_s = 50_000.0
    for segment in plan:
        if segment.switch_to is not None:
            controller.set_strategy(segment.switch_to)
        lanes, crosswalks = _observations(segment)
        segment_end_s = now_s + segment.duration_s
        for step_s in itertools.cycle(segment.steps_s):
            now_s += step_s
            if segment.data == "none":
                output = controller.step(now_s, None)
            elif segment.data == "stale":
                output = controller.step(now_s, lanes, crosswalks, observed_at_s=now_s - 5.0)
            else:
                output = controller.step(now_s, lanes, crosswalks)

            assert output.mode is not ControllerMode.FLASH, output.reason
            checker.observe(output)
            shown = {state.signal_group: state.indication for state in output.groups}
            for group, since_s in list(waiting_since.items()):
                if shown[group] is Indication.GREEN:
                    del waiting_since[group]
                else:
                    assert now_s - since_s <= CALL_WAIT_BOUND_S, f"{group} has waited {now_s - since_s:.1f} s"
            if output.mode is ControllerMode.NORMAL and segment.data == "fresh":
                for group in _demanding_groups(segment):
                    if shown[group] is not Indication.GREEN:
                        waiting_since.setdefault(group, now_s)
            if now_s >= segment_end_s:
                break
    assert checker.checked_outputs > 0
