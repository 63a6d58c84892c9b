"""Topic layouts, delivery per message class, and encoding choice per topic."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rsu.key_files import verifier_from_key_files
from rsu_contracts.config import SiteConfig
from rsu_contracts.messages import CollisionWarning, Spat, TrackList
from tests.v2x_wire.builders import NOW_S, FakeClock, signer, spat, warning
from v2x.mapdata import MapData, build_map
from v2x.uper import ItsIdentity
from v2x.wire import (
    DELIVERY,
    Encoding,
    MessageClass,
    TopicLayout,
    WireError,
    WirePublisher,
    decode_payload,
    encode_for_topic,
)


def test_default_and_china_topic_layouts() -> None:
    default, china = TopicLayout(), TopicLayout.china()
    assert default.topic("u1", MessageClass.SPAT) == "rsu/u1/v2x/spat"
    assert default.topic("u1", MessageClass.MAP) == "rsu/u1/v2x/map"
    assert default.topic("u1", MessageClass.WARNINGS) == "rsu/u1/v2x/warnings"
    assert default.topic("u1", MessageClass.OBJECTS) == "rsu/u1/v2x/objects"
    assert china.topic("u1", MessageClass.SPAT) == "V2X/RSU/u1/SPAT/UP"
    assert china.topic("u1", MessageClass.MAP) == "V2X/RSU/u1/MAP/UP"
    assert china.topic("u1", MessageClass.WARNINGS) == "V2X/RSU/u1/RSI/UP"
    assert china.topic("u1", MessageClass.OBJECTS) == "V2X/RSU/u1/RSM/UP"
    for layout in (default, china):
        assert layout.topic("u1", MessageClass.STATUS) == "rsu/u1/status"
        for message_class in MessageClass:
            assert layout.parse(layout.topic("u1", message_class)) == ("u1", message_class)
    assert default.parse("rsu/u1/perception/tracks") is None
    assert china.parse("V2X/RSU/u1/CONFIG/DOWN") is None
    assert set(china.subscriptions()) >= {"V2X/RSU/+/SPAT/UP", "V2X/RSU/+/RSI/UP", "rsu/+/status"}


def test_unit_id_must_be_one_topic_level() -> None:
    with pytest.raises(WireError, match="topic level"):
        TopicLayout().topic("a/b", MessageClass.SPAT)
    with pytest.raises(WireError):
        TopicLayout().topic("+", MessageClass.SPAT)


def test_delivery_per_message_class() -> None:
    assert (DELIVERY[MessageClass.WARNINGS].qos, DELIVERY[MessageClass.WARNINGS].retain) == (1, False)
    assert (DELIVERY[MessageClass.SPAT].qos, DELIVERY[MessageClass.SPAT].retain) == (0, False)
    assert (DELIVERY[MessageClass.MAP].qos, DELIVERY[MessageClass.MAP].retain) == (1, True)
    assert DELIVERY[MessageClass.STATUS].retain is True


@pytest.fixture(scope="module")
def identity(sample_site: SiteConfig) -> ItsIdentity:
    return ItsIdentity.for_site(sample_site)


@pytest.fixture(scope="module")
def map_data(sample_site: SiteConfig) -> MapData:
    return build_map(sample_site, {"unit_id": "rsu-test", "seq": 1, "capture_time_s": NOW_S, "publish_time_s": NOW_S})


@pytest.mark.parametrize("encoding", list(Encoding))
@pytest.mark.parametrize("kind", ["spat", "map", "warning"])
def test_encode_then_decode_for_topic(encoding: Encoding, kind: str, identity: ItsIdentity, map_data: MapData) -> None:
    message = {"spat": spat(), "map": map_data, "warning": warning()}[kind]
    wire = encode_for_topic(message, encoding, TopicLayout(), identity)
    properties = dict(wire.properties)
    assert properties["rsu-enc"] == encoding.value
    assert wire.topic.startswith("rsu/rsu-test/v2x/")

    decoded = decode_payload(wire.message_class, wire.payload, properties, reference_time_s=NOW_S)

    assert decoded.encoding is encoding
    if encoding is Encoding.JSON:
        assert decoded.message == message
        assert decoded.content_type == message.SCHEMA
    else:
        assert decoded.message is None
        assert decoded.content_type == {"spat": "etsi.spatem", "map": "etsi.mapem", "warning": "etsi.denm"}[kind]
        assert decoded.fields["station_id"] == identity.station_id


def test_encoding_is_sniffed_without_the_property(identity: ItsIdentity) -> None:
    for encoding in Encoding:
        wire = encode_for_topic(warning(), encoding, identity=identity)
        assert decode_payload(MessageClass.WARNINGS, wire.payload).encoding is encoding


def test_objects_have_no_uper_form_and_uper_needs_an_identity() -> None:
    tracks = TrackList(unit_id="rsu-test", seq=1, capture_time_s=NOW_S, publish_time_s=NOW_S, camera_id="c", objects=[])
    assert encode_for_topic(tracks, Encoding.JSON).topic == "rsu/rsu-test/v2x/objects"
    with pytest.raises(WireError, match="no UPER encoding"):
        encode_for_topic(tracks, Encoding.UPER, identity=ItsIdentity(1, 1))
    with pytest.raises(WireError, match="ItsIdentity"):
        encode_for_topic(spat(), Encoding.UPER)


def test_a_message_on_the_wrong_topic_class_is_refused() -> None:
    wire = encode_for_topic(spat(), Encoding.JSON)
    with pytest.raises(WireError, match="message on a warnings topic"):
        decode_payload(MessageClass.WARNINGS, wire.payload, dict(wire.properties))


class RecordingBus:
    def __init__(self) -> None:
        self.published: list[dict[str, Any]] = []

    def publish(
        self,
        topic: str,
        payload: bytes,
        qos: int = 0,
        retain: bool = False,
        user_properties: list[tuple[str, str]] | None = None,
    ) -> None:
        self.published.append(
            {"topic": topic, "payload": payload, "qos": qos, "retain": retain, "properties": user_properties or []}
        )


def test_wire_publisher_signs_with_per_class_encodings(
    tmp_path: Path, identity: ItsIdentity, map_data: MapData
) -> None:
    clock = FakeClock()
    unit_signer, public_path = signer(tmp_path, clock=clock)
    bus = RecordingBus()
    publisher = WirePublisher(
        bus,
        unit_signer,
        TopicLayout.china(),
        {MessageClass.SPAT: Encoding.UPER, MessageClass.WARNINGS: Encoding.JSON},
        identity,
    )
    messages: list[Spat | MapData | CollisionWarning] = [spat(), map_data, warning()]
    for message in messages:
        publisher.publish(message)

    verifier = verifier_from_key_files([public_path])
    topics = [item["topic"] for item in bus.published]
    assert topics == ["V2X/RSU/rsu-test/SPAT/UP", "V2X/RSU/rsu-test/MAP/UP", "V2X/RSU/rsu-test/RSI/UP"]
    for item in bus.published:
        verified = verifier.verify(item["topic"], item["payload"], item["properties"], now_s=clock.now_s)
        parsed = TopicLayout.china().parse(item["topic"])
        assert parsed is not None
        message_class = parsed[1]
        assert (item["qos"], item["retain"]) == (DELIVERY[message_class].qos, DELIVERY[message_class].retain)
        expected = Encoding.UPER if message_class is MessageClass.SPAT else Encoding.JSON
        assert verified.properties["rsu-enc"] == expected.value


def test_only_what_is_published_retained_is_signed_as_retained(tmp_path: Path, map_data: MapData) -> None:
    """MAP (retained in the registry) vouches for two of its re-send periods; SPaT and warnings
    are signed live, so a verifier holds them to the live window whatever the retain flag says."""
    clock = FakeClock()
    unit_signer, public_path = signer(tmp_path, clock=clock)
    bus = RecordingBus()
    publisher = WirePublisher(bus, unit_signer, retained_periods_s={MessageClass.MAP: 30.0})
    for message in (spat(), map_data, warning()):
        publisher.publish(message)
    marks = {item["topic"]: dict(item["properties"]).get("rsu-retained") for item in bus.published}
    assert marks == {"rsu/rsu-test/v2x/spat": None, "rsu/rsu-test/v2x/map": "62", "rsu/rsu-test/v2x/warnings": None}
    assert [item["retain"] for item in bus.published] == [False, True, False]
    verifier = verifier_from_key_files([public_path])
    retained_map = bus.published[1]
    verifier.verify(retained_map["topic"], retained_map["payload"], retained_map["properties"], NOW_S + 61.0, True)
    # The default period is the registry's (MAP at 0.1 Hz): 2 x 10 s + the 2 s window.
    default_publisher = WirePublisher(RecordingBus(), unit_signer)
    assert default_publisher.retained_periods_s == {MessageClass.MAP: 10.0}
