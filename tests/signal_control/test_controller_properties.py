"""Property test: whatever the detectors say, however time advances, whichever strategy runs,
whenever data goes missing and whichever emergency preemption or transit priority calls come and
go, the outputs stay safe, no call starves, and SPaT stays ordered.

The checks come from SafetyChecker (tests/signal_control/harness.py), which re-states the rules
with hand-computed interval lengths instead of reusing the controller's own plan or monitor.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rsu_contracts.config import SiteConfig
from rsu_contracts.config.model import PriorityConfig
from rsu_contracts.enums import PriorityKind
from rsu_contracts.messages.perception import CrosswalkObservation, LaneObservation
from rsu_contracts.messages.signal import ControllerMode, Indication
from signal_control import SignalController
from signal_control.priority import PriorityCall
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
GROUP_OF_CROSSWALK = {crosswalk: group for group, crosswalk in CROSSWALK_OF_GROUP.items()}
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
# Priority limits of the site under test: short enough for dwells to run out within a plan.
MAX_DWELL_S = 20.0
MAX_EXTENSION_S = 10.0
MAX_EARLY_GREEN_S = 10.0
# Transit priority may hold one green per cycle for at most the max extension.
CALL_WAIT_BOUND_WITH_TRANSIT_S = CALL_WAIT_BOUND_S + MAX_EXTENSION_S


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
    # Priority calls on during the segment (same group in the next segment: the same call).
    emergency: str | None = None
    transit: str | None = None
    transit_arrival_in_s: float = 0.0
    # Crosswalks whose pushbutton is pressed at the segment's first step.
    pushbuttons: frozenset[str] = frozenset()


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
    emergency=st.sampled_from((None, None, *VEHICLE_GROUPS)),
    transit=st.sampled_from((None, None, *VEHICLE_GROUPS)),
    transit_arrival_in_s=st.floats(0.0, 30.0),
    pushbuttons=st.frozensets(st.sampled_from(tuple(CROSSWALK_OF_GROUP.values()))),
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


def _priority_calls(segment: Segment, segment_start_s: float) -> list[PriorityCall]:
    calls = []
    if segment.emergency is not None:
        calls.append(PriorityCall(f"ambulance/{segment.emergency}", PriorityKind.EMERGENCY, segment.emergency, 0.0))
    if segment.transit is not None:
        arrival_s = segment_start_s + segment.transit_arrival_in_s
        calls.append(PriorityCall(f"bus/{segment.transit}", PriorityKind.TRANSIT, segment.transit, arrival_s))
    return calls


@settings(suppress_health_check=[HealthCheck.too_slow])  # examples: the profile (tests/conftest.py)
@given(st.lists(segments, min_size=1, max_size=12))
def test_random_operation_stays_safe_and_serves_every_call(sample_site: SiteConfig, plan: list[Segment]) -> None:
    priority = PriorityConfig.model_validate(
        {
            "preemption": {"max_dwell_s": MAX_DWELL_S},
            "transit": {"max_extension_s": MAX_EXTENSION_S, "max_early_green_s": MAX_EARLY_GREEN_S},
        }
    )
    controller = SignalController(sample_site.model_copy(update={"priority": priority}))
    checker = SafetyChecker.for_site(sample_site)
    waiting_since: dict[str, float] = {}
    now_s = 50_000.0
    for segment in plan:
        if segment.switch_to is not None:
            controller.set_strategy(segment.switch_to)
        lanes, crosswalks = _observations(segment)
        calls = _priority_calls(segment, now_s)
        segment_end_s = now_s + segment.duration_s
        pressed: frozenset[str] = segment.pushbuttons
        for step_s in itertools.cycle(segment.steps_s):
            now_s += step_s
            if segment.data == "none":
                output = controller.step(now_s, None, priority=calls, pushbuttons=pressed)
            elif segment.data == "stale":
                output = controller.step(
                    now_s, lanes, crosswalks, observed_at_s=now_s - 5.0, priority=calls, pushbuttons=pressed
                )
            else:
                output = controller.step(now_s, lanes, crosswalks, priority=calls, pushbuttons=pressed)

            assert output.mode is not ControllerMode.FLASH, output.reason
            checker.observe(output)
            shown = {state.signal_group: state.indication for state in output.groups}
            if any(service.kind is PriorityKind.EMERGENCY for service in output.priority):
                # Preemption (bounded by its max dwell) suspends the rotation; waits count afresh after it.
                waiting_since.clear()
                continue
            for group, since_s in list(waiting_since.items()):
                if shown[group] is Indication.GREEN:
                    del waiting_since[group]
                else:
                    waited_s = now_s - since_s
                    assert waited_s <= CALL_WAIT_BOUND_WITH_TRANSIT_S, f"{group} has waited {waited_s:.1f} s"
            if output.mode is ControllerMode.NORMAL and segment.data == "fresh":
                for group in _demanding_groups(segment):
                    if shown[group] is not Indication.GREEN:
                        waiting_since.setdefault(group, now_s)
            for group in (GROUP_OF_CROSSWALK[crosswalk] for crosswalk in pressed):
                if output.mode is ControllerMode.NORMAL and shown[group] is not Indication.GREEN:
                    waiting_since.setdefault(group, now_s)  # a press is a latched call
            pressed = frozenset()
            if now_s >= segment_end_s:
                break
    assert checker.checked_outputs > 0
