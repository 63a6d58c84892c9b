"""Ed25519 signatures on user properties: round trip and every rejection, with its reason."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from rsu.key_files import generate_key_files, load_public_key, signer_from_key_file, verifier_from_key_files
from tests.v2x_wire.builders import NOW_S, FakeClock, key_pair, signer
from v2x.signing import (
    KEY_ID,
    SIGNATURE,
    BadSignature,
    MalformedSignature,
    ReplayedMessage,
    SignatureVerifier,
    StaleMessage,
    TamperedPayload,
    TamperedTopic,
    UnitSigner,
    UnknownKey,
    UnsignedMessage,
    key_id,
)

TOPIC = "rsu/rsu-test/v2x/warnings"
PAYLOAD = b'{"schema_name": "rsu.v2x.warning"}'


@pytest.fixture
def unit(tmp_path: Path) -> tuple[UnitSigner, SignatureVerifier, FakeClock]:
    clock = FakeClock()
    unit_signer, public_path = signer(tmp_path, clock=clock)
    return unit_signer, verifier_from_key_files([public_path]), clock


def test_round_trip_returns_the_signed_fields(unit: tuple[UnitSigner, SignatureVerifier, FakeClock]) -> None:
    unit_signer, verifier, _ = unit
    properties = unit_signer.sign(TOPIC, PAYLOAD, [("rsu-enc", "json")])

    verified = verifier.verify(TOPIC, PAYLOAD, properties, now_s=NOW_S + 0.05)

    assert verified.unit_id == "rsu-test"
    assert verified.key_id == unit_signer.key_id
    assert verified.timestamp_s == pytest.approx(NOW_S, abs=1e-3)
    assert verified.properties["rsu-enc"] == "json"
    assert verified.payload == PAYLOAD


def test_key_id_is_first_16_hex_of_sha256_of_raw_public_key(tmp_path: Path) -> None:
    private_path, public_path = tmp_path / "k.pem", tmp_path / "k.pub.pem"
    returned = generate_key_files(private_path, public_path)
    public_key = load_public_key(public_path)
    assert returned == key_id(public_key)
    assert len(returned) == 16 and int(returned, 16) >= 0
    assert private_path.stat().st_mode & 0o077 == 0
    with pytest.raises(FileExistsError):
        generate_key_files(private_path, tmp_path / "other.pub.pem")


def test_sequence_numbers_increase_per_topic_and_survive_a_restart(tmp_path: Path) -> None:
    clock = FakeClock()
    private_path, _ = key_pair(tmp_path)
    first = signer_from_key_file(private_path, "rsu-test", clock)
    seqs = [int(dict(first.sign(TOPIC, PAYLOAD))["rsu-seq"]) for _ in range(3)]
    assert seqs == sorted(set(seqs))
    clock.now_s += 1.0
    restarted = signer_from_key_file(private_path, "rsu-test", clock)
    assert int(dict(restarted.sign(TOPIC, PAYLOAD))["rsu-seq"]) > seqs[-1]


def test_unsigned_message_is_rejected(unit: tuple[UnitSigner, SignatureVerifier, FakeClock]) -> None:
    _, verifier, _ = unit
    with pytest.raises(UnsignedMessage, match="unsigned"):
        verifier.verify(TOPIC, PAYLOAD, [("rsu-enc", "json")], now_s=NOW_S)


def test_unknown_key_is_rejected(tmp_path: Path, unit: tuple[UnitSigner, SignatureVerifier, FakeClock]) -> None:
    _, verifier, clock = unit
    impostor = UnitSigner(Ed25519PrivateKey.generate(), "rsu-test", clock)
    with pytest.raises(UnknownKey, match="not among the trusted keys"):
        verifier.verify(TOPIC, PAYLOAD, impostor.sign(TOPIC, PAYLOAD), now_s=NOW_S)


def test_signature_from_another_key_under_a_trusted_key_id_is_rejected(
    unit: tuple[UnitSigner, SignatureVerifier, FakeClock],
) -> None:
    unit_signer, verifier, clock = unit
    impostor = UnitSigner(Ed25519PrivateKey.generate(), "rsu-test", clock)
    forged = [(name, unit_signer.key_id if name == KEY_ID else value) for name, value in impostor.sign(TOPIC, PAYLOAD)]
    with pytest.raises(BadSignature, match="does not verify"):
        verifier.verify(TOPIC, PAYLOAD, forged, now_s=NOW_S)


def test_tampered_payload_is_rejected(unit: tuple[UnitSigner, SignatureVerifier, FakeClock]) -> None:
    unit_signer, verifier, _ = unit
    properties = unit_signer.sign(TOPIC, PAYLOAD)
    with pytest.raises(TamperedPayload, match="differs from the signed one"):
        verifier.verify(TOPIC, PAYLOAD.replace(b"warning", b"warnin9"), properties, now_s=NOW_S)


def test_tampered_topic_is_rejected(unit: tuple[UnitSigner, SignatureVerifier, FakeClock]) -> None:
    unit_signer, verifier, _ = unit
    properties = unit_signer.sign(TOPIC, PAYLOAD)
    with pytest.raises(TamperedTopic, match="signed for topic 'rsu/rsu-test/v2x/warnings' but received on"):
        verifier.verify("rsu/other-unit/v2x/warnings", PAYLOAD, properties, now_s=NOW_S)


def test_altered_signed_property_is_rejected(unit: tuple[UnitSigner, SignatureVerifier, FakeClock]) -> None:
    unit_signer, verifier, _ = unit
    properties = unit_signer.sign(TOPIC, PAYLOAD, [("rsu-enc", "json")])
    altered = [(name, "uper" if name == "rsu-enc" else value) for name, value in properties]
    with pytest.raises(BadSignature):
        verifier.verify(TOPIC, PAYLOAD, altered, now_s=NOW_S)


def test_unsigned_extra_properties_are_ignored_not_trusted(
    unit: tuple[UnitSigner, SignatureVerifier, FakeClock],
) -> None:
    unit_signer, verifier, _ = unit
    properties = [*unit_signer.sign(TOPIC, PAYLOAD), ("bridge", "eu-west")]
    verified = verifier.verify(TOPIC, PAYLOAD, properties, now_s=NOW_S)
    assert "bridge" not in verified.properties


def test_repeated_signature_property_is_malformed(unit: tuple[UnitSigner, SignatureVerifier, FakeClock]) -> None:
    unit_signer, verifier, _ = unit
    properties = unit_signer.sign(TOPIC, PAYLOAD)
    duplicated = [*properties, next(item for item in properties if item[0] == SIGNATURE)]
    with pytest.raises(MalformedSignature, match="more than once"):
        verifier.verify(TOPIC, PAYLOAD, duplicated, now_s=NOW_S)


def test_replayed_sequence_number_is_rejected(unit: tuple[UnitSigner, SignatureVerifier, FakeClock]) -> None:
    unit_signer, verifier, _ = unit
    first = unit_signer.sign(TOPIC, PAYLOAD)
    second = unit_signer.sign(TOPIC, PAYLOAD)
    verifier.verify(TOPIC, PAYLOAD, first, now_s=NOW_S)
    verifier.verify(TOPIC, PAYLOAD, second, now_s=NOW_S)
    with pytest.raises(ReplayedMessage, match="not above the last accepted"):
        verifier.verify(TOPIC, PAYLOAD, second, now_s=NOW_S + 0.5)
    with pytest.raises(ReplayedMessage):
        verifier.verify(TOPIC, PAYLOAD, first, now_s=NOW_S + 0.5)


def test_sequence_is_tracked_per_topic(unit: tuple[UnitSigner, SignatureVerifier, FakeClock]) -> None:
    unit_signer, verifier, _ = unit
    spat_topic = "rsu/rsu-test/v2x/spat"
    on_warnings = unit_signer.sign(TOPIC, PAYLOAD)
    on_spat = unit_signer.sign(spat_topic, PAYLOAD)
    verifier.verify(spat_topic, PAYLOAD, on_spat, now_s=NOW_S)
    verifier.verify(TOPIC, PAYLOAD, on_warnings, now_s=NOW_S)  # independent stream, not a replay


@pytest.mark.parametrize("offset_s", [2.5, -2.5, 3600.0])
def test_stale_or_future_timestamp_is_rejected(
    unit: tuple[UnitSigner, SignatureVerifier, FakeClock], offset_s: float
) -> None:
    unit_signer, verifier, _ = unit
    properties = unit_signer.sign(TOPIC, PAYLOAD)
    with pytest.raises(StaleMessage, match=re.escape("accepted -2 s .. +2 s")):
        verifier.verify(TOPIC, PAYLOAD, properties, now_s=NOW_S + offset_s)


MAP_TOPIC = "rsu/rsu-test/v2x/map"


def test_window_is_configurable_and_retained_messages_get_the_bound_they_were_signed_with(tmp_path: Path) -> None:
    unit_signer, public_path = signer(tmp_path)
    verifier = SignatureVerifier([load_public_key(public_path)], window_s=5.0, retained_max_age_s=600.0)
    verifier.verify(TOPIC, PAYLOAD, unit_signer.sign(TOPIC, PAYLOAD), now_s=NOW_S + 4.0)
    signed_retained = unit_signer.sign(MAP_TOPIC, PAYLOAD, retained_max_age_s=550.0)
    assert ("rsu-retained", "550") in signed_retained
    verifier.verify(MAP_TOPIC, PAYLOAD, signed_retained, now_s=NOW_S + 500.0, retained=True)
    with pytest.raises(StaleMessage, match=re.escape("retained message signed at")):
        verifier.verify(
            "rsu/rsu-test/v2x/objects",
            PAYLOAD,
            unit_signer.sign("rsu/rsu-test/v2x/objects", PAYLOAD, retained_max_age_s=550.0),
            now_s=NOW_S + 560.0,
            retained=True,
        )


def test_the_verifier_caps_the_age_a_signer_vouches_for(tmp_path: Path) -> None:
    unit_signer, public_path = signer(tmp_path)
    verifier = SignatureVerifier([load_public_key(public_path)], retained_max_age_s=60.0)
    with pytest.raises(StaleMessage, match=re.escape("accepted -2 s .. +60 s")):
        verifier.verify(
            MAP_TOPIC, PAYLOAD, unit_signer.sign(MAP_TOPIC, PAYLOAD, retained_max_age_s=500.0), NOW_S + 61.0, True
        )


def test_a_live_message_flagged_retained_gets_the_live_window(tmp_path: Path) -> None:
    """The retain flag is not signed: a genuine live message re-published as retained is a replay."""
    unit_signer, public_path = signer(tmp_path)
    verifier = SignatureVerifier([load_public_key(public_path)])
    live = unit_signer.sign(TOPIC, PAYLOAD)
    with pytest.raises(StaleMessage, match="flagged retained by the broker but not signed as retained") as raised:
        verifier.verify(TOPIC, PAYLOAD, live, now_s=NOW_S + 33.0, retained=True)
    assert "accepted -2 s .. +2 s" in str(raised.value)
    # Within the live window the same message passes either way: a genuine fresh delivery.
    verifier.verify(TOPIC, PAYLOAD, live, now_s=NOW_S + 1.0, retained=True)


def test_signed_as_retained_on_a_topic_that_is_not_retainable_gets_the_live_window(tmp_path: Path) -> None:
    unit_signer, public_path = signer(tmp_path)
    verifier = SignatureVerifier([load_public_key(public_path)], retainable=lambda topic: topic == MAP_TOPIC)
    properties = unit_signer.sign(TOPIC, PAYLOAD, retained_max_age_s=25.0)
    with pytest.raises(StaleMessage, match="which is not a retained topic"):
        verifier.verify(TOPIC, PAYLOAD, properties, now_s=NOW_S + 10.0, retained=True)
    verifier.verify(
        MAP_TOPIC, PAYLOAD, unit_signer.sign(MAP_TOPIC, PAYLOAD, retained_max_age_s=25.0), NOW_S + 10.0, True
    )


def test_the_retained_mark_is_covered_by_the_signature(tmp_path: Path) -> None:
    unit_signer, public_path = signer(tmp_path)
    verifier = SignatureVerifier([load_public_key(public_path)])
    # Added to a live message, or raised on a retained one: the signature no longer verifies.
    added = [*unit_signer.sign(MAP_TOPIC, PAYLOAD), ("rsu-retained", "600")]
    raised = [
        (name, "600" if name == "rsu-retained" else value)
        for name, value in unit_signer.sign(MAP_TOPIC, PAYLOAD, retained_max_age_s=22.0)
    ]
    for properties in (added, raised):
        with pytest.raises(BadSignature):
            verifier.verify(MAP_TOPIC, PAYLOAD, properties, now_s=NOW_S + 100.0, retained=True)


@pytest.mark.parametrize("age_s", [0.0, -1.0, float("inf"), float("nan")])
def test_signer_refuses_a_meaningless_retained_bound(tmp_path: Path, age_s: float) -> None:
    unit_signer, _ = signer(tmp_path)
    with pytest.raises(ValueError, match="retained_max_age_s"):
        unit_signer.sign(MAP_TOPIC, PAYLOAD, retained_max_age_s=age_s)
    with pytest.raises(ValueError, match="reuse signature property names"):
        unit_signer.sign(MAP_TOPIC, PAYLOAD, [("rsu-retained", "600")])


def test_replay_state_is_bounded(tmp_path: Path) -> None:
    clock = FakeClock()
    unit_signer, public_path = signer(tmp_path, clock=clock)
    verifier = SignatureVerifier([load_public_key(public_path)], max_streams=50)
    for index in range(200):
        topic = f"rsu/rsu-test/v2x/t{index}"
        clock.now_s = NOW_S + index * 0.01
        verifier.verify(topic, PAYLOAD, unit_signer.sign(topic, PAYLOAD), now_s=clock.now_s)
    assert verifier.stream_count <= 50
