"""The topic registry (rsu_contracts.topics): complete, consistent with the wire layouts and the README, and
the only source of topic, QoS and retain flag at every publish site in the project."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest

from rsu.runtime.bus import MqttBus
from rsu.stages.outlet import Outlet, WrongSchema
from rsu_contracts.config.model import MqttConfig, SiteConfig
from rsu_contracts.messages import ALL_MESSAGES, Spat, TrackList
from rsu_contracts.topics import (
    AGGREGATES,
    BY_NAME,
    CAMERA_PREVIEW,
    REGISTRY,
    SPAT,
    STATUS,
    TRACKS,
    PayloadKind,
    Scope,
    Topics,
    TopicSpec,
)
from v2x.wire import DELIVERY, JSON_SCHEMAS, REGISTERED, MessageClass, TopicLayout

ROOT = Path(__file__).resolve().parents[2]

# -- the registry itself ---------------------------------------------------------------------------


@pytest.mark.parametrize("spec", REGISTRY, ids=lambda spec: spec.name)
def test_every_topic_has_a_schema_or_is_declared_text_or_binary(spec: TopicSpec) -> None:
    if spec.payload is PayloadKind.JSON:
        assert spec.schema_name is not None
        # Resolvable to a pydantic model: one of rsu_contracts.messages, or (MAP) a model of the layer above.
        model = JSON_SCHEMAS.get(spec.schema_name)
        assert model is not None, f"{spec.name}: no model for schema {spec.schema_name}"
        if spec.schema is not None:
            assert spec.schema in ALL_MESSAGES and model is spec.schema
    else:
        assert spec.schema is None and spec.schema_name is None
        assert spec.payload in (PayloadKind.TEXT, PayloadKind.JPEG)


def test_an_entry_that_does_not_say_what_is_on_its_topic_is_refused() -> None:
    with pytest.raises(ValueError, match="exactly one schema"):
        TopicSpec("bad", "{prefix}/{unit}/bad", None, qos=0, retain=False, rate_hz=None, scope=Scope.LOCAL)
    with pytest.raises(ValueError, match="no JSON schema"):
        TopicSpec(
            "bad",
            "{prefix}/{unit}/bad",
            Spat,
            qos=0,
            retain=False,
            rate_hz=None,
            scope=Scope.LOCAL,
            payload=PayloadKind.JPEG,
        )
    with pytest.raises(ValueError, match="QoS 3"):
        TopicSpec("bad", "{prefix}/{unit}/bad", Spat, qos=3, retain=False, rate_hz=None, scope=Scope.LOCAL)


def test_names_and_topics_are_unique() -> None:
    topics = Topics("unit-1")
    assert len(BY_NAME) == len(REGISTRY)
    assert len({topics.topic(spec) for spec in REGISTRY}) == len(REGISTRY)


def test_each_registered_topic_is_a_topics_property_and_each_property_is_registered() -> None:
    topics = Topics("unit-1", "edge", "tmc")
    properties = {name for name, value in vars(Topics).items() if isinstance(value, property) and name != "base"}
    assert properties == set(BY_NAME)
    for spec in REGISTRY:
        assert getattr(topics, spec.name) == topics.topic(spec) == topics.route(spec).topic
        assert topics.spec_of(topics.topic(spec)) is spec
    assert topics.spec_of("edge/unit-1/unknown") is None


def test_scopes_follow_the_prefixes() -> None:
    topics = Topics("unit-1", "edge", "tmc")
    for spec in REGISTRY:
        expected_prefix = "tmc/unit-1/" if spec.scope is Scope.UPSTREAM else "edge/unit-1/"
        assert topics.topic(spec).startswith(expected_prefix), spec.name
    assert [spec.name for spec in REGISTRY if spec.scope is Scope.UPSTREAM] == ["aggregates"]


def test_for_site_uses_the_sites_unit_and_both_prefixes(sample_site: SiteConfig) -> None:
    site = sample_site.model_copy(
        update={
            "unit_id": "north-7",
            "mqtt": sample_site.mqtt.model_copy(update={"topic_prefix": "edge"}),
            "uplink": sample_site.uplink.model_copy(update={"topic_prefix": "tmc"}),
        }
    )
    topics = Topics.for_site(site)
    assert topics == Topics("north-7", "edge", "tmc")
    assert topics.tracks == "edge/north-7/perception/tracks"
    assert topics.aggregates == "tmc/north-7/aggregates"


def test_staleness_uses_the_bound_of_the_topic() -> None:
    assert TRACKS.stale_after_s == 2.0
    assert not TRACKS.is_stale(None) and not TRACKS.is_stale(2.0) and TRACKS.is_stale(2.01)
    assert STATUS.stale_after_s is None and not STATUS.is_stale(1e9)


def test_periodic_topics_have_a_positive_rate_and_event_topics_none() -> None:
    for spec in REGISTRY:
        assert spec.rate_hz is None or spec.rate_hz > 0, spec.name
        if spec.stale_after_s is not None:
            # A staleness bound shorter than one period would call every healthy input stale.
            assert spec.rate_hz is not None and spec.stale_after_s > 1.0 / spec.rate_hz, spec.name


# -- vehicle-facing layouts (v2x.wire) ---------------------------------------------------------------


@pytest.mark.parametrize("message_class", list(MessageClass), ids=str)
def test_the_rsu_layout_and_the_delivery_of_each_class_are_the_registrys(message_class: MessageClass) -> None:
    spec = REGISTERED[message_class]
    assert spec.scope is Scope.VEHICLE
    assert (DELIVERY[message_class].qos, DELIVERY[message_class].retain) == (spec.qos, spec.retain)
    layout = TopicLayout(prefix="edge")
    topic = layout.topic("unit-1", message_class)
    assert topic == Topics("unit-1", "edge").topic(spec)
    assert layout.parse(topic) == ("unit-1", message_class)
    # The china layout renames the V2X topics only; the unit status stays the registry's.
    china = TopicLayout.china(prefix="edge").topic("unit-1", message_class)
    assert (china == topic) is (message_class is MessageClass.STATUS)


# -- publishers use the registry's QoS and retain flag ------------------------------------------------


class RecordingBus(MqttBus):
    """An MqttBus that records what it would hand to the network instead of sending it."""

    def __init__(self) -> None:
        super().__init__(MqttConfig(), "registry-test")
        self.sent: list[tuple[str, bytes, int, bool]] = []

    def publish(
        self,
        topic: str,
        payload: bytes,
        qos: int = 0,
        retain: bool = False,
        user_properties: list[tuple[str, str]] | None = None,
    ) -> Any:
        self.sent.append((topic, payload, qos, retain))
        return None


@pytest.mark.parametrize("spec", REGISTRY, ids=lambda spec: spec.name)
def test_publish_to_sends_with_the_registrys_qos_and_retain(spec: TopicSpec) -> None:
    bus = RecordingBus()
    route = Topics("unit-1").route(spec)
    bus.publish_to(route, b"x")
    assert bus.sent == [(route.topic, b"x", spec.qos, spec.retain)]


def _track_list() -> TrackList:
    return TrackList(unit_id="unit-1", seq=0, capture_time_s=1.0, publish_time_s=1.0, camera_id="cam", objects=[])


def test_the_outlet_refuses_a_message_of_another_schema() -> None:
    bus = RecordingBus()
    outlet = Outlet(bus, "unit-1")
    topics = Topics("unit-1")
    outlet.send(topics.route(TRACKS), _track_list())
    assert [(topic, qos, retain) for topic, _, qos, retain in bus.sent] == [(topics.tracks, 0, False)]
    for wrong in (SPAT, CAMERA_PREVIEW, AGGREGATES):
        with pytest.raises(WrongSchema):
            outlet.send(topics.route(wrong), _track_list())
    assert len(bus.sent) == 1


# Publishes that name a topic themselves instead of a registry route, with why they may.
RAW_PUBLISH_ALLOWED = {
    # WirePublisher: a vehicle-facing WireMessage (china or rsu layout); QoS/retain from DELIVERY.
    "v2x/wire.py": 1,
    # The latency bench's step-by-step copy of WirePublisher.publish.
    "rsu_tools/bench/latency/playback.py": 1,
    # A raw paho client standing in for many units (AGGREGATES.format, AGGREGATES.qos).
    "rsu_tools/bench/uplink.py": 1,
    # The preflight's anonymous write probe: an unregistered subtopic that no stage reads.
    "rsu/runtime/preflight.py": 1,
}
PUBLISH_METHODS = {"publish", "publish_and_wait", "publish_to", "publish_to_and_wait", "send", "send_and_wait"}


def _project_sources() -> list[Path]:
    packages = ("rsu", "rsu_tools", "rsu_clients", "rsu_cli", "v2x", "signal_control")
    files = [path for package in packages for path in sorted((ROOT / package).rglob("*.py"))]
    # The MQTT wrapper and the bus themselves turn a route into topic, QoS and retain.
    low_level = {ROOT / "rsu" / "runtime" / "bus.py", ROOT / "rsu" / "runtime" / "mqtt.py"}
    return [path for path in files if path not in low_level]


def _calls(path: Path) -> list[ast.Call]:
    return [node for node in ast.walk(ast.parse(path.read_text(), str(path))) if isinstance(node, ast.Call)]


def _name(call: ast.Call) -> str | None:
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    if isinstance(call.func, ast.Name):
        return call.func.id
    return None


def test_no_publish_site_types_a_qos_or_retain_literal() -> None:
    literals = []
    for path in _project_sources():
        for call in _calls(path):
            if _name(call) not in {*PUBLISH_METHODS, "will_set", "LastWill"}:
                continue
            for keyword in call.keywords:
                if keyword.arg in {"qos", "retain"} and isinstance(keyword.value, ast.Constant):
                    literals.append(f"{path.relative_to(ROOT)}:{call.lineno} {keyword.arg}={keyword.value.value!r}")
            # LastWill(topic, payload, retain, qos) and will_set(topic, payload, qos, retain) positionally.
            if _name(call) in {"will_set", "LastWill"} and any(isinstance(arg, ast.Constant) for arg in call.args[2:]):
                literals.append(f"{path.relative_to(ROOT)}:{call.lineno} positional QoS/retain literal")
    assert literals == []


def test_every_publish_goes_through_a_registered_route() -> None:
    raw: dict[str, int] = {}
    for path in _project_sources():
        for call in _calls(path):
            # publish(topic, payload, ...): a topic string instead of a route; publish(message) of a
            # WirePublisher or a camera preview takes no topic.
            # (A module function named publish, like the controller stage's, is not a bus.)
            is_method = isinstance(call.func, ast.Attribute)
            if is_method and _name(call) in {"publish", "publish_and_wait"} and len(call.args) >= 2:
                relative = str(path.relative_to(ROOT))
                raw[relative] = raw.get(relative, 0) + 1
    assert raw == RAW_PUBLISH_ALLOWED


def test_the_static_check_sees_a_raw_publish(tmp_path: Path) -> None:
    # The AST checks above must flag what they are meant to flag.
    sample = tmp_path / "sample.py"
    sample.write_text('bus.publish("rsu/u/x", b"", qos=1)\nbus.publish_to(route, b"")\nwire.publish(message)\n')
    calls = [call for call in _calls(sample) if _name(call) in PUBLISH_METHODS]
    assert [len(call.args) >= 2 and _name(call) == "publish" for call in calls] == [True, False, False]
    assert [keyword.arg for keyword in calls[0].keywords if isinstance(keyword.value, ast.Constant)] == ["qos"]


# -- the README's topic table -------------------------------------------------------------------------


def _readme_topic_rows() -> dict[str, list[str]]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## MQTT topics", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, list[str]] = {}
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        rows[cells[0].strip("`")] = cells[1:]
    return rows


def test_the_readme_topic_table_lists_every_registered_topic_as_registered() -> None:
    rows = _readme_topic_rows()
    topics = Topics("{unit}")
    assert set(rows) == {topics.topic(spec) for spec in REGISTRY}
    for spec in REGISTRY:
        schema, rate, delivery, _readers = rows[topics.topic(spec)]
        qos_text, _, retain_text = delivery.partition(",")
        assert int(qos_text) == spec.qos, spec.name
        assert (retain_text.strip() == "retained") is spec.retain, spec.name
        named = re.match(r"`([a-z0-9_.]+)`", schema)
        if spec.payload is PayloadKind.JSON:
            assert named is not None and named.group(1) == spec.schema_name, spec.name
        else:
            assert named is None or not named.group(1).startswith("rsu."), spec.name
            assert (spec.payload is PayloadKind.JPEG) is ("JPEG" in schema), spec.name
        if rate.startswith("on "):
            assert spec.rate_hz is None, spec.name
        elif exact := re.fullmatch(r"([\d.]+) Hz", rate):
            assert spec.rate_hz == float(exact.group(1)), spec.name
        elif bound := re.fullmatch(r"≤ ([\d.]+) Hz", rate):
            assert spec.rate_hz is not None and spec.rate_hz <= float(bound.group(1)), spec.name


def test_every_message_type_has_a_topic() -> None:
    # A schema in rsu_contracts.messages that no topic carries is either dead or published unregistered.
    assert set(ALL_MESSAGES) == {spec.schema for spec in REGISTRY if spec.schema is not None}
