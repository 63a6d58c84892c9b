"""Fuzz every decoder of received bytes: only the documented rejection may come out, never a crash.

Documented rejections: MessageError (rsu_contracts.messages.decode), UperError (v2x.uper decoders),
WireError (v2x.wire.decode_payload), SignatureError subclasses (SignatureVerifier.verify). The
vehicle SDK's handle(), the priority gate's handle() and the centre collector's decode path reject
by returning (None / a REJECTED outcome) and must not raise at all. Anything else (TypeError,
KeyError, IndexError, OverflowError, RecursionError, ...) fails the test. Run long with
RSU_HYPOTHESIS_PROFILE=fuzz.
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from rsu.centre.collector import CentreCollector, _Inbound
from rsu.centre.store import AggregateStore
from rsu.runtime.mqtt import Inbound
from rsu_clients.vehicle import VehicleClient
from rsu_contracts.config.model import MqttConfig
from rsu_contracts.messages import ALL_MESSAGES, Aggregate, Message, MessageError, PriorityRequest, decode
from rsu_contracts.messages.priority import PriorityStatusKind
from rsu_contracts.topics import Topics
from tests.fuzz.strategies import (
    FUZZ_SETTINGS,
    NOW_S,
    SITE,
    encode_json,
    hostile_payloads,
    hostile_text,
    hostile_timestamps,
    json_values,
    message_documents,
)
from tests.priority.helpers import AMBULANCE, Clock, Requesters, site_with_priority
from tests.v2x_wire.builders import FakeClock, signer, spat, warning
from v2x.priority import PriorityGate
from v2x.signing import (
    DIGEST,
    KEY_ID,
    RETAINED,
    SEQ,
    SIGNATURE,
    TIMESTAMP,
    TOPIC,
    UNIT,
    SignatureError,
    SignatureVerifier,
    UnitSigner,
)
from v2x.uper import ItsIdentity, UperError, decode_denm, decode_mapem, decode_spatem, encode_mapem
from v2x.wire import Encoding, MessageClass, TopicLayout, WireError, decode_payload, encode_for_topic

UNIT_ID = "rsu-test"
IDENTITY = ItsIdentity(station_id=99, intersection_numeric_id=7, signal_group_ids={"2": 2, "4": 4, "p_north": 17})

# Genuine UPER encodings to mutate: bit flips and truncations of real messages reach far deeper
# into the decoders than random bytes do.
GENUINE_UPER = {
    "spatem": encode_for_topic(spat(UNIT_ID), Encoding.UPER, identity=IDENTITY).payload,
    "denm": encode_for_topic(warning(UNIT_ID), Encoding.UPER, identity=IDENTITY).payload,
    "mapem": encode_mapem(SITE, station_id=5, timestamp_s=NOW_S),
}


# reference_time_s is the receiver's own clock (the SDK passes its receive time), not an input: any
# time from 1970 to 2200. An absurd clock (1e20 s, year 10000) makes datetime.fromtimestamp raise in
# from_minute_of_year; that is a broken local clock, not hostile bytes, so it is not fuzzed here.
receive_clocks = st.floats(min_value=0.0, max_value=7_258_118_400.0)


@st.composite
def mutated(draw: st.DrawFn, genuine: bytes) -> bytes:
    data = bytearray(genuine)
    for _ in range(draw(st.integers(1, 8))):
        index = draw(st.integers(0, len(data) - 1))
        data[index] ^= 1 << draw(st.integers(0, 7))
    cut = draw(st.integers(0, len(data)))
    return bytes(data[:cut] if draw(st.booleans()) else data)


uper_payloads = st.one_of(st.binary(max_size=2_048), *(mutated(genuine) for genuine in GENUINE_UPER.values()))


def message_payloads(model: type[Message]) -> st.SearchStrategy[bytes]:
    return st.one_of(hostile_payloads, message_documents(model).map(encode_json))


all_message_payloads = st.sampled_from(ALL_MESSAGES).flatmap(
    lambda model: st.tuples(st.just(model), message_payloads(model))
)


# ------------------------------------------------------------------------------ message models


@FUZZ_SETTINGS
@given(all_message_payloads)
def test_decode_rejects_hostile_payloads_with_message_error(case: tuple[type[Message], bytes]) -> None:
    model, payload = case
    with contextlib.suppress(MessageError):
        decode(model, payload)


# ----------------------------------------------------------------------------------- V2X wire


@FUZZ_SETTINGS
@given(uper_payloads, receive_clocks)
def test_uper_decoders_raise_only_uper_error(payload: bytes, reference_time_s: float) -> None:
    for decoder in (lambda data: decode_spatem(data, reference_time_s), decode_mapem, decode_denm):
        with contextlib.suppress(UperError):
            decoder(payload)


wire_properties: st.SearchStrategy[dict[str, str]] = st.one_of(
    st.just({}),
    st.dictionaries(st.sampled_from(["rsu-enc", "x"]), st.sampled_from(["json", "uper", "asn1", ""]) | hostile_text),
)


@FUZZ_SETTINGS
@given(
    st.sampled_from(list(MessageClass)),
    st.one_of(uper_payloads, hostile_payloads, all_message_payloads.map(lambda case: case[1])),
    wire_properties,
    receive_clocks,
)
def test_decode_payload_raises_only_wire_error(
    message_class: MessageClass, payload: bytes, properties: dict[str, str], reference_time_s: float
) -> None:
    with contextlib.suppress(WireError):
        decode_payload(message_class, payload, properties, reference_time_s=reference_time_s)


# ---------------------------------------------------------------------------------- signatures

_KEY_FOLDER = Path(tempfile.mkdtemp(prefix="rsu-fuzz-keys-"))
# The unit's own clock is trusted (not an input): it stays plausible; hostile times reach the
# verifier through the signed properties instead.
SIGNER_CLOCK = FakeClock(NOW_S)
UNIT_SIGNER, UNIT_PUBLIC_KEY = signer(_KEY_FOLDER, UNIT_ID, SIGNER_CLOCK)
PROPERTY_NAMES = [UNIT, KEY_ID, TOPIC, DIGEST, SEQ, TIMESTAMP, SIGNATURE, RETAINED, "rsu-enc", "other"]
property_values = st.one_of(
    hostile_text,
    st.sampled_from(["nan", "inf", "-inf", "1e999", "-1", "0", "1e308", "NaN", " 1 ", "9" * 5_000, "0x10"]),
    st.integers().map(str),
    st.floats().map(str),
)


@st.composite
def signed_properties(draw: st.DrawFn, topic: str, payload: bytes) -> list[tuple[str, str]]:
    """A genuine signature with some properties replaced, dropped, repeated or added."""
    properties = UNIT_SIGNER.sign(topic, payload, retained_max_age_s=draw(st.none() | st.sampled_from([30.0, 600.0])))
    for _ in range(draw(st.integers(0, 3))):
        action = draw(st.integers(0, 3))
        if action == 0 and properties:
            index = draw(st.integers(0, len(properties) - 1))
            properties[index] = (properties[index][0], draw(property_values))
        elif action == 1 and properties:
            del properties[draw(st.integers(0, len(properties) - 1))]
        elif action == 2:
            properties.append((draw(st.sampled_from(PROPERTY_NAMES)), draw(property_values)))
        else:
            properties.append((draw(hostile_text), draw(property_values)))
    return properties


random_properties = st.lists(st.tuples(st.sampled_from(PROPERTY_NAMES) | hostile_text, property_values), max_size=12)


@FUZZ_SETTINGS
@given(st.data(), hostile_payloads, hostile_timestamps, st.booleans())
def test_signature_verifier_raises_only_signature_errors(
    data: st.DataObject, payload: bytes, now_s: float, retained: bool
) -> None:
    topic = data.draw(st.sampled_from(["rsu/rsu-test/v2x/spat", "rsu/rsu-test/v2x/map"]) | hostile_text)
    properties = data.draw(st.one_of(random_properties, signed_properties(topic, payload)))
    verifier = SignatureVerifier([UNIT_SIGNER.public_key], retainable=lambda t: t.endswith("/map"))
    with contextlib.suppress(SignatureError):
        verifier.verify(topic, payload, properties, now_s, retained=retained)


# ---------------------------------------------------------------------------------- vehicle SDK

LAYOUT = TopicLayout()
VEHICLE_TOPICS = [LAYOUT.topic(UNIT_ID, message_class) for message_class in MessageClass]
VEHICLE_CLOCK = FakeClock(NOW_S)
VEHICLE = VehicleClient(
    "127.0.0.1", 1883, UNIT_ID, UNIT_PUBLIC_KEY, position=(48.0, 11.0), radius_m=300.0, clock=VEHICLE_CLOCK
)


def vehicle_payloads(topic: str) -> st.SearchStrategy[bytes]:
    parsed = LAYOUT.parse(topic)
    models = list(ALL_MESSAGES)
    return (
        st.one_of(
            hostile_payloads,
            uper_payloads,
            st.sampled_from(models).flatmap(lambda model: message_documents(model).map(encode_json)),
        )
        if parsed is not None
        else hostile_payloads
    )


@FUZZ_SETTINGS
@given(st.data(), st.booleans())
def test_vehicle_client_handle_never_raises(data: st.DataObject, retained: bool) -> None:
    topic = data.draw(st.sampled_from(VEHICLE_TOPICS) | hostile_text)
    payload = data.draw(vehicle_payloads(topic))
    VEHICLE_CLOCK.now_s = data.draw(st.floats(min_value=NOW_S, max_value=NOW_S + 1.0))
    SIGNER_CLOCK.now_s = data.draw(
        st.floats(min_value=NOW_S - 1e6, max_value=NOW_S + 1e6) | st.just(VEHICLE_CLOCK.now_s)
    )
    properties = data.draw(st.one_of(signed_properties(topic, payload), random_properties))
    VEHICLE.update_pose(*data.draw(st.tuples(st.floats(), st.floats(), st.floats())))
    result = VEHICLE.handle(topic, payload, properties, retained=retained)
    assert result is None or result.topic == topic


# ------------------------------------------------------------------------------- priority gate

PRIORITY_SITE = site_with_priority(SITE, rate_per_min=6, burst=3, max_active_requests=4)
REQUESTERS = Requesters.make(Clock(NOW_S))
REQUEST_TOPIC = Topics.for_site(PRIORITY_SITE).priority_request


@FUZZ_SETTINGS
@given(st.data(), st.floats(min_value=NOW_S - 1e6, max_value=NOW_S + 1e6))
def test_priority_gate_answers_every_request(data: st.DataObject, now_s: float) -> None:
    # now_s is the unit's own clock and the requester signs with its own (plausible) clock;
    # hostile times arrive in the payload and in the random properties.
    gate = PriorityGate(PRIORITY_SITE, REQUESTERS.allowed(), REQUEST_TOPIC)
    REQUESTERS.clock.now_s = now_s if data.draw(st.booleans()) else NOW_S
    requester: UnitSigner = REQUESTERS.signer(data.draw(st.sampled_from([AMBULANCE, "bus-12", "stranger"])))
    payload = data.draw(
        st.one_of(message_payloads(PriorityRequest), message_documents(PriorityRequest).map(encode_json))
    )
    properties = data.draw(st.one_of(st.just(requester.sign(REQUEST_TOPIC, payload)), random_properties))
    outcome = gate.handle(payload, properties, now_s)
    assert isinstance(outcome.status, PriorityStatusKind)


# ---------------------------------------------------------------------------- centre collector

_STORE = AggregateStore(Path(tempfile.mkdtemp(prefix="rsu-fuzz-centre-")) / "centre.sqlite")
COLLECTOR = CentreCollector(MqttConfig(host="127.0.0.1", port=1883), _STORE)


@FUZZ_SETTINGS
@given(st.one_of(message_payloads(Aggregate), json_values.map(encode_json)), hostile_text)
def test_collector_decode_rejects_without_raising(payload: bytes, unit: str) -> None:
    topic = COLLECTOR.topic_filter.replace("+", unit, 1)
    inbound = Inbound(topic, payload, 1, False, (), 1, 1)
    result: Any = COLLECTOR._decode(_Inbound(inbound, NOW_S))
    assert result is None or isinstance(result, Aggregate)


def test_deeply_nested_json_is_a_wire_error_not_a_recursion_error() -> None:
    # Found by the fuzzer: json.loads raised RecursionError (not a ValueError) out of decode_payload.
    for payload in (b'{"": ' + b"[" * 100_000, b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"):
        try:
            decode_payload(MessageClass.SPAT, payload, {})
        except WireError as exc:
            assert "not JSON" in str(exc)
        else:
            raise AssertionError("a deeply nested payload was decoded")
