"""What goes on the wire for vehicles: topic layout, encoding per message class, QoS and retain.

Topic layouts (``TopicLayout``):

=============  ==================================  ==================================
class          rsu (default)                       china (T/CSAE-style RSU uplink)
=============  ==================================  ==================================
spat           ``{prefix}/{unit}/v2x/spat``        ``V2X/RSU/{unit}/SPAT/UP``
map            ``{prefix}/{unit}/v2x/map``         ``V2X/RSU/{unit}/MAP/UP``
warnings       ``{prefix}/{unit}/v2x/warnings``    ``V2X/RSU/{unit}/RSI/UP``
objects        ``{prefix}/{unit}/v2x/objects``     ``V2X/RSU/{unit}/RSM/UP``
status         ``{prefix}/{unit}/status``          ``{prefix}/{unit}/status``
=============  ==================================  ==================================

The china layout only borrows the topic names: payloads are this project's JSON or the ETSI UPER
messages, not the T/CSAE 53 MessageFrame (no compiled module for it is available).

Delivery per class comes from the topic registry (rsu_contracts.topics, one entry per class in the rsu
layout) and holds in every layout: SPaT QoS 0 (10 Hz, the next one supersedes a lost one), MAP
QoS 1 retained (a vehicle arriving later gets it at once), warnings QoS 1 not retained (a stale
warning must never greet a new subscriber), objects QoS 0, status QoS 1 retained.

A message class the registry declares retained (MAP) is signed as retained: the signature carries
``rsu-retained``, the age up to which a subscriber may accept it when the broker hands it out on
subscribe (``retained_bound_s``: two re-send periods, one missed re-send, plus the live window).
Everything else is signed live, so a genuine SPaT or warning someone re-publishes as retained is
held to the live window by every verifier (v2x.signing).

Encodings per class: JSON (the rsu.* schemas) or UPER (SPATEM, MAPEM, DENM). Objects have no
UPER encoding here (pycrate 0.8.1 ships no CPM module), status is plain text. Every payload
carries the signed user properties ``rsu-enc`` (json | uper) and ``rsu-type`` (the JSON schema
name, or etsi.spatem / etsi.mapem / etsi.denm).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from rsu_contracts.messages import ALL_MESSAGES, CollisionWarning, Message, MessageError, Spat, TrackList, decode
from rsu_contracts.topics import MAP, OBJECTS, SPAT, STATUS, WARNINGS, TopicSpec
from v2x.mapdata import MapData
from v2x.signing import DEFAULT_WINDOW_S, UnitSigner
from v2x.uper import (
    ItsIdentity,
    UperError,
    decode_denm,
    decode_mapem,
    decode_spatem,
    encode_denm,
    encode_mapem_data,
    encode_spatem,
)

ENCODING_PROPERTY = "rsu-enc"
CONTENT_TYPE_PROPERTY = "rsu-type"
SPATEM_TYPE = "etsi.spatem"
MAPEM_TYPE = "etsi.mapem"
DENM_TYPE = "etsi.denm"


class Encoding(StrEnum):
    JSON = "json"
    UPER = "uper"


class MessageClass(StrEnum):
    SPAT = "spat"
    MAP = "map"
    WARNINGS = "warnings"
    OBJECTS = "objects"
    STATUS = "status"


V2X_CLASSES = (MessageClass.SPAT, MessageClass.MAP, MessageClass.WARNINGS, MessageClass.OBJECTS)


@dataclass(frozen=True)
class Delivery:
    qos: int
    retain: bool


# The registry entry of each class: its topic in the rsu layout, and its QoS and retain flag.
REGISTERED: Mapping[MessageClass, TopicSpec] = {
    MessageClass.SPAT: SPAT,
    MessageClass.MAP: MAP,
    MessageClass.WARNINGS: WARNINGS,
    MessageClass.OBJECTS: OBJECTS,
    MessageClass.STATUS: STATUS,
}

DELIVERY: Mapping[MessageClass, Delivery] = {
    message_class: Delivery(qos=spec.qos, retain=spec.retain) for message_class, spec in REGISTERED.items()
}

UPER_TYPE_BY_CLASS: Mapping[MessageClass, str] = {
    MessageClass.SPAT: SPATEM_TYPE,
    MessageClass.MAP: MAPEM_TYPE,
    MessageClass.WARNINGS: DENM_TYPE,
}

_JSON_MESSAGE_TYPES: tuple[type[Message], ...] = (*ALL_MESSAGES, MapData)
JSON_SCHEMAS: Mapping[str, type[Message]] = {message_type.SCHEMA: message_type for message_type in _JSON_MESSAGE_TYPES}


# A retained message is replaced every re-send period; one missed re-send is tolerated.
RETAINED_PERIODS = 2


def retained_bound_s(period_s: float) -> float:
    """How old a retained message re-sent every period_s may be when a subscriber gets it: two
    periods, plus the live window for clock offset and delivery."""
    return RETAINED_PERIODS * period_s + DEFAULT_WINDOW_S


def registry_periods_s() -> dict[MessageClass, float]:
    """The re-send period of each retained class at the default configuration (the registry's rate)."""
    return {
        message_class: 1.0 / spec.rate_hz
        for message_class, spec in REGISTERED.items()
        if spec.retain and spec.rate_hz is not None and message_class in V2X_CLASSES
    }


class WireError(ValueError):
    """A message that cannot be put on, or read from, a topic; the message says why."""


class LayoutStyle(StrEnum):
    RSU = "rsu"
    CHINA = "china"


CHINA_SEGMENT: Mapping[MessageClass, str] = {
    MessageClass.SPAT: "SPAT",
    MessageClass.MAP: "MAP",
    MessageClass.WARNINGS: "RSI",
    MessageClass.OBJECTS: "RSM",
}


@dataclass(frozen=True)
class TopicLayout:
    style: LayoutStyle = LayoutStyle.RSU
    # The unit's own prefix (MqttConfig.topic_prefix); status stays under it in both styles.
    prefix: str = "rsu"

    @classmethod
    def china(cls, prefix: str = "rsu") -> TopicLayout:
        return cls(LayoutStyle.CHINA, prefix)

    def topic(self, unit_id: str, message_class: MessageClass) -> str:
        _check_unit_id(unit_id, allow_wildcard=False)
        return self._topic(unit_id, message_class)

    def _topic(self, unit_id: str, message_class: MessageClass) -> str:
        if self.style is LayoutStyle.CHINA and message_class is not MessageClass.STATUS:
            return f"V2X/RSU/{unit_id}/{CHINA_SEGMENT[message_class]}/UP"
        # Status in both styles, and every class in the rsu style: the registry's topic.
        return REGISTERED[message_class].format(unit_id, prefix=self.prefix)

    def subscriptions(self, unit_id: str = "+") -> dict[str, MessageClass]:
        """Topic filter -> class for everything a vehicle reads from one unit (or every unit with "+")."""
        _check_unit_id(unit_id, allow_wildcard=True)
        return {self._topic(unit_id, message_class): message_class for message_class in MessageClass}

    def parse(self, topic: str) -> tuple[str, MessageClass] | None:
        """(unit id, class) of a concrete topic in this layout, or None if it is not one of ours."""
        parts = topic.split("/")
        if len(parts) == 3 and parts[0] == self.prefix and parts[2] == "status":
            return parts[1], MessageClass.STATUS
        if self.style is LayoutStyle.CHINA:
            if len(parts) == 5 and parts[:2] == ["V2X", "RSU"] and parts[4] == "UP":
                for message_class, segment in CHINA_SEGMENT.items():
                    if parts[3] == segment:
                        return parts[2], message_class
            return None
        if len(parts) == 4 and parts[0] == self.prefix and parts[2] == "v2x":
            for message_class in V2X_CLASSES:
                if parts[3] == message_class.value:
                    return parts[1], message_class
        return None


def _check_unit_id(unit_id: str, allow_wildcard: bool) -> None:
    if unit_id == "+" and allow_wildcard:
        return
    if not unit_id or any(character in unit_id for character in "/+#"):
        raise WireError(f"unit id {unit_id!r} cannot be a topic level (empty, or contains / + #)")


@dataclass(frozen=True)
class WireMessage:
    """A payload ready to publish: topic, QoS, retain and the (unsigned) content properties."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    message_class: MessageClass
    encoding: Encoding
    properties: tuple[tuple[str, str], ...] = ()


def message_class_of(message: Message) -> MessageClass:
    if isinstance(message, Spat):
        return MessageClass.SPAT
    if isinstance(message, MapData):
        return MessageClass.MAP
    if isinstance(message, CollisionWarning):
        return MessageClass.WARNINGS
    if isinstance(message, TrackList):
        return MessageClass.OBJECTS
    raise WireError(f"{type(message).__name__} ({message.SCHEMA}) is not a vehicle-facing V2X message")


def encode_for_topic(
    message: Message,
    encoding: Encoding,
    layout: TopicLayout | None = None,
    identity: ItsIdentity | None = None,
) -> WireMessage:
    """Topic, payload, QoS/retain and content properties of a V2X message in the given encoding.

    identity (station id, intersection and signal group numbers) is needed for UPER only.
    """
    layout = layout or TopicLayout()
    message_class = message_class_of(message)
    delivery = DELIVERY[message_class]
    if encoding is Encoding.JSON:
        payload, content_type = message.to_json(), message.SCHEMA
    else:
        payload, content_type = _encode_uper(message, message_class, identity)
    return WireMessage(
        topic=layout.topic(message.unit_id, message_class),
        payload=payload,
        qos=delivery.qos,
        retain=delivery.retain,
        message_class=message_class,
        encoding=encoding,
        properties=((ENCODING_PROPERTY, encoding.value), (CONTENT_TYPE_PROPERTY, content_type)),
    )


def _encode_uper(message: Message, message_class: MessageClass, identity: ItsIdentity | None) -> tuple[bytes, str]:
    if message_class not in UPER_TYPE_BY_CLASS:
        raise WireError(f"{message_class.value}: no UPER encoding (pycrate ships no CPM module); publish it as JSON")
    if identity is None:
        raise WireError(f"{message_class.value}: UPER needs an ItsIdentity (station id, intersection, signal groups)")
    if isinstance(message, Spat):
        payload = encode_spatem(
            message, identity.intersection_numeric_id, identity.station_id, identity.signal_group_ids
        )
    elif isinstance(message, MapData):
        payload = encode_mapem_data(message, identity.station_id)
    elif isinstance(message, CollisionWarning):
        payload = encode_denm(message, identity.station_id)
    else:  # message_class_of and UPER_TYPE_BY_CLASS agree, so this is unreachable
        raise WireError(f"{type(message).__name__}: no UPER encoder")
    return payload, UPER_TYPE_BY_CLASS[message_class]


@dataclass(frozen=True)
class DecodedPayload:
    message_class: MessageClass
    encoding: Encoding
    content_type: str
    # The typed message for JSON payloads; None for UPER and status.
    message: Message | None
    # UPER: the decoded dict (see v2x.uper); JSON: the message as a dict; status: {"status": text}.
    fields: dict[str, Any] = field(default_factory=dict)


def decode_payload(
    message_class: MessageClass,
    payload: bytes,
    properties: Mapping[str, str] | None = None,
    reference_time_s: float | None = None,
) -> DecodedPayload:
    """Decode a payload of a known class; the encoding comes from rsu-enc, else from the first byte.

    reference_time_s: receive time, used to resolve UPER time fields (see v2x.uper.decode_spatem).
    """
    properties = properties or {}
    if message_class is MessageClass.STATUS:
        text = payload.decode(errors="replace")
        return DecodedPayload(message_class, Encoding.JSON, "text/plain", None, {"status": text})
    declared = properties.get(ENCODING_PROPERTY)
    if declared is None:
        encoding = Encoding.JSON if payload.lstrip()[:1] == b"{" else Encoding.UPER
    else:
        try:
            encoding = Encoding(declared)
        except ValueError:
            raise WireError(f"{message_class.value}: unknown encoding {declared!r} in {ENCODING_PROPERTY}") from None
    if encoding is Encoding.JSON:
        return _decode_json(message_class, payload)
    content_type = UPER_TYPE_BY_CLASS.get(message_class)
    if content_type is None:
        raise WireError(f"{message_class.value}: no UPER encoding is defined for this class")
    try:
        if content_type == SPATEM_TYPE:
            fields = decode_spatem(payload, reference_time_s)
        elif content_type == MAPEM_TYPE:
            fields = decode_mapem(payload)
        else:
            fields = decode_denm(payload)
    except UperError as exc:
        raise WireError(str(exc)) from None
    return DecodedPayload(message_class, Encoding.UPER, content_type, None, fields)


def _decode_json(message_class: MessageClass, payload: bytes) -> DecodedPayload:
    schema = _schema_name(payload)
    message_type = JSON_SCHEMAS.get(schema)
    if message_type is None:
        raise WireError(f"{message_class.value}: unknown JSON schema {schema!r}")
    try:
        message = decode(message_type, payload)
        actual_class = message_class_of(message)
    except (MessageError, WireError) as exc:
        raise WireError(str(exc)) from None
    if actual_class is not message_class:
        raise WireError(f"a {schema} message on a {message_class.value} topic")
    return DecodedPayload(message_class, Encoding.JSON, schema, message, message.model_dump(mode="json"))


def _schema_name(payload: bytes) -> str:
    try:
        document = json.loads(payload)
    except ValueError as exc:
        raise WireError(f"payload is not JSON: {exc}") from None
    except RecursionError:
        # json.loads recurses per nesting level: a few thousand brackets exhaust the stack.
        raise WireError("payload is not JSON: nested too deeply") from None
    schema = document.get("schema_name") if isinstance(document, dict) else None
    if not isinstance(schema, str):
        raise WireError("JSON payload has no schema_name")
    return schema


class Publisher(Protocol):
    """What WirePublisher needs from a bus (rsu.runtime.bus.MqttBus fits)."""

    def publish(
        self,
        topic: str,
        payload: bytes,
        qos: int = 0,
        retain: bool = False,
        user_properties: list[tuple[str, str]] | None = None,
    ) -> Any: ...


class WirePublisher:
    """Encodes, signs and publishes V2X messages: the one call a unit stage needs per message."""

    def __init__(
        self,
        bus: Publisher,
        signer: UnitSigner,
        layout: TopicLayout | None = None,
        encodings: Mapping[MessageClass, Encoding] | Encoding = Encoding.JSON,
        identity: ItsIdentity | None = None,
        retained_periods_s: Mapping[MessageClass, float] | None = None,
    ) -> None:
        """retained_periods_s: how often the unit re-sends each retained class (MAP:
        v2x.map_period_s); it sets the age the retained signature vouches for. Default: the
        registry's rate."""
        self.bus = bus
        self.signer = signer
        self.layout = layout or TopicLayout()
        self.encodings = encodings
        self.identity = identity
        self.retained_periods_s = {**registry_periods_s(), **(retained_periods_s or {})}
        if identity is None and self._uses_uper():
            raise WireError("UPER encodings need an ItsIdentity (ItsIdentity.for_site(site))")

    def _uses_uper(self) -> bool:
        if isinstance(self.encodings, Encoding):
            return self.encodings is Encoding.UPER
        return Encoding.UPER in self.encodings.values()

    def encoding_for(self, message_class: MessageClass) -> Encoding:
        if isinstance(self.encodings, Encoding):
            # Objects have no UPER form, so a blanket UPER choice leaves them in JSON.
            if message_class not in UPER_TYPE_BY_CLASS:
                return Encoding.JSON
            return self.encodings
        return self.encodings.get(message_class, Encoding.JSON)

    def publish(self, message: Message) -> WireMessage:
        encoding = self.encoding_for(message_class_of(message))
        wire = encode_for_topic(message, encoding, self.layout, self.identity)
        user_properties = self.signer.sign(
            wire.topic, wire.payload, wire.properties, retained_max_age_s=self.retained_max_age_s(wire)
        )
        self.bus.publish(wire.topic, wire.payload, qos=wire.qos, retain=wire.retain, user_properties=user_properties)
        return wire

    def retained_max_age_s(self, wire: WireMessage) -> float | None:
        """The age a retained message's signature vouches for; None for a live message."""
        if not wire.retain:
            return None
        period_s = self.retained_periods_s.get(wire.message_class)
        if period_s is None:  # the registry's retained classes all have a period; a new one must add it
            raise WireError(f"{wire.message_class.value} is published retained but has no re-send period")
        return retained_bound_s(period_s)
