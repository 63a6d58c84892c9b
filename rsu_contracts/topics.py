"""The MQTT topic registry: one entry per topic, and the unit's topic names built from it.

Like openpilot's ``services.py``: each topic is declared once, with everything a publisher or a
subscriber has to agree on: its path, the message schema on it (a pydantic model from
``rsu_contracts.messages``, or a declared non-JSON payload such as the camera preview JPEG), QoS, retain
flag, the nominal rate at the default configuration (None for event topics), how old its newest
message may be before a reader treats the input as stale, and its scope (stays on the unit's
broker, faces vehicles, or goes upstream to the centre).

Publishers take QoS and retain from here (``MqttBus.publish_to(topics.route(TRACKS), ...)``);
nobody types a topic string or a QoS literal at a publish site. The vehicle-facing wire layouts
(the china layout's ``V2X/RSU/...`` names) stay in ``v2x.wire.TopicLayout``; their delivery per
message class comes from the entries here.

This module is the bottom layer's: it may import only ``rsu_contracts.config`` and ``rsu_contracts.messages``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from rsu_contracts.config.model import SiteConfig
from rsu_contracts.messages import (
    Aggregate,
    CameraDetections,
    CollisionWarning,
    DetectorStates,
    Message,
    PriorityRequest,
    PriorityStatus,
    SharedObjects,
    SignalState,
    Spat,
    TrackList,
    UnitHealth,
    WorldStatistics,
)


class Scope(StrEnum):
    # Stays on the unit's broker (never bridged to vehicles or the centre).
    LOCAL = "local"
    # Read (or, for priority requests, written) by vehicles on the unit's broker.
    VEHICLE = "vehicle-facing"
    # Leaves the unit for the traffic-management centre (uplink.topic_prefix, QoS 1 outbox).
    UPSTREAM = "upstream"


class PayloadKind(StrEnum):
    JSON = "json"  # an rsu.* message envelope (schema_name, schema_version, unit_id, seq, times)
    TEXT = "text"  # plain UTF-8 text (the unit status: online / offline)
    JPEG = "jpeg"  # binary image (the annotated camera preview)


@dataclass(frozen=True)
class TopicSpec:
    """One registered topic. ``path`` is a template over {prefix}, {centre_prefix} and {unit}."""

    name: str
    path: str
    schema: type[Message] | None
    qos: int
    retain: bool
    rate_hz: float | None
    scope: Scope
    payload: PayloadKind = PayloadKind.JSON
    # A JSON schema whose model lives above this layer (the MAP's v2x.mapdata.MapData): named here,
    # not imported, so the registry stays in the bottom layer (tests/runtime/test_topic_registry.py
    # checks that the name resolves to a model).
    external_schema: str | None = None
    stale_after_s: float | None = None

    def __post_init__(self) -> None:
        # A registry entry that cannot say what is on its topic is a bug: refuse it at import time.
        if self.qos not in (0, 1, 2):
            raise ValueError(f"topic {self.name}: QoS {self.qos} is not 0, 1 or 2")
        if self.payload is PayloadKind.JSON:
            if (self.schema is None) == (self.external_schema is None):
                raise ValueError(f"topic {self.name}: a JSON topic names exactly one schema (model or external)")
        elif self.schema is not None or self.external_schema is not None:
            raise ValueError(f"topic {self.name}: a {self.payload.value} payload has no JSON schema")

    @property
    def schema_name(self) -> str | None:
        """The JSON schema_name carried on this topic; None for text and binary payloads."""
        if self.schema is not None:
            return self.schema.SCHEMA
        return self.external_schema

    @property
    def is_event(self) -> bool:
        return self.rate_hz is None

    def is_stale(self, age_s: float | None) -> bool:
        """Whether a reader should treat the newest message (age_s old; None: none yet) as stale."""
        return age_s is not None and self.stale_after_s is not None and age_s > self.stale_after_s

    def format(self, unit_id: str, prefix: str = "rsu", centre_prefix: str = "centre") -> str:
        return self.path.format(prefix=prefix, centre_prefix=centre_prefix, unit=unit_id)


# Messages older than this (arrival clock) are shown as stale on the web page: a periodic input
# at 10 Hz that has missed some 20 periods has stopped.
_PERIODIC_STALE_AFTER_S = 2.0

# Local topics: stay on the unit's broker.
TRACKS = TopicSpec(
    "tracks",
    "{prefix}/{unit}/perception/tracks",
    TrackList,
    qos=0,
    retain=False,
    rate_hz=10.0,  # one per camera frame
    scope=Scope.LOCAL,
    stale_after_s=_PERIODIC_STALE_AFTER_S,
)
DETECTORS = TopicSpec(
    "detectors",
    "{prefix}/{unit}/perception/detectors",
    DetectorStates,
    qos=0,
    retain=False,
    rate_hz=10.0,  # one per camera frame
    scope=Scope.LOCAL,
    stale_after_s=_PERIODIC_STALE_AFTER_S,
)
# Annotated JPEG of a video camera (at most 5 Hz, cameras' preview_fps) for the web page; never
# bridged or exported.
CAMERA_PREVIEW = TopicSpec(
    "camera_preview",
    "{prefix}/{unit}/perception/preview",
    None,
    qos=0,
    retain=False,
    rate_hz=4.0,
    scope=Scope.LOCAL,
    payload=PayloadKind.JPEG,
    stale_after_s=_PERIODIC_STALE_AFTER_S,
)
SIGNAL_STATE = TopicSpec(
    "signal_state",
    "{prefix}/{unit}/signal/state",
    SignalState,
    qos=0,
    retain=False,
    rate_hz=10.0,  # controller.decision_rate_hz
    scope=Scope.LOCAL,
    stale_after_s=_PERIODIC_STALE_AFTER_S,
)
# Periodic UnitHealth from the supervisor (rsu.unit.HEALTH_PERIOD_S), for operators.
HEALTH = TopicSpec("health", "{prefix}/{unit}/health", UnitHealth, qos=0, retain=False, rate_hz=1.0, scope=Scope.LOCAL)
# Simulation only: the simulated camera's detections, like a smart camera on the network.
SIM_CAMERA = TopicSpec(
    "sim_camera", "{prefix}/{unit}/sim/camera", CameraDetections, qos=0, retain=False, rate_hz=10.0, scope=Scope.LOCAL
)
# Simulation only: retained so a demo that subscribes late still gets the latest statistics.
SIM_STATISTICS = TopicSpec(
    "sim_statistics",
    "{prefix}/{unit}/sim/statistics",
    WorldStatistics,
    qos=1,
    retain=True,
    rate_hz=0.2,  # rsu.stages.world.STATISTICS_PERIOD_S
    scope=Scope.LOCAL,
)

# Vehicle-facing V2X topics (default layout; v2x.wire.TopicLayout also has the china layout).
# SPaT QoS 0: the next one (10 Hz, v2x.spat_rate_hz) supersedes a lost one.
SPAT = TopicSpec("spat", "{prefix}/{unit}/v2x/spat", Spat, qos=0, retain=False, rate_hz=10.0, scope=Scope.VEHICLE)
# MAP QoS 1 retained: a vehicle arriving later gets it at once. Sent at start and every
# v2x.map_period_s (10 s by default).
MAP = TopicSpec(
    "map",
    "{prefix}/{unit}/v2x/map",
    None,
    qos=1,
    retain=True,
    rate_hz=0.1,
    scope=Scope.VEHICLE,
    external_schema="rsu.v2x.map",
)
# Warnings QoS 1, not retained: a stale warning must never greet a new subscriber.
WARNINGS = TopicSpec(
    "warnings",
    "{prefix}/{unit}/v2x/warnings",
    CollisionWarning,
    qos=1,
    retain=False,
    rate_hz=None,
    scope=Scope.VEHICLE,
)
# Sensor sharing: every tracked object (v2x.objects_rate_hz).
OBJECTS = TopicSpec(
    "objects", "{prefix}/{unit}/v2x/objects", SharedObjects, qos=0, retain=False, rate_hz=10.0, scope=Scope.VEHICLE
)
# Priority: signed requests from emergency vehicles and buses (the unit subscribes), and the
# unit's signed answers (accepted / rejected / active / ended).
PRIORITY_REQUEST = TopicSpec(
    "priority_request",
    "{prefix}/{unit}/priority/request",
    PriorityRequest,
    qos=1,
    retain=False,
    rate_hz=None,
    scope=Scope.VEHICLE,
)
PRIORITY_STATUS = TopicSpec(
    "priority_status",
    "{prefix}/{unit}/priority/status",
    PriorityStatus,
    qos=1,
    retain=False,
    rate_hz=None,
    scope=Scope.VEHICLE,
)
# Unit status: retained "online", last will "offline" (same QoS and retain flag).
STATUS = TopicSpec(
    "status",
    "{prefix}/{unit}/status",
    None,
    qos=1,
    retain=True,
    rate_hz=None,
    scope=Scope.VEHICLE,
    payload=PayloadKind.TEXT,
)

# What the V2X stage sent to vehicles, in the internal JSON form and on the unit's own topics,
# whatever v2x.encodings and v2x.topic_layout put on the wire (UPER, the china layout's names). The
# unit's own readers (uplink, web page, demo and run observers, metrics) read these, never the
# vehicle-facing forms. Not under v2x/, so the vehicle ACL (deploy/mosquitto) does not grant them.
SPAT_SENT = TopicSpec(
    "spat_sent",
    "{prefix}/{unit}/internal/spat",
    Spat,
    qos=0,
    retain=False,
    rate_hz=10.0,  # one per SPaT sent
    scope=Scope.LOCAL,
    stale_after_s=_PERIODIC_STALE_AFTER_S,
)
WARNINGS_SENT = TopicSpec(
    "warnings_sent",
    "{prefix}/{unit}/internal/warnings",
    CollisionWarning,
    qos=1,  # every warning counts (uplink warnings_by_kind, the summary)
    retain=False,
    rate_hz=None,
    scope=Scope.LOCAL,
)

# Upstream: aggregates for the traffic-management centre, one per sealed interval (60 s and 900 s
# by default; a backlog drains in bursts), so no single expected rate.
AGGREGATES = TopicSpec(
    "aggregates",
    "{centre_prefix}/{unit}/aggregates",
    Aggregate,
    qos=1,
    retain=False,
    rate_hz=None,
    scope=Scope.UPSTREAM,
)

# Every registered topic, in the README's table order.
REGISTRY: tuple[TopicSpec, ...] = (
    TRACKS,
    DETECTORS,
    SIGNAL_STATE,
    SPAT,
    WARNINGS,
    MAP,
    OBJECTS,
    STATUS,
    HEALTH,
    SIM_CAMERA,
    SIM_STATISTICS,
    CAMERA_PREVIEW,
    PRIORITY_REQUEST,
    PRIORITY_STATUS,
    SPAT_SENT,
    WARNINGS_SENT,
    AGGREGATES,
)
BY_NAME: Mapping[str, TopicSpec] = {spec.name: spec for spec in REGISTRY}
if len(BY_NAME) != len(REGISTRY):
    raise ValueError("two registry entries share a name")


@dataclass(frozen=True)
class Route:
    """A registered topic bound to one unit: what a publisher needs (topic, QoS, retain)."""

    topic: str
    spec: TopicSpec

    @property
    def qos(self) -> int:
        return self.spec.qos

    @property
    def retain(self) -> bool:
        return self.spec.retain


@dataclass(frozen=True)
class Topics:
    """The concrete topic names of one unit. One property per topic so no topic string is typed twice."""

    unit_id: str
    prefix: str = "rsu"
    centre_prefix: str = "centre"

    @classmethod
    def for_site(cls, site: SiteConfig) -> Topics:
        return cls(site.unit_id, site.mqtt.topic_prefix, site.uplink.topic_prefix)

    def topic(self, spec: TopicSpec) -> str:
        return spec.format(self.unit_id, self.prefix, self.centre_prefix)

    def route(self, spec: TopicSpec) -> Route:
        return Route(self.topic(spec), spec)

    def decoders(self, specs: Iterable[TopicSpec]) -> dict[str, type[Message]]:
        """Concrete topic -> message model, for a subscriber that decodes these topics."""
        decoders: dict[str, type[Message]] = {}
        for spec in specs:
            if spec.schema is None:
                raise ValueError(f"topic {spec.name} has no message model in rsu_contracts.messages to decode with")
            decoders[self.topic(spec)] = spec.schema
        return decoders

    def spec_of(self, topic: str) -> TopicSpec | None:
        """The registry entry of one of this unit's concrete topics, None for any other topic."""
        for spec in REGISTRY:
            if self.topic(spec) == topic:
                return spec
        return None

    @property
    def base(self) -> str:
        return f"{self.prefix}/{self.unit_id}"

    @property
    def tracks(self) -> str:
        return self.topic(TRACKS)

    @property
    def detectors(self) -> str:
        return self.topic(DETECTORS)

    @property
    def camera_preview(self) -> str:
        return self.topic(CAMERA_PREVIEW)

    @property
    def signal_state(self) -> str:
        return self.topic(SIGNAL_STATE)

    @property
    def spat(self) -> str:
        return self.topic(SPAT)

    @property
    def map(self) -> str:
        return self.topic(MAP)

    @property
    def warnings(self) -> str:
        return self.topic(WARNINGS)

    @property
    def spat_sent(self) -> str:
        return self.topic(SPAT_SENT)

    @property
    def warnings_sent(self) -> str:
        return self.topic(WARNINGS_SENT)

    @property
    def objects(self) -> str:
        return self.topic(OBJECTS)

    @property
    def priority_request(self) -> str:
        return self.topic(PRIORITY_REQUEST)

    @property
    def priority_status(self) -> str:
        return self.topic(PRIORITY_STATUS)

    @property
    def status(self) -> str:
        return self.topic(STATUS)

    @property
    def health(self) -> str:
        return self.topic(HEALTH)

    @property
    def sim_camera(self) -> str:
        return self.topic(SIM_CAMERA)

    @property
    def sim_statistics(self) -> str:
        return self.topic(SIM_STATISTICS)

    @property
    def aggregates(self) -> str:
        return self.topic(AGGREGATES)
