"""Signed requests through the gate into the controller: preemption and transit priority, always
through the normal clearance intervals (checked by the independent SafetyChecker on every output)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pytest

from rsu_clients.priority_requester import SignedRequest
from rsu_contracts.config import SiteConfig
from rsu_contracts.enums import PriorityKind
from rsu_contracts.messages import Indication, LaneObservation, PriorityPhase, PriorityReason, PriorityStatusKind
from rsu_contracts.messages.perception import CrosswalkObservation
from signal_control import ControllerOutput, SignalController
from signal_control.events import AtspmEvent
from tests.priority.helpers import (
    AMBULANCE,
    BUS,
    START_S,
    Clock,
    Requesters,
    check_out,
    make_gate,
    request,
    site_with_priority,
)
from tests.signal_control.harness import (
    SAMPLE_ALL_RED_S,
    SAMPLE_MAX_GREEN_S,
    SAMPLE_MIN_GREEN_S,
    SAMPLE_PED_CLEARANCE_S,
    SAMPLE_STAGE_CLEARANCE_S,
    SAMPLE_WALK_S,
    SAMPLE_YELLOW_S,
    SafetyChecker,
    green_starts,
    indication,
    lanes_for,
    pedestrians_waiting,
)
from v2x.priority import PriorityGate, PriorityOutcome

EMERGENCY, TRANSIT = PriorityKind.EMERGENCY, PriorityKind.TRANSIT
STEP_S = 0.1
TOLERANCE_S = 1e-6
MAX_DWELL_S = 60.0
MAX_EXTENSION_S = 10.0
MAX_EARLY_GREEN_S = 10.0

LanesAt = Callable[[float], Sequence[LaneObservation]]


@dataclass
class Junction:
    """The controller behind the gate, driven at 10 Hz on one clock, every output safety-checked."""

    site: SiteConfig
    clock: Clock
    requesters: Requesters
    controller: SignalController = field(init=False)
    gate: PriorityGate = field(init=False)
    checker: SafetyChecker = field(init=False)
    outputs: list[ControllerOutput] = field(default_factory=list)
    answers: list[PriorityOutcome] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.controller = SignalController(self.site)
        self.gate = make_gate(self.site, self.requesters)
        self.checker = SafetyChecker.for_site(self.site)

    def send(self, sent: SignedRequest) -> PriorityOutcome:
        return self.send_raw(sent.payload, sent.user_properties)

    def send_raw(self, payload: bytes, properties: list[tuple[str, str]]) -> PriorityOutcome:
        outcome = self.gate.handle(payload, properties, self.clock.now_s)
        self.answers.append(outcome)
        return outcome

    def run(
        self,
        duration_s: float,
        lanes_at: LanesAt,
        crosswalks: Sequence[CrosswalkObservation] = (),
    ) -> list[ControllerOutput]:
        ran = []
        for _ in range(round(duration_s / STEP_S)):
            self.clock.now_s = round(self.clock.now_s + STEP_S, 6)
            now_s = self.clock.now_s
            self.answers += self.gate.expire(now_s)
            output = self.controller.step(now_s, lanes_at(now_s), crosswalks, priority=self.gate.calls())
            self.checker.observe(output)
            self.answers += self.gate.observe(output.priority, output.exhausted_calls)
            ran.append(output)
        self.outputs += ran
        return ran


def _events(outputs: Sequence[ControllerOutput], code: int) -> list[tuple[float, str]]:
    return [(event.time_s, event.parameter) for output in outputs for event in output.events if event.code == code]


def _first(outputs: Sequence[ControllerOutput], group: str, shown: Indication) -> float:
    return next(output.time_s for output in outputs if indication(output, group) is shown)


@pytest.fixture
def site(sample_site: SiteConfig) -> SiteConfig:
    return site_with_priority(
        sample_site,
        rate_per_min=60,
        burst=10,
        preemption={"max_dwell_s": MAX_DWELL_S},
        transit={"max_extension_s": MAX_EXTENSION_S, "max_early_green_s": MAX_EARLY_GREEN_S},
    )


@pytest.fixture
def junction(site: SiteConfig) -> Junction:
    clock = Clock()
    return Junction(site, clock, Requesters.make(clock))


def main_street_busy(_now_s: float) -> list[LaneObservation]:
    """Vehicles keep arriving on the main street (2, 6); nobody else is there."""
    return lanes_for(occupied=("2", "6"))


def _settle_in_main_street_green(junction: Junction) -> None:
    junction.run(60.0, main_street_busy)
    assert indication(junction.outputs[-1], "2") is Indication.GREEN
    assert indication(junction.outputs[-1], "4") is Indication.RED


# -- emergency preemption ----------------------------------------------------------------------------


def test_a_signed_emergency_request_gets_its_approach_green_through_clearance_and_then_returns(
    junction: Junction,
) -> None:
    _settle_in_main_street_green(junction)
    sent_at_s = junction.clock.now_s
    # Far away: the request holds for its arrival plus the grace (15 s), beyond this test's dwell.
    accepted = junction.send(
        request(junction.requesters, junction.site, AMBULANCE, EMERGENCY, approach="east", arrival_in_s=50.0)
    )
    assert accepted.status is PriorityStatusKind.ACCEPTED, accepted.reason
    assert accepted.signal_group == "4"
    during = junction.run(60.0, main_street_busy)

    # Input on and entry at once; the main street ends through yellow and all-red, then east is green.
    assert _events(during, AtspmEvent.PREEMPT_CALL_INPUT_ON) == [(pytest.approx(sent_at_s + STEP_S), "4")]
    assert _events(during, AtspmEvent.PREEMPT_ENTRY_STARTED) == [(pytest.approx(sent_at_s + STEP_S), "4")]
    yellow_s = _first(during, "2", Indication.YELLOW)
    green_s = _first(during, "4", Indication.GREEN)
    assert yellow_s == pytest.approx(sent_at_s + STEP_S)
    assert _first(during, "2", Indication.RED) >= yellow_s + SAMPLE_YELLOW_S - TOLERANCE_S
    assert green_s >= yellow_s + SAMPLE_STAGE_CLEARANCE_S - TOLERANCE_S
    assert green_s <= yellow_s + SAMPLE_STAGE_CLEARANCE_S + 2 * STEP_S
    assert _events(during, AtspmEvent.PREEMPT_BEGIN_DWELL_SERVICE) == [(green_s, "4")]
    # Dwell: east stays green while the request is on, well beyond its max green, main street waiting.
    dwelling = [output for output in during if output.time_s >= green_s]
    assert all(indication(output, "4") is Indication.GREEN for output in dwelling)
    assert dwelling[-1].time_s - green_s > SAMPLE_MAX_GREEN_S["4"]
    assert dwelling[-1].priority[0].phase is PriorityPhase.PREEMPT_DWELL
    assert dwelling[-1].stage_id == "ew_through"
    assert "preemption" in dwelling[-1].reason
    active = [answer for answer in junction.answers if answer.status is PriorityStatusKind.ACTIVE]
    assert [(answer.reason_code, answer.stage_id) for answer in active] == [
        (PriorityReason.PREEMPTION_DWELL, "ew_through")
    ]

    # Check-out: input off, exit, and the strategy serves the waiting main street again.
    ended = junction.send(check_out(junction.requesters, junction.site, AMBULANCE, EMERGENCY, "r1"))
    assert (ended.status, ended.reason_code) == (PriorityStatusKind.ENDED, PriorityReason.CHECKED_OUT)
    after = junction.run(30.0, main_street_busy)
    assert [event.code for event in after[0].events if event.code >= 100] == [
        AtspmEvent.PREEMPT_CALL_INPUT_OFF,
        AtspmEvent.PREEMPT_BEGIN_EXIT_INTERVAL,
    ]
    assert after[0].priority == ()
    assert green_starts(after, "2"), "the main street must get green again after the exit"
    assert junction.checker.checked_outputs == len(junction.outputs)


def test_preemption_keeps_min_green_and_the_pedestrian_clearance(junction: Junction) -> None:
    # A pedestrian waits to cross the east leg (walks with the main street); the request comes the
    # moment the main street turns green, so min green, walk and pedestrian clearance are all running.
    crosswalks = pedestrians_waiting("cw_east")
    junction.run(2.0, main_street_busy, crosswalks)
    while indication(junction.outputs[-1], "2") is not Indication.GREEN:
        junction.run(STEP_S, main_street_busy, crosswalks)
    main_green_s = junction.outputs[-1].time_s
    walk_s = _first(junction.outputs, "p_east", Indication.GREEN)
    junction.send(
        request(junction.requesters, junction.site, AMBULANCE, EMERGENCY, signal_group="4", arrival_in_s=30.0)
    )
    during = junction.run(40.0, main_street_busy, crosswalks)
    yellow_s = _first(during, "2", Indication.YELLOW)
    assert yellow_s >= main_green_s + SAMPLE_MIN_GREEN_S["2"] - TOLERANCE_S
    assert yellow_s >= walk_s + SAMPLE_WALK_S + SAMPLE_PED_CLEARANCE_S - TOLERANCE_S
    assert _first(during, "4", Indication.GREEN) >= yellow_s + SAMPLE_STAGE_CLEARANCE_S - TOLERANCE_S


def test_preemption_is_bounded_by_the_max_dwell(junction: Junction) -> None:
    _settle_in_main_street_green(junction)
    sent = request(
        junction.requesters, junction.site, AMBULANCE, EMERGENCY, approach="east", valid_until_s=START_S + 3600
    )
    junction.send(sent)
    during = junction.run(MAX_DWELL_S + 40.0, main_street_busy)
    ((dwell_s, _),) = _events(during, AtspmEvent.PREEMPT_BEGIN_DWELL_SERVICE)
    ((exceeded_s, group),) = _events(during, AtspmEvent.PREEMPT_MAX_PRESENCE_EXCEEDED)
    assert group == "4"
    assert dwell_s + MAX_DWELL_S - TOLERANCE_S <= exceeded_s <= dwell_s + MAX_DWELL_S + STEP_S + TOLERANCE_S
    assert _events(during, AtspmEvent.PREEMPT_BEGIN_EXIT_INTERVAL) == [(exceeded_s, "4")]
    # The request ends at the unit, the controller returns to normal and the main street gets green.
    ended = [answer for answer in junction.answers if answer.status is PriorityStatusKind.ENDED]
    assert [answer.reason_code for answer in ended] == [PriorityReason.MAX_DWELL]
    assert junction.gate.calls() == []
    assert [start for start in green_starts(during, "2") if start > exceeded_s]
    assert _events(during, AtspmEvent.PREEMPT_CALL_INPUT_OFF) == [(pytest.approx(exceeded_s + STEP_S), "4")]


def test_rejected_requests_change_nothing(junction: Junction, site: SiteConfig) -> None:
    requesters, clock = junction.requesters, junction.clock

    def unsigned() -> tuple[bytes, list[tuple[str, str]]]:
        sent = request(requesters, site, AMBULANCE, EMERGENCY, request_id="unsigned", approach="east")
        return sent.payload, []

    def tampered() -> tuple[bytes, list[tuple[str, str]]]:
        sent = request(requesters, site, AMBULANCE, EMERGENCY, request_id="tampered", approach="west")
        return sent.payload.replace(b'"west"', b'"east"'), sent.user_properties

    def signed(name: str, kind: PriorityKind, **fields: object) -> Callable[[], tuple[bytes, list[tuple[str, str]]]]:
        def make() -> tuple[bytes, list[tuple[str, str]]]:
            sent = request(requesters, site, name, kind, request_id=f"bad-{clock.now_s:.0f}", **fields)
            return sent.payload, sent.user_properties

        return make

    cases: list[tuple[PriorityReason, Callable[[], tuple[bytes, list[tuple[str, str]]]]]] = [
        (PriorityReason.UNSIGNED, unsigned),
        (PriorityReason.TAMPERED, tampered),
        (PriorityReason.UNKNOWN_REQUESTER, signed("stranger", EMERGENCY, approach="east")),
        (PriorityReason.WRONG_KIND, signed(AMBULANCE, TRANSIT, approach="east")),
        (PriorityReason.UNKNOWN_APPROACH, signed(AMBULANCE, EMERGENCY, approach="nowhere")),
        (PriorityReason.UNKNOWN_SIGNAL_GROUP, signed(AMBULANCE, EMERGENCY, signal_group="p_east")),
        (PriorityReason.EXPIRED, signed(AMBULANCE, EMERGENCY, approach="east", valid_until_s=clock.now_s - 1)),
    ]
    junction.run(10.0, main_street_busy)
    for reason, make in cases:
        payload, properties = make()
        outcome = junction.send_raw(payload, properties)
        assert (outcome.status, outcome.reason_code) == (PriorityStatusKind.REJECTED, reason), outcome.reason
        # Sent again: whatever authenticated is now a replay; the rest fails as before.
        replay = junction.send_raw(payload, properties)
        authenticated = reason not in (
            PriorityReason.UNSIGNED,
            PriorityReason.TAMPERED,
            PriorityReason.UNKNOWN_REQUESTER,
        )
        assert replay.reason_code is (PriorityReason.REPLAYED if authenticated else reason), replay.reason
        junction.run(5.0, main_street_busy)
    # Over the rate: the bus's burst (10) spent on check-outs of requests that do not exist, then a
    # valid check-in from it is refused.
    for index in range(10):
        junction.send(check_out(requesters, site, BUS, TRANSIT, f"none-{index}"))
    over_rate = junction.send(request(requesters, site, BUS, TRANSIT, request_id="late", approach="east"))
    assert over_rate.reason_code is PriorityReason.RATE_LIMITED
    junction.run(60.0, main_street_busy)

    reference = SignalController(site)
    reference_outputs = [reference.step(o.time_s, main_street_busy(o.time_s), ()) for o in junction.outputs]
    assert [(o.groups, o.events, o.priority) for o in junction.outputs] == [
        (o.groups, o.events, o.priority) for o in reference_outputs
    ]
    assert not any(answer.status is PriorityStatusKind.ACCEPTED for answer in junction.answers)


# -- transit signal priority -----------------------------------------------------------------------


def _main_street_empties_at(empty_from_s: float) -> LanesAt:
    def lanes(now_s: float) -> list[LaneObservation]:
        return lanes_for(occupied=("2", "6")) if now_s < empty_from_s else lanes_for(waiting=("4", "8"))

    return lanes


def test_transit_extension_holds_the_green_for_a_bus_due_soon_and_is_bounded(junction: Junction) -> None:
    _settle_in_main_street_green(junction)
    # The main street's detectors empty now (it would gap out); a bus on it is 6 s away.
    empty_from_s = junction.clock.now_s
    junction.send(request(junction.requesters, junction.site, BUS, TRANSIT, approach="north", arrival_in_s=6.0))
    during = junction.run(40.0, _main_street_empties_at(empty_from_s))
    ((extended_at_s, group),) = _events(during, AtspmEvent.TSP_ADJUSTMENT_TO_EXTEND_GREEN)
    assert group == "2"
    yellow_s = _first(during, "2", Indication.YELLOW)
    passage_s = junction.site.signal_group("2").passage_s
    # Held until the bus has passed (arrival + passage), and never longer than the max extension.
    assert yellow_s >= empty_from_s + 6.0 + passage_s - TOLERANCE_S
    assert yellow_s - extended_at_s <= MAX_EXTENSION_S + STEP_S + TOLERANCE_S
    assert any(output.priority and output.priority[0].phase is PriorityPhase.TRANSIT_EXTEND_GREEN for output in during)
    assert [a.reason_code for a in junction.answers if a.status is PriorityStatusKind.ACTIVE] == [
        PriorityReason.TRANSIT_EXTEND_GREEN
    ]


def test_no_extension_for_a_bus_beyond_the_max_extension(junction: Junction, site: SiteConfig) -> None:
    _settle_in_main_street_green(junction)
    empty_from_s = junction.clock.now_s
    junction.send(request(junction.requesters, site, BUS, TRANSIT, approach="north", arrival_in_s=25.0))
    during = junction.run(20.0, _main_street_empties_at(empty_from_s))
    assert _events(during, AtspmEvent.TSP_ADJUSTMENT_TO_EXTEND_GREEN) == []
    # Same gap-out as without any request.
    reference = Junction(site, Clock(), junction.requesters)
    reference.run(60.0, main_street_busy)
    baseline = reference.run(20.0, _main_street_empties_at(empty_from_s))
    assert _first(during, "2", Indication.YELLOW) == pytest.approx(_first(baseline, "2", Indication.YELLOW))


def test_transit_early_green_shortens_a_conflicting_green_by_at_most_the_limit(junction: Junction) -> None:
    # Busy main street that would run to its max green (45 s); a bus waits on the east approach.
    junction.run(1.0, main_street_busy)
    while indication(junction.outputs[-1], "2") is not Indication.GREEN:
        junction.run(STEP_S, main_street_busy)
    main_green_s = junction.outputs[-1].time_s
    junction.send(request(junction.requesters, junction.site, BUS, TRANSIT, approach="east", arrival_in_s=60.0))
    during = junction.run(60.0, main_street_busy)
    ((early_s, group),) = _events(during, AtspmEvent.TSP_ADJUSTMENT_TO_EARLY_GREEN)
    assert group == "4"
    green_s = _first(during, "2", Indication.YELLOW) - main_green_s
    assert green_s == pytest.approx(SAMPLE_MAX_GREEN_S["2"] - MAX_EARLY_GREEN_S, abs=STEP_S + TOLERANCE_S)
    assert _first(during, "4", Indication.GREEN) >= early_s + SAMPLE_STAGE_CLEARANCE_S - TOLERANCE_S


def test_at_most_one_transit_adjustment_per_cycle(junction: Junction, site: SiteConfig) -> None:
    _settle_in_main_street_green(junction)
    empty_from_s = junction.clock.now_s
    junction.send(request(junction.requesters, site, BUS, TRANSIT, approach="north", arrival_in_s=4.0))
    junction.run(2.0, _main_street_empties_at(empty_from_s))
    # A second bus on the cross street checks in during the extension: no early green this cycle.
    junction.send(request(junction.requesters, site, BUS, TRANSIT, request_id="r2", approach="east", arrival_in_s=9.0))
    during = junction.run(15.0, _main_street_empties_at(empty_from_s))
    adjustments = _events(junction.outputs, AtspmEvent.TSP_ADJUSTMENT_TO_EXTEND_GREEN) + _events(
        junction.outputs, AtspmEvent.TSP_ADJUSTMENT_TO_EARLY_GREEN
    )
    assert len(adjustments) == 1
    assert len(_events(during, AtspmEvent.TSP_CHECK_IN)) == 1


def test_transit_priority_yields_to_preemption(junction: Junction, site: SiteConfig) -> None:
    _settle_in_main_street_green(junction)
    junction.send(request(junction.requesters, site, BUS, TRANSIT, approach="north", arrival_in_s=3.0))
    junction.send(request(junction.requesters, site, AMBULANCE, EMERGENCY, approach="east", arrival_in_s=30.0))
    during = junction.run(20.0, main_street_busy)
    assert _events(during, AtspmEvent.TSP_ADJUSTMENT_TO_EXTEND_GREEN) == []
    assert _first(during, "4", Indication.GREEN) > 0
    assert all(service.kind is EMERGENCY for output in during for service in output.priority)


def test_a_bad_call_passed_straight_to_the_controller_is_an_error(site: SiteConfig) -> None:
    from signal_control.priority import PriorityCall

    controller = SignalController(site)
    with pytest.raises(ValueError, match="'p_east' is not a vehicle signal group"):
        controller.step(START_S, None, priority=[PriorityCall("x/1", EMERGENCY, "p_east", START_S)])


def test_a_preemption_at_start_up_clears_straight_to_the_requested_stage(junction: Junction) -> None:
    junction.send(request(junction.requesters, junction.site, AMBULANCE, EMERGENCY, approach="west", arrival_in_s=30.0))
    during = junction.run(10.0, main_street_busy)
    # Start-up all-red, then the west approach (group 8, stage ew_through) first, not ns_left.
    assert green_starts(during, "8")[0] == pytest.approx(START_S + STEP_S + SAMPLE_ALL_RED_S, abs=STEP_S)
    assert green_starts(during, "1") == [] and green_starts(during, "2") == []
    assert _events(during, AtspmEvent.PREEMPT_BEGIN_DWELL_SERVICE) == [(green_starts(during, "8")[0], "8")]
