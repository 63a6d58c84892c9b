"""Builders for synthetic detector data, a driver loop, and an independent safety checker.

The expected interval lengths below are worked out by hand from the ITE formulas and the sample
site (13.9 m/s, level, 20 m clearance width, 13 m crossings), not taken from the code under test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from rsu_contracts.config import SiteConfig
from rsu_contracts.messages.perception import CrosswalkObservation, LaneObservation
from rsu_contracts.messages.signal import ControllerMode, Indication, SignalEvent
from signal_control import ControllerOutput, SignalController

# 1.0 + 13.9 / (2 * 3.05) = 1.0 + 2.27869 = 3.27869 s
SAMPLE_YELLOW_S = 3.27869
# (20 + 6.1) / 13.9 = 1.87770 s
SAMPLE_ALL_RED_S = 1.87770
# 13 / 1.07 = 12.14953 s
SAMPLE_PED_CLEARANCE_S = 12.14953
SAMPLE_PED_ALL_RED_S = 1.0
SAMPLE_WALK_S = 7.0
SAMPLE_MIN_GREEN_S = {"1": 5.0, "2": 10.0, "3": 5.0, "4": 8.0, "5": 5.0, "6": 10.0, "7": 5.0, "8": 8.0}
SAMPLE_MAX_GREEN_S = {"1": 20.0, "2": 45.0, "3": 20.0, "4": 35.0, "5": 20.0, "6": 45.0, "7": 20.0, "8": 35.0}
# Yellow plus all-red between two vehicle stages.
SAMPLE_STAGE_CLEARANCE_S = SAMPLE_YELLOW_S + SAMPLE_ALL_RED_S
PEDESTRIAN_GROUPS = frozenset({"p_north", "p_south", "p_east", "p_west"})
# Protected/permissive lefts of the sample site and the opposing through each gives way to.
SAMPLE_PERMISSIVE_WITH = {"1": "2", "3": "4", "5": "6", "7": "8"}

# Lanes of each sample signal group, as listed in the sample site.yaml.
LANES_OF_GROUP = {
    "1": ("south_left",),
    "2": ("north_through_right",),
    "3": ("west_left",),
    "4": ("east_through_right",),
    "5": ("north_left",),
    "6": ("south_through_right",),
    "7": ("east_left",),
    "8": ("west_through_right",),
}
ALL_LANES = tuple(lane for lanes in LANES_OF_GROUP.values() for lane in lanes)
STAGE_GROUPS = {
    "ns_left": ("1", "5"),
    "ns_through": ("2", "6", "p_east", "p_west"),
    "ew_left": ("3", "7"),
    "ew_through": ("4", "8", "p_north", "p_south"),
}
TOLERANCE_S = 1e-6


def empty_lane(lane_id: str, gap_s: float = 60.0) -> LaneObservation:
    return LaneObservation(
        lane_id=lane_id,
        stop_bar_occupied=False,
        queue_length_m=0.0,
        queued_vehicles=0,
        approaching_vehicles=0,
        stop_bar_gap_s=gap_s,
    )


def occupied_lane(lane_id: str) -> LaneObservation:
    """A vehicle on the stop bar with a queue behind it: demand and zero gap."""
    return LaneObservation(
        lane_id=lane_id,
        stop_bar_occupied=True,
        queue_length_m=14.0,
        queued_vehicles=2,
        approaching_vehicles=1,
        stop_bar_gap_s=0.0,
    )


def waiting_lane(lane_id: str) -> LaneObservation:
    """Vehicles queued on red but the stop bar free for a long time: demand that cannot extend."""
    return LaneObservation(
        lane_id=lane_id,
        stop_bar_occupied=False,
        queue_length_m=7.0,
        queued_vehicles=1,
        approaching_vehicles=0,
        stop_bar_gap_s=60.0,
    )


def lanes_for(occupied: Iterable[str] = (), waiting: Iterable[str] = ()) -> list[LaneObservation]:
    """Every sample lane: occupied lanes for `occupied` groups, queued ones for `waiting` groups."""
    occupied_lanes = {lane for group in occupied for lane in LANES_OF_GROUP[group]}
    waiting_lanes = {lane for group in waiting for lane in LANES_OF_GROUP[group]}
    result = []
    for lane in ALL_LANES:
        if lane in occupied_lanes:
            result.append(occupied_lane(lane))
        elif lane in waiting_lanes:
            result.append(waiting_lane(lane))
        else:
            result.append(empty_lane(lane))
    return result


def pedestrians_waiting(*crosswalk_ids: str) -> list[CrosswalkObservation]:
    return [CrosswalkObservation(crosswalk_id=cw, pedestrians=1, waiting_pedestrians=1) for cw in crosswalk_ids]


LanesAt = Callable[[float], Sequence[LaneObservation] | None]
CrosswalksAt = Callable[[float], Sequence[CrosswalkObservation]]


def no_pedestrians(_now_s: float) -> list[CrosswalkObservation]:
    return []


def drive(
    controller: SignalController,
    start_s: float,
    duration_s: float,
    lanes_at: LanesAt,
    crosswalks_at: CrosswalksAt = no_pedestrians,
    step_s: float = 0.1,
) -> list[ControllerOutput]:
    """Step the controller every `step_s` from just after `start_s` for `duration_s`."""
    outputs = []
    steps = round(duration_s / step_s)
    for index in range(1, steps + 1):
        now_s = start_s + index * step_s
        outputs.append(controller.step(now_s, lanes_at(now_s), crosswalks_at(now_s)))
    return outputs


def indication(output: ControllerOutput, group: str) -> Indication:
    for state in output.groups:
        if state.signal_group == group:
            return state.indication
    raise KeyError(group)


def events_of(outputs: Iterable[ControllerOutput], code: int, parameter: str | None = None) -> list[SignalEvent]:
    return [
        event
        for output in outputs
        for event in output.events
        if event.code == code and (parameter is None or event.parameter == parameter)
    ]


def green_starts(outputs: Sequence[ControllerOutput], group: str) -> list[float]:
    """Times at which `group` turned green (or walk), read from the indications alone."""
    starts = []
    previous = Indication.RED
    for output in outputs:
        current = indication(output, group)
        if current is Indication.GREEN and previous is not Indication.GREEN:
            starts.append(output.time_s)
        previous = current
    return starts


@dataclass
class _Seen:
    indication: Indication
    since_s: float
    red_since_s: float | None


@dataclass
class SafetyChecker:
    """Re-states the safety rules independently of the code under test and asserts them on every
    output: conflicts, green -> yellow -> red with full durations, all-red before entry."""

    conflicts: frozenset[frozenset[str]]
    seen: dict[str, _Seen] = field(default_factory=dict)
    checked_outputs: int = 0
    # The SPaT minEndTime each green vehicle group last published: it must not end before it.
    promised_green_end_s: dict[str, float] = field(default_factory=dict)

    @classmethod
    def for_site(cls, site: SiteConfig) -> SafetyChecker:
        return cls(frozenset(frozenset(pair) for pair in site.conflicts))

    def observe(self, output: ControllerOutput) -> None:
        now = output.time_s
        current = {state.signal_group: state.indication for state in output.groups}
        self._check_spat(output)
        not_red = {g for g, ind in current.items() if ind not in (Indication.RED, Indication.FLASHING_RED)}
        # A permissive left turns (giving way to its partner and to pedestrians) under a flashing
        # yellow arrow beside its partner's green, then a yellow beside the partner's yellow.
        turning = {
            g: partner
            for g, partner in SAMPLE_PERMISSIVE_WITH.items()
            if (current[g], current[partner])
            in ((Indication.FLASHING_YELLOW, Indication.GREEN), (Indication.YELLOW, Indication.YELLOW))
        }
        for group, ind in current.items():
            if ind is Indication.FLASHING_YELLOW:
                assert group in turning, f"t={now:.2f}: {group} flashes yellow without its partner green: {current}"
        for pair in self.conflicts:
            if any(
                g in turning and (o == turning[g] or o in PEDESTRIAN_GROUPS)
                for g, o in (tuple(pair), tuple(pair)[::-1])
            ):
                continue
            assert not pair <= not_red, f"t={now:.2f}: conflicting groups {sorted(pair)} both not red: {current}"
        if output.mode is ControllerMode.FLASH:
            assert all(ind is Indication.FLASHING_RED for ind in current.values())
            self.seen.clear()
            self.promised_green_end_s.clear()
            return
        self._check_promised_green_ends(output)
        for group, new in current.items():
            old = self.seen.get(group)
            if old is None or old.indication is new:
                continue
            held = now - old.since_s
            if group in PEDESTRIAN_GROUPS:
                if old.indication is Indication.GREEN:
                    assert new is Indication.PED_CLEARANCE, f"t={now:.2f}: walk {group} ended in {new}"
                    assert held >= SAMPLE_WALK_S - TOLERANCE_S, f"t={now:.2f}: walk {group} lasted {held:.3f} s"
                if old.indication is Indication.PED_CLEARANCE:
                    assert new is Indication.RED, f"t={now:.2f}: ped clearance {group} ended in {new}"
                    assert held >= SAMPLE_PED_CLEARANCE_S - TOLERANCE_S, f"{group} clearance {held:.3f} s"
            else:
                if old.indication is Indication.GREEN:
                    assert new is Indication.YELLOW, f"t={now:.2f}: green {group} went to {new}, not yellow"
                    assert held >= SAMPLE_MIN_GREEN_S[group] - TOLERANCE_S, f"{group} green lasted {held:.3f} s"
                if old.indication is Indication.FLASHING_YELLOW:
                    assert new is Indication.YELLOW, f"t={now:.2f}: flashing yellow {group} went to {new}"
                if old.indication is Indication.YELLOW:
                    assert new is Indication.RED, f"t={now:.2f}: yellow {group} went to {new}"
                    assert held >= SAMPLE_YELLOW_S - TOLERANCE_S, f"t={now:.2f}: {group} yellow {held:.3f} s"
                if new is Indication.YELLOW:
                    assert old.indication in (Indication.GREEN, Indication.FLASHING_YELLOW), (
                        f"t={now:.2f}: {group} yellow after {old.indication}"
                    )
        for group, new in current.items():
            old = self.seen.get(group)
            if old is not None and old.indication is new:
                continue
            red_since = old.red_since_s if old is not None else None
            if new is Indication.RED:
                red_since = now
            self.seen[group] = _Seen(new, now, red_since)
        for group, new in current.items():
            entering = new is Indication.GREEN or new is Indication.FLASHING_YELLOW
            if not entering or self.seen[group].since_s != now:
                continue
            for pair in self.conflicts:
                if group not in pair:
                    continue
                (other,) = pair - {group}
                if new is Indication.FLASHING_YELLOW and (
                    other == SAMPLE_PERMISSIVE_WITH[group] or other in PEDESTRIAN_GROUPS
                ):
                    continue
                other_red_since = self.seen[other].red_since_s
                assert other_red_since is not None
                required = SAMPLE_PED_ALL_RED_S if other in PEDESTRIAN_GROUPS else SAMPLE_ALL_RED_S
                assert now - other_red_since >= required - TOLERANCE_S, (
                    f"t={now:.2f}: {group} green only {now - other_red_since:.3f} s after {other} turned red"
                )
        self.checked_outputs += 1

    def _check_promised_green_ends(self, output: ControllerOutput) -> None:
        for state in output.groups:
            group = state.signal_group
            if group in PEDESTRIAN_GROUPS:
                continue
            promised = self.promised_green_end_s.pop(group, None)
            if state.indication is Indication.GREEN:
                self.promised_green_end_s[group] = state.min_end_time_s
            elif promised is not None:
                assert output.time_s >= promised - TOLERANCE_S, (
                    f"t={output.time_s:.2f}: {group} ended its green before the minEndTime {promised:.2f} it published"
                )

    @staticmethod
    def _check_spat(output: ControllerOutput) -> None:
        for state in output.groups:
            assert state.min_end_time_s >= output.time_s - TOLERANCE_S, state
            assert state.min_end_time_s <= state.likely_time_s <= state.max_end_time_s, state
