"""The priority gate: only signed, allow-listed, valid, unexpired requests within the rate limit
become controller calls, and every rejection names what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from rsu.key_files import generate_key_files, priority_gate_from_site
from rsu_contracts.config import ConfigError, SiteConfig, load_site_config
from rsu_contracts.enums import PriorityKind
from rsu_contracts.messages import (
    PriorityAction,
    PriorityPhase,
    PriorityReason,
    PriorityService,
    PriorityStatus,
    PriorityStatusKind,
    decode,
)
from rsu_contracts.messages.priority import PriorityRequest
from tests.priority.helpers import (
    AMBULANCE,
    BUS,
    FIRE,
    START_S,
    Clock,
    Requesters,
    check_out,
    make_gate,
    request,
    site_with_priority,
    topics_of,
)
from v2x.priority import PriorityGate, TokenBucket

EMERGENCY, TRANSIT = PriorityKind.EMERGENCY, PriorityKind.TRANSIT


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def requesters(clock: Clock) -> Requesters:
    return Requesters.make(clock)


@pytest.fixture
def site(sample_site: SiteConfig) -> SiteConfig:
    return site_with_priority(sample_site, rate_per_min=6, burst=3, max_active_requests=4)


@pytest.fixture
def gate(site: SiteConfig, requesters: Requesters) -> PriorityGate:
    return make_gate(site, requesters)


def test_a_signed_allow_listed_request_becomes_a_call(
    site: SiteConfig, requesters: Requesters, gate: PriorityGate
) -> None:
    sent = request(requesters, site, AMBULANCE, EMERGENCY, approach="north", arrival_in_s=20.0)
    outcome = gate.handle(sent.payload, sent.user_properties, START_S)
    assert outcome.status is PriorityStatusKind.ACCEPTED, outcome.reason
    assert (outcome.requester_id, outcome.request_id, outcome.signal_group) == (AMBULANCE, "r1", "2")
    assert outcome.stage_id == "ns_through"
    (call,) = gate.calls()
    assert (call.call_id, call.kind, call.signal_group, call.arrival_time_s) == (
        f"{AMBULANCE}/r1",
        EMERGENCY,
        "2",
        START_S + 20.0,
    )
    # The answer is a valid status message.
    status = PriorityStatus(unit_id=site.unit_id, seq=0, capture_time_s=1, publish_time_s=1, **outcome.status_fields())
    assert decode(PriorityStatus, status.to_json()).status is PriorityStatusKind.ACCEPTED


def _rejected(gate: PriorityGate, payload: bytes, properties: list[tuple[str, str]], reason: PriorityReason) -> str:
    outcome = gate.handle(payload, properties, START_S)
    assert outcome.status is PriorityStatusKind.REJECTED
    assert outcome.reason_code is reason, outcome.reason
    assert gate.calls() == [], "a rejected request must not reach the controller"
    return outcome.reason


def test_an_unsigned_request_is_rejected(site: SiteConfig, requesters: Requesters, gate: PriorityGate) -> None:
    sent = request(requesters, site, AMBULANCE, EMERGENCY, approach="north")
    reason = _rejected(gate, sent.payload, [], PriorityReason.UNSIGNED)
    assert "unsigned" in reason


def test_a_tampered_payload_is_rejected(site: SiteConfig, requesters: Requesters, gate: PriorityGate) -> None:
    sent = request(requesters, site, AMBULANCE, EMERGENCY, approach="north")
    forged = sent.payload.replace(b'"north"', b'"south"')
    reason = _rejected(gate, forged, sent.user_properties, PriorityReason.TAMPERED)
    assert "differs from the signed one" in reason


def test_a_forged_signature_is_rejected(site: SiteConfig, requesters: Requesters, gate: PriorityGate) -> None:
    sent = request(requesters, site, AMBULANCE, EMERGENCY, approach="north")
    properties = [(name, "A" * 86 + "==" if name == "rsu-sig" else value) for name, value in sent.user_properties]
    _rejected(gate, sent.payload, properties, PriorityReason.BAD_SIGNATURE)


def test_a_replayed_request_is_rejected(site: SiteConfig, requesters: Requesters, gate: PriorityGate) -> None:
    sent = request(requesters, site, AMBULANCE, EMERGENCY, approach="north")
    assert gate.handle(sent.payload, sent.user_properties, START_S).status is PriorityStatusKind.ACCEPTED
    outcome = gate.handle(sent.payload, sent.user_properties, START_S + 0.5)
    assert outcome.reason_code is PriorityReason.REPLAYED, outcome.reason
    assert "replayed" in outcome.reason


def test_a_request_signed_too_long_ago_is_rejected(
    site: SiteConfig, requesters: Requesters, gate: PriorityGate
) -> None:
    sent = request(requesters, site, AMBULANCE, EMERGENCY, approach="north")
    outcome = gate.handle(sent.payload, sent.user_properties, START_S + 30.0)
    assert outcome.reason_code is PriorityReason.STALE, outcome.reason
    assert gate.calls() == []


def test_an_unknown_requester_is_rejected(site: SiteConfig, requesters: Requesters, gate: PriorityGate) -> None:
    sent = request(requesters, site, "stranger", EMERGENCY, approach="north")
    reason = _rejected(gate, sent.payload, sent.user_properties, PriorityReason.UNKNOWN_REQUESTER)
    assert "not among the trusted keys" in reason


def test_signing_as_another_requester_is_rejected(site: SiteConfig, requesters: Requesters, gate: PriorityGate) -> None:
    # The bus's key, but claiming to be the ambulance (which may preempt).
    sent = request(requesters, site, AMBULANCE, EMERGENCY, key_of=BUS, approach="north")
    reason = _rejected(gate, sent.payload, sent.user_properties, PriorityReason.UNKNOWN_REQUESTER)
    assert f"key of requester '{BUS}'" in reason


def test_a_kind_the_requester_may_not_ask_for_is_rejected(
    site: SiteConfig, requesters: Requesters, gate: PriorityGate
) -> None:
    sent = request(requesters, site, BUS, EMERGENCY, approach="north")
    reason = _rejected(gate, sent.payload, sent.user_properties, PriorityReason.WRONG_KIND)
    assert reason == f"requester '{BUS}' may ask for transit, not emergency"


def test_an_unknown_approach_is_rejected_and_the_known_ones_named(
    site: SiteConfig, requesters: Requesters, gate: PriorityGate
) -> None:
    sent = request(requesters, site, AMBULANCE, EMERGENCY, approach="nowhere")
    reason = _rejected(gate, sent.payload, sent.user_properties, PriorityReason.UNKNOWN_APPROACH)
    assert "'nowhere'" in reason and "north, south, east, west" in reason


@pytest.mark.parametrize("group", ["99", "p_north"])
def test_an_unknown_or_pedestrian_signal_group_is_rejected(
    site: SiteConfig, requesters: Requesters, gate: PriorityGate, group: str
) -> None:
    sent = request(requesters, site, AMBULANCE, EMERGENCY, signal_group=group)
    reason = _rejected(gate, sent.payload, sent.user_properties, PriorityReason.UNKNOWN_SIGNAL_GROUP)
    assert f"{group!r} is not a vehicle signal group" in reason


def test_an_expired_request_is_rejected(site: SiteConfig, requesters: Requesters, gate: PriorityGate) -> None:
    sent = request(requesters, site, AMBULANCE, EMERGENCY, approach="north", valid_until_s=START_S - 1.0)
    reason = _rejected(gate, sent.payload, sent.user_properties, PriorityReason.EXPIRED)
    assert "lapsed" in reason


def test_a_request_for_another_unit_is_rejected(site: SiteConfig, requesters: Requesters, gate: PriorityGate) -> None:
    signer = requesters.signer(AMBULANCE)
    wrong = PriorityRequest(
        unit_id="some-other-unit",
        seq=1,
        capture_time_s=START_S,
        publish_time_s=START_S,
        requester_id=AMBULANCE,
        request_id="r1",
        kind=EMERGENCY,
        approach="north",
    )
    payload = wrong.to_json()
    topic = topics_of(site).priority_request
    _rejected(gate, payload, signer.sign(topic, payload), PriorityReason.WRONG_UNIT)


def test_a_signed_but_malformed_payload_is_rejected_naming_the_field(
    site: SiteConfig, requesters: Requesters, gate: PriorityGate
) -> None:
    sent = request(requesters, site, AMBULANCE, EMERGENCY, approach="north")
    payload = sent.payload.replace(b'"arrival_in_s":0.0', b'"arrival_in_s":-5.0')
    topic = topics_of(site).priority_request
    reason = _rejected(gate, payload, requesters.signer(AMBULANCE).sign(topic, payload), PriorityReason.MALFORMED)
    assert "arrival_in_s" in reason


def test_a_flood_is_rate_limited_per_requester(
    site: SiteConfig, requesters: Requesters, gate: PriorityGate, clock: Clock
) -> None:
    codes = []
    for index in range(6):
        clock.now_s = START_S + index * 0.1
        sent = request(requesters, site, AMBULANCE, EMERGENCY, request_id=f"r{index}", approach="north")
        codes.append(gate.handle(sent.payload, sent.user_properties, clock.now_s).reason_code)
    # burst 3, then 6 per minute: the fourth within a second is refused.
    assert codes == [PriorityReason.OK] * 3 + [PriorityReason.RATE_LIMITED] * 3
    assert len(gate.calls()) == 3
    # Another requester is not affected by the ambulance's flood.
    sent = request(requesters, site, BUS, TRANSIT, approach="east")
    assert gate.handle(sent.payload, sent.user_properties, clock.now_s).reason_code is PriorityReason.OK
    # Ten seconds later one more token has come back (6 per minute): a renewal goes through.
    clock.now_s += 10.0
    sent = request(requesters, site, AMBULANCE, EMERGENCY, request_id="r0", approach="north", arrival_in_s=5.0)
    assert gate.handle(sent.payload, sent.user_properties, clock.now_s).reason_code is PriorityReason.OK


def test_answers_to_forgeries_are_rate_limited_too(
    site: SiteConfig, requesters: Requesters, gate: PriorityGate
) -> None:
    sent = request(requesters, site, "stranger", EMERGENCY, approach="north")
    outcomes = [gate.handle(sent.payload, sent.user_properties, START_S) for _ in range(50)]
    assert all(outcome.reason_code is PriorityReason.UNKNOWN_REQUESTER for outcome in outcomes)
    announced = sum(outcome.announce for outcome in outcomes)
    assert 1 <= announced <= 10


def test_at_most_max_active_requests_are_checked_in(
    site: SiteConfig, requesters: Requesters, gate: PriorityGate, clock: Clock
) -> None:
    outcomes = []
    for index in range(6):
        clock.now_s = START_S + index * 20.0  # slow enough for the rate limit
        name = (AMBULANCE, FIRE)[index % 2]
        sent = request(requesters, site, name, EMERGENCY, request_id=f"r{index}", approach="north", arrival_in_s=300)
        outcomes.append(gate.handle(sent.payload, sent.user_properties, clock.now_s).reason_code)
    assert outcomes == [PriorityReason.OK] * 4 + [PriorityReason.BUSY] * 2
    assert gate.active_count == 4


def test_check_out_ends_the_request(site: SiteConfig, requesters: Requesters, gate: PriorityGate) -> None:
    sent = request(requesters, site, BUS, TRANSIT, request_id="trip-1", approach="west", arrival_in_s=30)
    assert gate.handle(sent.payload, sent.user_properties, START_S).status is PriorityStatusKind.ACCEPTED
    out = check_out(requesters, site, BUS, TRANSIT, "trip-1")
    outcome = gate.handle(out.payload, out.user_properties, START_S + 0.1)
    assert (outcome.status, outcome.reason_code) == (PriorityStatusKind.ENDED, PriorityReason.CHECKED_OUT)
    assert gate.calls() == []
    again = check_out(requesters, site, BUS, TRANSIT, "trip-1")
    outcome = gate.handle(again.payload, again.user_properties, START_S + 0.2)
    assert outcome.reason_code is PriorityReason.UNKNOWN_REQUEST


def test_another_requester_cannot_check_out_a_request(
    site: SiteConfig, requesters: Requesters, gate: PriorityGate
) -> None:
    sent = request(requesters, site, AMBULANCE, EMERGENCY, request_id="run-1", approach="north")
    gate.handle(sent.payload, sent.user_properties, START_S)
    other = request(requesters, site, FIRE, EMERGENCY, request_id="run-1", action=PriorityAction.CANCEL)
    assert gate.handle(other.payload, other.user_properties, START_S).reason_code is PriorityReason.UNKNOWN_REQUEST
    assert [call.call_id for call in gate.calls()] == [f"{AMBULANCE}/run-1"]


def test_a_request_lapses_after_its_arrival_plus_grace(
    site: SiteConfig, requesters: Requesters, gate: PriorityGate
) -> None:
    sent = request(requesters, site, AMBULANCE, EMERGENCY, approach="north", arrival_in_s=20.0)
    gate.handle(sent.payload, sent.user_properties, START_S)
    grace_s = site.priority.grace_after_arrival_s
    assert gate.expire(START_S + 20.0 + grace_s - 0.1) == []
    (ended,) = gate.expire(START_S + 20.0 + grace_s)
    assert (ended.status, ended.reason_code, ended.requester_id) == (
        PriorityStatusKind.ENDED,
        PriorityReason.EXPIRED,
        AMBULANCE,
    )
    assert gate.calls() == []


def test_the_controller_output_turns_into_active_and_max_dwell_answers(
    site: SiteConfig, requesters: Requesters, gate: PriorityGate
) -> None:
    sent = request(requesters, site, AMBULANCE, EMERGENCY, approach="north", arrival_in_s=20.0)
    gate.handle(sent.payload, sent.user_properties, START_S)
    call_id = f"{AMBULANCE}/r1"
    entry = PriorityService(
        call_id=call_id,
        kind=EMERGENCY,
        signal_group="2",
        stage_id="ns_through",
        phase=PriorityPhase.PREEMPT_ENTRY,
        since_s=START_S,
    )
    dwell = entry.model_copy(update={"phase": PriorityPhase.PREEMPT_DWELL, "since_s": START_S + 5})
    assert gate.observe([entry], []) == []
    (active,) = gate.observe([dwell], [])
    assert (active.status, active.reason_code) == (PriorityStatusKind.ACTIVE, PriorityReason.PREEMPTION_DWELL)
    assert gate.observe([dwell], []) == [], "active is announced once"
    (ended,) = gate.observe([], [call_id])
    assert (ended.status, ended.reason_code) == (PriorityStatusKind.ENDED, PriorityReason.MAX_DWELL)
    assert gate.calls() == []


def test_no_requesters_means_every_request_is_rejected(sample_site: SiteConfig, requesters: Requesters) -> None:
    gate = PriorityGate(sample_site, [], topics_of(sample_site).priority_request)
    sent = request(requesters, sample_site, AMBULANCE, EMERGENCY, approach="north")
    outcome = gate.handle(sent.payload, sent.user_properties, START_S)
    assert outcome.reason_code is PriorityReason.UNKNOWN_REQUESTER
    assert "priority.requesters is empty" in outcome.reason
    assert gate.handle(sent.payload, [], START_S).reason_code is PriorityReason.UNSIGNED


def test_the_token_bucket_refills_with_time_and_ignores_a_clock_stepping_back() -> None:
    bucket = TokenBucket(rate_per_s=1.0, capacity=2.0)
    assert [bucket.take(100.0) for _ in range(3)] == [True, True, False]
    assert not bucket.take(50.0)
    assert bucket.take(101.0)
    assert not bucket.take(101.0)


# -- the site file ---------------------------------------------------------------------------------


def _site_file(tmp_path: Path, requesters: list[dict[str, object]]) -> Path:
    raw = yaml.safe_load(Path("datasets/sample_intersection/site.yaml").read_text())
    raw["simulation"] = {}
    raw["priority"] = {"requesters": requesters}
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_the_gate_reads_requester_keys_relative_to_the_site_file(tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir()
    generate_key_files(tmp_path / "keys" / "amb.pem", tmp_path / "keys" / "amb.pub.pem")
    path = _site_file(tmp_path, [{"id": "amb", "public_key": "keys/amb.pub.pem", "kinds": ["emergency"]}])
    site = load_site_config(path)
    gate = priority_gate_from_site(site, path, topics_of(site).priority_request)
    assert gate.active_count == 0


def test_a_missing_requester_key_names_the_field_and_the_file(tmp_path: Path) -> None:
    path = _site_file(tmp_path, [{"id": "amb", "public_key": "keys/missing.pub.pem", "kinds": ["emergency"]}])
    site = load_site_config(path)
    with pytest.raises(
        ConfigError, match=r"priority\.requesters\.0 \(amb\)\.public_key: .*missing\.pub\.pem not found"
    ):
        priority_gate_from_site(site, path, topics_of(site).priority_request)


def test_two_requesters_with_one_key_are_refused(tmp_path: Path) -> None:
    generate_key_files(tmp_path / "a.pem", tmp_path / "a.pub.pem")
    entries = [
        {"id": "a", "public_key": "a.pub.pem", "kinds": ["emergency"]},
        {"id": "b", "public_key": "a.pub.pem", "kinds": ["transit"]},
    ]
    path = _site_file(tmp_path, entries)
    site = load_site_config(path)
    with pytest.raises(ConfigError, match="share the public key"):
        priority_gate_from_site(site, path, topics_of(site).priority_request)


@pytest.mark.parametrize(
    ("priority", "message"),
    [
        ({"requesters": [{"id": "a", "public_key": "k", "kinds": ["ambulance"]}]}, "priority.requesters.0.kinds.0"),
        ({"requesters": [{"id": "a", "public_key": "k", "kinds": []}]}, "priority.requesters.0.kinds"),
        (
            {"requesters": [{"id": "a", "public_key": "k", "kinds": ["transit"]}] * 2},
            "ids \\['a'\\] are listed twice",
        ),
        ({"rate_per_min": 0}, "priority.rate_per_min"),
        ({"preemption": {"max_dwell_s": 5000}}, "priority.preemption.max_dwell_s"),
        ({"transit": {"max_extension_s": -1}}, "priority.transit.max_extension_s"),
        ({"requesters": [], "colour": "red"}, "priority.colour: unknown key"),
    ],
)
def test_a_bad_priority_section_names_the_field(tmp_path: Path, priority: dict[str, object], message: str) -> None:
    raw = yaml.safe_load(Path("datasets/sample_intersection/site.yaml").read_text())
    raw["priority"] = priority
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=message):
        load_site_config(path)
