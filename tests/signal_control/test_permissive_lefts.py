"""Protected/permissive lefts (the sample's 1, 3, 5, 7, each giving way to the opposing through):
what the controller shows, when a left calls its protected phase, when the adaptive strategy
passes the protected phase over, and what SUMO is shown for them."""

from __future__ import annotations

import pytest

from rsu.samples import SAMPLE_SITE
from rsu_contracts.config import SiteConfig
from rsu_contracts.config.load import resolve_relative
from rsu_contracts.messages.perception import LaneObservation
from rsu_contracts.messages.signal import Indication
from rsu_tools.sil.programs import signal_heads_for_network, write_program
from signal_control import PhasePlan, SignalController
from signal_control.events import AtspmEvent
from signal_control.strategies import Action, AdaptiveStrategy, DecisionContext
from tests.signal_control.harness import (
    ALL_LANES,
    SAMPLE_YELLOW_S,
    SafetyChecker,
    drive,
    empty_lane,
    events_of,
    indication,
    lanes_for,
    occupied_lane,
    waiting_lane,
)

FYA = Indication.FLASHING_YELLOW


def _state(output: object, group: str) -> object:
    return next(state for state in output.groups if state.signal_group == group)  # type: ignore[attr-defined]


def test_the_lefts_flash_yellow_while_the_opposing_through_is_green_then_clear_with_it(
    sample_site: SiteConfig,
) -> None:
    controller = SignalController(sample_site)
    checker = SafetyChecker.for_site(sample_site)
    # Through traffic on the main street, then the side street calls: 2 and 6 gap out.
    outputs = drive(
        controller,
        1000.0,
        60.0,
        lambda now_s: lanes_for(occupied=["2", "6"] if now_s < 1020.0 else [], waiting=["4"]),
    )
    for output in outputs:
        checker.observe(output)
    through_green = [o for o in outputs if indication(o, "2") is Indication.GREEN]
    assert through_green and all(indication(o, "1") is FYA and indication(o, "5") is FYA for o in through_green)
    # The arrow is timed like the through it follows (SPaT): it ends when the through does.
    sample = through_green[len(through_green) // 2]
    left, through = _state(sample, "1"), _state(sample, "2")
    assert (left.min_end_time_s, left.likely_time_s, left.max_end_time_s) == (  # type: ignore[attr-defined]
        through.min_end_time_s,  # type: ignore[attr-defined]
        through.likely_time_s,  # type: ignore[attr-defined]
        through.max_end_time_s,  # type: ignore[attr-defined]
    )
    yellow_at = events_of(outputs, AtspmEvent.PHASE_BEGIN_YELLOW_CLEARANCE, "2")[0].time_s
    during_yellow = next(o for o in outputs if o.time_s > yellow_at + 1.0)
    assert indication(during_yellow, "1") is Indication.YELLOW
    after_yellow = next(o for o in outputs if o.time_s > yellow_at + SAMPLE_YELLOW_S + 0.2)
    assert indication(after_yellow, "1") is Indication.RED
    # Served permissively, the lefts never called their protected phase.
    assert not events_of(outputs, AtspmEvent.PHASE_CALL_REGISTERED, "1")


def test_a_left_still_waiting_when_its_arrow_ends_calls_the_protected_phase(sample_site: SiteConfig) -> None:
    controller = SignalController(sample_site)

    def lanes(now_s: float) -> list[LaneObservation]:
        # The south left queues behind heavy opposing traffic the whole time.
        return [
            waiting_lane(lane) if lane == "south_left" else observation
            for lane, observation in zip(ALL_LANES, lanes_for(occupied=["2"] if now_s < 1020.0 else []), strict=True)
        ]

    outputs = drive(controller, 1000.0, 80.0, lanes)
    arrow = [o.time_s for o in outputs if indication(o, "1") is FYA]
    calls = events_of(outputs, AtspmEvent.PHASE_CALL_REGISTERED, "1")
    assert arrow and calls
    assert all(call.time_s > max(arrow) for call in calls if call.time_s > min(arrow)), "called while turning"
    assert any(indication(o, "1") is Indication.GREEN for o in outputs if o.time_s > max(arrow)), "never protected"


def _context(plan: PhasePlan, lanes: dict[str, LaneObservation]) -> DecisionContext:
    observations = {lane_id: lanes.get(lane_id, empty_lane(lane_id)) for lane_id in ALL_LANES}
    return DecisionContext(
        now_s=1000.0,
        stage_index=plan.stage_index("ew_through"),
        time_in_green_s=30.0,
        min_green_s=8.0,
        max_green_s=35.0,
        stage_calls=(True, True, False, True),
        lanes=observations,
    )


@pytest.mark.parametrize(
    ("left", "served_next"),
    [
        (waiting_lane("south_left"), "ns_through"),  # one left: it turns in the through's green
        # four lefts: more than can be expected to find gaps in the opposing traffic
        (LaneObservation.model_validate({**occupied_lane("south_left").model_dump(), "queued_vehicles": 4}), "ns_left"),
        # two lefts that have not waited long: they turn in the through's green
        (
            LaneObservation.model_validate({**waiting_lane("south_left").model_dump(), "queued_vehicles": 2}),
            "ns_through",
        ),
        # two lefts would turn permissively, but one has waited too long already
        (
            LaneObservation.model_validate(
                {**waiting_lane("south_left").model_dump(), "queued_vehicles": 2, "max_wait_s": 75.0}
            ),
            "ns_left",
        ),
    ],
)
def test_the_protected_left_phase_is_passed_over_while_its_lefts_are_few_and_fresh(
    sample_site: SiteConfig, left: LaneObservation, served_next: str
) -> None:
    plan = PhasePlan.from_site(sample_site)
    lanes = {"south_left": left, "north_through_right": occupied_lane("north_through_right")}
    decision = AdaptiveStrategy(plan).decide(_context(plan, lanes))
    assert decision.action is Action.TERMINATE
    assert plan.stages[decision.next_stage or 0].stage_id == served_next


def test_sumo_programs_show_the_arrow_as_a_minor_green_in_the_through_phase(
    sample_site: SiteConfig, tmp_path: object
) -> None:
    net_file = resolve_relative(SAMPLE_SITE, sample_site.simulation.network)
    heads = signal_heads_for_network(sample_site, net_file)
    program = write_program(f"{tmp_path}/p.add.xml", "delay_based", sample_site, net_file, {})
    states = [line.split('state="')[1][:16] for line in program.read_text().splitlines() if "<phase" in line]
    links_of = {
        group: [link.index for link in heads.links if link.signal_group == group] for group in ("1", "2", "3", "4")
    }
    through_green = [state for state in states if all(state[i] == "G" for i in links_of["2"])]
    assert through_green and all(all(state[i] == "g" for i in links_of["1"]) for state in through_green)
    side_green = [state for state in states if all(state[i] == "G" for i in links_of["4"])]
    assert side_green and all(all(state[i] == "g" for i in links_of["3"]) for state in side_green)
    assert all(all(state[i] == "r" for i in links_of["1"]) for state in side_green)


def test_a_busy_opposing_through_leaves_no_gaps_and_the_protected_left_phase_runs(sample_site: SiteConfig) -> None:
    # Three lefts wait on the south approach. With the opposing (north) through empty they will
    # find gaps in its green; with a dense platoon coming at 12 m/s they will not, and the
    # protected phase runs first.
    plan = PhasePlan.from_site(sample_site)
    three_lefts = LaneObservation.model_validate({**waiting_lane("south_left").model_dump(), "queued_vehicles": 3})
    quiet = {"south_left": three_lefts, "south_through_right": occupied_lane("south_through_right")}
    busy = {
        **quiet,
        "north_through_right": LaneObservation.model_validate(
            {
                **empty_lane("north_through_right").model_dump(),
                "approaching_vehicles": 10,
                "approaching_speed_mean_mps": 12.0,
            }
        ),
    }
    for lanes, served_next in ((quiet, "ns_through"), (busy, "ns_left")):
        decision = AdaptiveStrategy(plan).decide(_context(plan, lanes))
        assert decision.action is Action.TERMINATE
        assert plan.stages[decision.next_stage or 0].stage_id == served_next
