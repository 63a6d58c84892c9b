"""VehicleClient's processing path without a broker: verification, decoding and the relevance filter."""

from __future__ import annotations

from pathlib import Path

import pytest

from rsu_clients.vehicle import VehicleClient
from rsu_contracts.messages import CollisionWarning, WarningStatus
from tests.v2x_wire.builders import SITE_FRAME, FakeClock, signer, spat, warning
from v2x.signing import UnitSigner
from v2x.uper import ItsIdentity
from v2x.wire import Encoding, MessageClass, TopicLayout, WireMessage, encode_for_topic

UNIT = "rsu-test"
IDENTITY = ItsIdentity(station_id=99, intersection_numeric_id=7, signal_group_ids={"2": 2, "4": 4, "p_north": 17})
NORTH, SOUTH = 0.0, 180.0


class Harness:
    """A unit signer and a vehicle client on the same fake clock."""

    def __init__(self, folder: Path, x_m: float = 0.0, y_m: float = -80.0, heading_deg: float = NORTH) -> None:
        self.clock = FakeClock()
        self.signer: UnitSigner
        self.signer, public_path = signer(folder, UNIT, self.clock)
        self.client = VehicleClient(
            "127.0.0.1",
            1883,
            UNIT,
            public_path,
            position=SITE_FRAME.to_geodetic(x_m, y_m),
            heading_deg=heading_deg,
            radius_m=300.0,
            clock=self.clock,
        )

    def receive(self, wire: WireMessage, properties: list[tuple[str, str]] | None = None) -> bool:
        if properties is None:
            properties = self.signer.sign(wire.topic, wire.payload, wire.properties)
        self.clock.now_s += 0.02
        return self.client.handle(wire.topic, wire.payload, properties) is not None

    def send_warning(self, message: CollisionWarning, encoding: Encoding = Encoding.JSON) -> bool:
        return self.receive(encode_for_topic(message, encoding, identity=IDENTITY))


def test_spat_is_verified_decoded_and_delivered(tmp_path: Path) -> None:
    harness = Harness(tmp_path)
    wire = encode_for_topic(spat(UNIT), Encoding.JSON)
    assert harness.receive(wire)
    delivered = harness.client.get(timeout_s=0)
    assert delivered is not None
    assert delivered.decoded.message == spat(UNIT)
    assert delivered.verified.unit_id == UNIT
    assert "protected-Movement-Allowed" in delivered.summary()


def test_uper_spatem_is_decoded(tmp_path: Path) -> None:
    harness = Harness(tmp_path)
    assert harness.receive(encode_for_topic(spat(UNIT), Encoding.UPER, identity=IDENTITY))
    delivered = harness.client.get(timeout_s=0)
    assert delivered is not None and delivered.decoded.content_type == "etsi.spatem"
    movements = delivered.decoded.fields["intersections"][0]["movements"]
    assert [movement["signal_group"] for movement in movements] == ["2", "4", "p_north"]


def test_unsigned_and_tampered_messages_are_rejected_with_reasons(tmp_path: Path) -> None:
    harness = Harness(tmp_path)
    wire = encode_for_topic(warning(UNIT), Encoding.JSON)
    assert not harness.receive(wire, properties=list(wire.properties))
    signed = harness.signer.sign(wire.topic, wire.payload, wire.properties)
    tampered = WireMessage(**{**wire.__dict__, "payload": wire.payload.replace(b"critical", b"advisory")})
    assert not harness.receive(tampered, properties=signed)
    assert harness.client.rejections == {"UnsignedMessage": 1, "TamperedPayload": 1}
    reasons = [reason for _, reason in harness.client.recent_rejections]
    assert "unsigned" in reasons[0] and "differs from the signed one" in reasons[1]
    assert harness.client.get(timeout_s=0) is None


def test_warning_ahead_within_radius_is_delivered(tmp_path: Path) -> None:
    harness = Harness(tmp_path, y_m=-80.0, heading_deg=NORTH)
    assert harness.send_warning(warning(UNIT, x_m=2.0, y_m=3.0))
    delivered = harness.client.get(timeout_s=0)
    assert delivered is not None and delivered.distance_m == pytest.approx(83.0, abs=0.5)


def test_warning_behind_the_vehicle_is_filtered(tmp_path: Path) -> None:
    harness = Harness(tmp_path, y_m=-80.0, heading_deg=SOUTH)
    assert not harness.send_warning(warning(UNIT, x_m=2.0, y_m=3.0))
    assert harness.client.filtered == 1


def test_warning_two_km_away_is_filtered(tmp_path: Path) -> None:
    harness = Harness(tmp_path, y_m=-80.0, heading_deg=NORTH)
    assert not harness.send_warning(warning(UNIT, x_m=0.0, y_m=1920.0))
    assert not harness.send_warning(warning(UNIT, x_m=0.0, y_m=1920.0), Encoding.UPER)
    assert harness.client.filtered == 2


def test_warning_with_a_participant_at_the_vehicle_is_delivered_even_if_behind(tmp_path: Path) -> None:
    harness = Harness(tmp_path, y_m=-80.0, heading_deg=SOUTH)
    message = warning(UNIT, x_m=2.0, y_m=3.0, participants=[(1.0, -78.0), (20.0, 3.0)])
    assert harness.send_warning(message)


def test_denm_position_is_used_for_the_filter(tmp_path: Path) -> None:
    harness = Harness(tmp_path, y_m=-80.0, heading_deg=NORTH)
    assert harness.send_warning(warning(UNIT, x_m=2.0, y_m=3.0, warning_id="a"), Encoding.UPER)
    delivered = harness.client.get(timeout_s=0)
    assert delivered is not None and delivered.decoded.fields["cause_code"] == 97


def test_end_of_a_delivered_warning_is_delivered_even_out_of_range(tmp_path: Path) -> None:
    harness = Harness(tmp_path, y_m=-80.0, heading_deg=NORTH)
    assert harness.send_warning(warning(UNIT, warning_id="w1"))
    harness.client.update_pose(*SITE_FRAME.to_geodetic(0.0, -1500.0), heading_deg=SOUTH)
    assert harness.send_warning(warning(UNIT, warning_id="w1", status=WarningStatus.ENDED))
    # The end of a warning this vehicle never saw stays filtered.
    assert not harness.send_warning(warning(UNIT, warning_id="w2", status=WarningStatus.ENDED))


def test_without_a_position_every_warning_is_delivered(tmp_path: Path) -> None:
    harness = Harness(tmp_path)
    harness.client.pose = None
    # Far beyond any vehicle's range, yet within the 5 km a message may place a road user.
    assert harness.send_warning(warning(UNIT, x_m=0.0, y_m=4000.0))


def test_status_is_kept_unverified_and_foreign_topics_are_rejected(tmp_path: Path) -> None:
    harness = Harness(tmp_path)
    assert harness.client.handle(TopicLayout().topic(UNIT, MessageClass.STATUS), b"online", []) is None
    assert harness.client.unit_status == "online"
    wire = encode_for_topic(spat("other-unit"), Encoding.JSON)
    assert not harness.receive(wire)
    assert harness.client.rejections["UnexpectedTopic"] == 1


def test_expected_encoding_is_enforced_when_given(tmp_path: Path) -> None:
    harness = Harness(tmp_path)
    harness.client.encoding = Encoding.UPER
    assert not harness.receive(encode_for_topic(spat(UNIT), Encoding.JSON))
    assert harness.client.rejections["UnexpectedEncoding"] == 1
    assert harness.receive(encode_for_topic(spat(UNIT), Encoding.UPER, identity=IDENTITY))


def test_messages_iterator_stops_at_count_or_timeout(tmp_path: Path) -> None:
    harness = Harness(tmp_path)
    for seq in range(3):
        assert harness.receive(encode_for_topic(spat(UNIT, seq=seq), Encoding.JSON))
    assert [m.decoded.fields["seq"] for m in harness.client.messages(timeout_s=1.0, count=2)] == [0, 1]
    assert len(list(harness.client.messages(timeout_s=0.05))) == 1
