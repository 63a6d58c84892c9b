"""The V2X stage's output: signed SPaT, MAP, warnings and objects, in JSON or UPER, in either layout.

A fake bus records what would go to the broker; the vehicle side (signature check, decoding) is
the real one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from rsu.stages.unit_keys import state_dir, unit_key_paths, unit_signer
from rsu.stages.v2x import RateLimit, V2XOutput, wire_publisher
from rsu_contracts.config.model import SiteConfig, V2XConfig, V2XEncodings
from rsu_contracts.messages import (
    CollisionWarning,
    ImageBox,
    SignalState,
    TrackList,
)
from rsu_contracts.messages.sharing import SharedObjects
from rsu_contracts.messages.warnings import Severity, WarningKind, WarningStatus
from rsu_tools.testing.signal_states import TimingWindows, steady_signal_state
from tests.v2x.builders import NORTH, SOUTH, track
from v2x.signing import SignatureVerifier, UnitSigner
from v2x.wire import DecodedPayload, MessageClass, TopicLayout, decode_payload


@dataclass
class Published:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    user_properties: list[tuple[str, str]]


class FakeBus:
    def __init__(self) -> None:
        self.sent: list[Published] = []

    def publish(
        self,
        topic: str,
        payload: bytes,
        qos: int = 0,
        retain: bool = False,
        user_properties: list[tuple[str, str]] | None = None,
    ) -> None:
        self.sent.append(Published(topic, payload, qos, retain, list(user_properties or [])))


def signal(site: SiteConfig, now_s: float) -> SignalState:
    return steady_signal_state(site, now_s, "2", TimingWindows(-5.0, 3.0, 20.0, 8.0), seq=1, strategy="actuated")


def conflicting_tracks(site: SiteConfig, now_s: float) -> TrackList:
    # A car at 15 m/s 7.5 m behind a stopped one in the north through lane: critical rear-end.
    leader = track(1, -4.8, 30.0, 0.0, SOUTH, lane_id="north_through_right")
    follower = track(2, -4.8, 42.0, 15.0, SOUTH, lane_id="north_through_right")
    bystander = track(3, 4.8, -60.0, 10.0, NORTH, lane_id="south_through_right")
    return TrackList(
        unit_id=site.unit_id,
        seq=1,
        capture_time_s=now_s,
        publish_time_s=now_s,
        camera_id="cam",
        objects=[leader, follower, bystander],
    )


def configured(site: SiteConfig, **v2x: Any) -> SiteConfig:
    return site.model_copy(update={"v2x": V2XConfig(**v2x)})


def received(sent: list[Published], layout: TopicLayout, verifier: SignatureVerifier) -> list[DecodedPayload]:
    """Every published message as a vehicle gets it: signature checked, then decoded."""
    decoded = []
    now = time.time()
    for message in sent:
        parsed = layout.parse(message.topic)
        assert parsed is not None, message.topic
        verified = verifier.verify(message.topic, message.payload, message.user_properties, now, message.retain)
        decoded.append(decode_payload(parsed[1], message.payload, verified.properties, reference_time_s=now))
    return decoded


def run_one_second(site: SiteConfig, bus: FakeBus) -> tuple[V2XOutput, UnitSigner]:
    signer = UnitSigner(Ed25519PrivateKey.generate(), site.unit_id)
    output = V2XOutput(site, wire_publisher(site, bus, signer))
    now = time.time()
    output.maybe_publish_map(now, now)
    for n in range(20):  # 20 Hz input for one second
        t = now + 0.05 * n
        output.on_signal_state(signal(site, t), t)
        output.on_tracks(conflicting_tracks(site, t), t)
    return output, signer


def test_json_default_layout(sample_site: SiteConfig) -> None:
    bus = FakeBus()
    output, signer = run_one_second(sample_site, bus)
    layout = TopicLayout(prefix="rsu")
    messages = received(bus.sent, layout, SignatureVerifier([signer.public_key]))
    by_class: dict[MessageClass, list[DecodedPayload]] = {}
    for message in messages:
        by_class.setdefault(message.message_class, []).append(message)
    unit = sample_site.unit_id
    assert {p.topic for p in bus.sent} == {
        f"rsu/{unit}/v2x/map",
        f"rsu/{unit}/v2x/spat",
        f"rsu/{unit}/v2x/warnings",
        f"rsu/{unit}/v2x/objects",
    }
    # MAP retained once (period 10 s); SPaT and objects at 10 Hz from 20 Hz input; warnings QoS 1.
    assert len(by_class[MessageClass.MAP]) == 1
    assert [p.retain for p in bus.sent if p.topic.endswith("/map")] == [True]
    assert len(by_class[MessageClass.SPAT]) == 10
    assert len(by_class[MessageClass.OBJECTS]) == 10
    assert {p.qos for p in bus.sent if p.topic.endswith("/warnings")} == {1}
    assert {p.qos for p in bus.sent if p.topic.endswith("/spat")} == {0}
    objects = by_class[MessageClass.OBJECTS][0]
    assert objects.content_type == "rsu.v2x.objects"
    assert objects.fields["reference"]["latitude_deg"] == sample_site.reference.latitude_deg
    assert [o["track_id"] for o in objects.fields["objects"]] == [1, 2, 3]
    warnings = [m.message for m in by_class[MessageClass.WARNINGS]]
    assert all(isinstance(w, CollisionWarning) for w in warnings)
    first = warnings[0]
    assert isinstance(first, CollisionWarning)
    assert (first.status, first.kind, first.severity) == (WarningStatus.NEW, WarningKind.REAR_END, Severity.CRITICAL)
    # Ending: an explicit ENDED for the warning, e.g. at shutdown.
    [ended] = output.end_all(time.time(), time.time())
    assert ended.status is WarningStatus.ENDED and ended.warning_id == first.warning_id


def test_uper_encodings_and_the_china_layout(sample_site: SiteConfig) -> None:
    site = configured(
        sample_site,
        encodings=V2XEncodings(spat="uper", map="uper", warnings="uper"),
        topic_layout="china",
        station_id=4242,
        intersection_numeric_id=77,
    )
    bus = FakeBus()
    _, signer = run_one_second(site, bus)
    unit = site.unit_id
    assert {p.topic for p in bus.sent} == {f"V2X/RSU/{unit}/{name}/UP" for name in ("MAP", "SPAT", "RSI", "RSM")}
    messages = received(bus.sent, TopicLayout.china("rsu"), SignatureVerifier([signer.public_key]))
    content = {m.message_class: m for m in messages}
    assert content[MessageClass.SPAT].content_type == "etsi.spatem"
    assert content[MessageClass.SPAT].fields["intersections"][0]["intersection_numeric_id"] == 77
    assert content[MessageClass.MAP].content_type == "etsi.mapem"
    denm = content[MessageClass.WARNINGS]
    assert denm.content_type == "etsi.denm"
    assert denm.fields["originating_station_id"] == 4242
    assert denm.fields["cause_code"] == 97  # collisionRisk
    assert content[MessageClass.OBJECTS].content_type == "rsu.v2x.objects"  # no UPER form: JSON


def test_rate_limit_follows_message_time() -> None:
    limit = RateLimit(0.1)
    assert [limit.due(t) for t in (0.0, 0.05, 0.095, 0.2, 0.25)] == [True, False, True, True, False]
    assert limit.due(-5.0)  # clock went back (replay): start again


def test_generated_key_lives_in_the_unit_state_dir(sample_site: SiteConfig, tmp_path: Path) -> None:
    site = configured(sample_site, state_dir=str(tmp_path / "state"))
    site_path = tmp_path / "site.yaml"
    assert state_dir(site, site_path) == tmp_path / "state" / site.unit_id
    private, public = unit_key_paths(site, site_path)
    first = unit_signer(site, site_path)
    assert private.is_file() and public.is_file()
    assert private.stat().st_mode & 0o777 == 0o600
    assert unit_signer(site, site_path).key_id == first.key_id  # loaded, not regenerated


def test_configured_key_is_used(sample_site: SiteConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RSU_STATE_DIR", str(tmp_path / "unused"))
    first = unit_signer(configured(sample_site, state_dir=str(tmp_path / "keys")), tmp_path / "site.yaml")
    key_file = tmp_path / "keys" / sample_site.unit_id / "v2x-signing.pem"
    site = configured(sample_site, signing_key=str(key_file.relative_to(tmp_path)))
    assert unit_key_paths(site, tmp_path / "site.yaml")[1].name == "v2x-signing.pub.pem"
    assert unit_signer(site, tmp_path / "site.yaml").key_id == first.key_id
    assert not (tmp_path / "unused").exists()


def test_unit_topic_table_matches_the_wire_layout() -> None:
    from rsu_contracts.topics import Topics

    topics, layout = Topics("rsu-test"), TopicLayout(prefix="rsu")
    for name, message_class in (
        ("spat", MessageClass.SPAT),
        ("map", MessageClass.MAP),
        ("warnings", MessageClass.WARNINGS),
        ("objects", MessageClass.OBJECTS),
    ):
        assert getattr(topics, name) == layout.topic("rsu-test", message_class)


def test_image_boxes_of_the_local_track_list_never_reach_vehicles(sample_site: SiteConfig) -> None:
    bus = FakeBus()
    signer = UnitSigner(Ed25519PrivateKey.generate(), sample_site.unit_id)
    output = V2XOutput(sample_site, wire_publisher(sample_site, bus, signer))
    now = time.time()
    tracks = conflicting_tracks(sample_site, now)
    box = ImageBox(x1_px=10.0, y1_px=20.0, x2_px=60.0, y2_px=80.0)
    boxed = tracks.model_copy(update={"objects": [o.model_copy(update={"image_box": box}) for o in tracks.objects]})
    output.on_tracks(boxed, now)
    [objects] = [
        m
        for m in received(bus.sent, TopicLayout(prefix="rsu"), SignatureVerifier([signer.public_key]))
        if m.message_class is MessageClass.OBJECTS
    ]
    assert [o["track_id"] for o in objects.fields["objects"]] == [1, 2, 3]
    assert all(o.get("image_box") is None for o in objects.fields["objects"])
    assert b"x1_px" not in b"".join(p.payload for p in bus.sent)


def test_shared_objects_refuse_an_image_box(sample_site: SiteConfig) -> None:
    tracks = conflicting_tracks(sample_site, 100.0)
    boxed = tracks.objects[0].model_copy(update={"image_box": ImageBox(x1_px=0, y1_px=0, x2_px=1, y2_px=1)})
    with pytest.raises(ValidationError, match="image_box"):
        SharedObjects(
            unit_id=sample_site.unit_id,
            seq=1,
            capture_time_s=100.0,
            publish_time_s=100.0,
            camera_id="cam",
            objects=[boxed],
            reference=sample_site.reference,
        )
