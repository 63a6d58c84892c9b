"""Vehicle-side client: subscribe to a unit's V2X topics, verify, decode, keep what concerns us.

    with VehicleClient("127.0.0.1", 1883, "rsu-demo-001", "unit.pub.pem",
                       position=(48.1372, 11.5761), heading_deg=180.0) as client:
        for message in client.messages(timeout_s=10):
            print(message.summary())

Through a TLS listener (deploy/mosquitto serves vehicles on 8883, TLS only) add
``tls=True, ca_file="unit-ca.pem"`` and, where the broker requires client certificates,
``cert_file`` and ``key_file``; `rsu vehicle listen` takes the same as --ca-file, --cert-file,
--key-file (see the README's TLS section).

Every message must carry a valid signature from the unit's key (v2x.signing); anything else is
counted in ``rejections`` and never delivered. SPaT, MAP and objects are always delivered.
A warning is delivered when its conflict point lies within radius_m and ahead of the vehicle
(within ahead_half_angle_deg of the heading, or closer than AT_CONFLICT_POINT_M), or when one of
its participants is within participant_radius_m (the camera may be tracking this very vehicle).
The end of a warning that was delivered is always delivered, so the vehicle can clear it.
Without a position every warning is delivered.

Replay window: every message must be signed within window_s of now, however the broker flags it.
Only a message the unit signed as retained (v2x.signing rsu-retained), on a class the topic
registry declares retained (MAP), is accepted older when the broker hands it out on subscribe, up
to the age the unit vouched for (two MAP periods and the window) and at most retained_max_age_s.
A genuine SPaT or warning someone re-published as retained is therefore rejected as stale.

Status (retained "online"/"offline", also the broker's last will) cannot be signed when the broker
sends it on the unit's behalf, so it is exposed unverified as ``unit_status`` and never delivered.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import queue
import sys
import threading
import time
import uuid
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rsu.key_files import load_public_key
from rsu.runtime.mqtt import Inbound, MqttClient
from rsu.runtime.mqtt_options import MqttOptionError, add_mqtt_connection_options, mqtt_config_from_options
from rsu_contracts.config.model import MqttConfig
from rsu_contracts.messages import CollisionWarning, Spat, TrackList, WarningStatus
from v2x.geo import LocalFrame
from v2x.mapdata import MapData
from v2x.signing import DEFAULT_RETAINED_MAX_AGE_S, SignatureError, SignatureVerifier, VerifiedMessage
from v2x.wire import (
    DELIVERY,
    REGISTERED,
    DecodedPayload,
    Encoding,
    LayoutStyle,
    MessageClass,
    TopicLayout,
    WireError,
    decode_payload,
)

log = logging.getLogger(__name__)

DEFAULT_RADIUS_M = 300.0
DEFAULT_PARTICIPANT_RADIUS_M = 10.0
DEFAULT_AHEAD_HALF_ANGLE_DEG = 90.0
# Closer than this the bearing to the conflict point is meaningless: the vehicle is at it.
AT_CONFLICT_POINT_M = 5.0
MAX_REMEMBERED_WARNINGS = 1024
MAX_RECENT_REJECTIONS = 100

WarningKey = tuple[str, ...]


@dataclass(frozen=True)
class VehiclePose:
    latitude_deg: float
    longitude_deg: float
    heading_deg: float = 0.0  # direction of travel, clockwise from north


@dataclass(frozen=True)
class Relevance:
    relevant: bool
    distance_m: float | None  # to the conflict point
    reason: str


@dataclass(frozen=True)
class VehicleMessage:
    """A verified, decoded message that concerns this vehicle."""

    unit_id: str
    message_class: MessageClass
    verified: VerifiedMessage
    decoded: DecodedPayload
    received_time_s: float
    distance_m: float | None = None

    @property
    def topic(self) -> str:
        return self.verified.topic

    @property
    def latency_s(self) -> float:
        """Signing to receipt (includes the clock offset between unit and vehicle)."""
        return self.received_time_s - self.verified.timestamp_s

    def summary(self) -> str:
        """One line for a log or the CLI."""
        clock = datetime.fromtimestamp(self.received_time_s, UTC).strftime("%H:%M:%S.%f")[:-3]
        head = (
            f"{clock} {self.unit_id} {self.message_class.value} seq={self.verified.seq} "
            f"{self.decoded.encoding.value} age={self.latency_s * 1000:.0f}ms"
        )
        return f"{head} {describe(self.decoded, self.distance_m, self.received_time_s)}"


def describe(decoded: DecodedPayload, distance_m: float | None = None, now_s: float | None = None) -> str:
    """Short human description of a decoded payload; now_s turns SPATEM change times into countdowns."""
    message, fields = decoded.message, decoded.fields
    where = "" if distance_m is None else f" {distance_m:.0f} m away"
    if isinstance(message, Spat):
        groups = ", ".join(f"{m.signal_group}:{m.event_state} {m.time_to_change_s:.1f}s" for m in message.movements)
        return f"intersection {message.intersection_id}: {groups}"
    if isinstance(message, MapData):
        return (
            f"intersection {message.intersection_id} (#{message.intersection_numeric_id}) rev {message.revision}: "
            f"{len(message.lanes)} lanes, {len(message.crosswalks)} crosswalks"
        )
    if isinstance(message, CollisionWarning):
        ttc = "" if message.ttc_s is None else f" ttc={message.ttc_s:.1f}s"
        return (
            f"{message.status.value} {message.severity.value} {message.kind.value}{ttc} {message.warning_id} at "
            f"{message.conflict_latitude_deg:.6f},{message.conflict_longitude_deg:.6f}{where}"
        )
    if isinstance(message, TrackList):
        return f"{len(message.objects)} objects from {message.camera_id}"
    if decoded.content_type == "etsi.spatem":
        parts = []
        for intersection in fields["intersections"]:
            for movement in intersection["movements"]:
                name = movement["signal_group"] or movement["signal_group_numeric_id"]
                likely_s = movement["likely_time_s"]
                countdown = "" if likely_s is None or now_s is None else f" {max(0.0, likely_s - now_s):.1f}s"
                parts.append(f"{name}:{movement['event_state']}{countdown}")
        return "SPATEM " + ", ".join(parts)
    if decoded.content_type == "etsi.mapem":
        lanes = sum(len(intersection["lanes"]) for intersection in fields["intersections"])
        return f"MAPEM rev {fields['revision']}: {lanes} lanes"
    if decoded.content_type == "etsi.denm":
        ended = " cancelled" if fields["termination"] else ""
        return (
            f"DENM {fields['cause']}({fields['cause_code']}/{fields['sub_cause_code']}){ended} "
            f"#{fields['sequence_number']} at {fields['latitude_deg']:.6f},{fields['longitude_deg']:.6f}{where}"
        )
    return decoded.content_type


def warning_relevance(
    decoded: DecodedPayload,
    pose: VehiclePose,
    radius_m: float = DEFAULT_RADIUS_M,
    participant_radius_m: float = DEFAULT_PARTICIPANT_RADIUS_M,
    ahead_half_angle_deg: float = DEFAULT_AHEAD_HALF_ANGLE_DEG,
) -> Relevance:
    """Whether a warning (JSON CollisionWarning or DENM) concerns a vehicle at pose."""
    vehicle_frame = LocalFrame(pose.latitude_deg, pose.longitude_deg)
    message = decoded.message
    if isinstance(message, CollisionWarning):
        conflict = (message.conflict_latitude_deg, message.conflict_longitude_deg)
    elif decoded.content_type == "etsi.denm":
        conflict = (decoded.fields["latitude_deg"], decoded.fields["longitude_deg"])
    else:
        return Relevance(True, None, "not a warning")
    east_m, north_m = vehicle_frame.to_local(*conflict)
    distance_m = math.hypot(east_m, north_m)
    if distance_m <= radius_m:
        if distance_m <= AT_CONFLICT_POINT_M:
            return Relevance(True, distance_m, "at the conflict point")
        bearing_deg = math.degrees(math.atan2(east_m, north_m))
        off_heading_deg = abs((bearing_deg - pose.heading_deg + 180.0) % 360.0 - 180.0)
        if off_heading_deg <= ahead_half_angle_deg:
            return Relevance(True, distance_m, "conflict point ahead")
    if isinstance(message, CollisionWarning):
        # Participants are in the unit's local frame; the conflict point is given in both frames,
        # which anchors the conversion without knowing the site reference.
        conflict_frame = LocalFrame(*conflict)
        for participant in message.participants:
            latitude, longitude = conflict_frame.to_geodetic(
                participant.x_m - message.conflict_x_m, participant.y_m - message.conflict_y_m
            )
            if math.hypot(*vehicle_frame.to_local(latitude, longitude)) <= participant_radius_m:
                return Relevance(True, distance_m, f"participant {participant.track_id} is near the vehicle")
    return Relevance(False, distance_m, f"conflict point {distance_m:.0f} m away, behind or beyond {radius_m:g} m")


def _warning_key(decoded: DecodedPayload) -> tuple[WarningKey, bool] | None:
    """(identity of the warning across its updates, whether this message ends it)."""
    message = decoded.message
    if isinstance(message, CollisionWarning):
        return ("json", message.unit_id, message.warning_id), message.status is WarningStatus.ENDED
    if decoded.content_type == "etsi.denm":
        fields = decoded.fields
        key = ("denm", str(fields["originating_station_id"]), str(fields["sequence_number"]))
        return key, fields["termination"] is not None
    return None


class VehicleClient:
    """Listens to one unit over MQTT v5 and delivers verified, relevant messages.

    Messages go to on_message (called on the network thread; keep it short) and to a bounded
    queue read by get() / messages(); when the queue is full the oldest message is dropped.
    """

    def __init__(
        self,
        host: str,
        port: int,
        unit_id: str,
        public_key_path: str | Path,
        position: tuple[float, float] | None = None,
        heading_deg: float = 0.0,
        radius_m: float = DEFAULT_RADIUS_M,
        encoding: Encoding | None = None,
        layout: TopicLayout | None = None,
        *,
        on_message: Callable[[VehicleMessage], None] | None = None,
        on_rejected: Callable[[str, str], None] | None = None,
        participant_radius_m: float = DEFAULT_PARTICIPANT_RADIUS_M,
        ahead_half_angle_deg: float = DEFAULT_AHEAD_HALF_ANGLE_DEG,
        window_s: float = 2.0,
        retained_max_age_s: float = DEFAULT_RETAINED_MAX_AGE_S,
        username: str | None = None,
        password: str | None = None,
        tls: bool = False,
        ca_file: str | None = None,
        cert_file: str | None = None,
        key_file: str | None = None,
        check_hostname: bool = True,
        client_id: str | None = None,
        queue_size: int = 1000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.host, self.port, self.unit_id = host, port, unit_id
        self.layout = layout or TopicLayout()
        self.encoding = encoding
        self.radius_m = radius_m
        self.participant_radius_m = participant_radius_m
        self.ahead_half_angle_deg = ahead_half_angle_deg
        self.pose = None if position is None else VehiclePose(position[0], position[1], heading_deg)
        self.verifier = SignatureVerifier(
            [load_public_key(public_key_path)],
            window_s=window_s,
            retained_max_age_s=retained_max_age_s,
            retainable=self._is_retained_topic,
        )
        self.on_message = on_message
        self.on_rejected = on_rejected
        self.unit_status: str | None = None
        self.rejections = Counter[str]()
        self.recent_rejections: deque[tuple[str, str]] = deque(maxlen=MAX_RECENT_REJECTIONS)
        self.filtered = 0
        self.dropped = 0
        self._clock = clock
        self._queue: queue.Queue[VehicleMessage] = queue.Queue(maxsize=queue_size)
        self._delivered_warnings: OrderedDict[WarningKey, None] = OrderedDict()
        self._lock = threading.Lock()
        # tls with ca_file trusts a private CA; cert_file / key_file are for a broker that requires
        # client certificates; check_hostname=False is unsafe (see MqttConfig.check_hostname).
        mqtt_config = MqttConfig(
            host=host,
            port=port,
            username=username,
            password=password,
            tls=tls,
            ca_file=ca_file,
            cert_file=cert_file,
            key_file=key_file,
            check_hostname=check_hostname,
        )
        self._mqtt = MqttClient(
            mqtt_config,
            client_id or f"vehicle-{uuid.uuid4().hex[:12]}",
            self._on_message,
        )
        for topic, message_class in self.layout.subscriptions(unit_id).items():
            self._mqtt.subscribe(topic, DELIVERY[message_class].qos)

    # ---------------------------------------------------------------- connection

    def connect(self, timeout_s: float = 5.0) -> VehicleClient:
        """Connect and wait until the broker has answered the subscriptions; BrokerUnavailable if not."""
        self._mqtt.connect(timeout_s)
        return self

    def close(self) -> None:
        self._mqtt.close()

    def __enter__(self) -> VehicleClient:
        return self.connect()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def connected(self) -> bool:
        return self._mqtt.connected

    def wait_subscribed(self, timeout_s: float = 5.0) -> bool:
        """True once the broker has acknowledged the subscriptions (retained messages follow)."""
        return self._mqtt.wait_ready(timeout_s)

    def _on_message(self, message: Inbound) -> None:
        # Network thread; MqttClient logs what a bug in here raises.
        self.handle(message.topic, message.payload, list(message.user_properties), retained=message.retain)

    # ---------------------------------------------------------------- processing

    def _is_retained_topic(self, topic: str) -> bool:
        """Whether the unit publishes this topic retained (the registry's retain flag of its class)."""
        parsed = self.layout.parse(topic)
        return parsed is not None and REGISTERED[parsed[1]].retain

    def update_pose(self, latitude_deg: float, longitude_deg: float, heading_deg: float) -> None:
        self.pose = VehiclePose(latitude_deg, longitude_deg, heading_deg)

    def handle(
        self, topic: str, payload: bytes, user_properties: Sequence[tuple[str, str]], retained: bool = False
    ) -> VehicleMessage | None:
        """Verify, decode and filter one received message; deliver and return it, or None."""
        now_s = self._clock()
        parsed = self.layout.parse(topic)
        if parsed is None or parsed[0] != self.unit_id:
            self._reject(topic, "UnexpectedTopic", f"{topic!r} is not a V2X topic of unit {self.unit_id!r}")
            return None
        _, message_class = parsed
        if message_class is MessageClass.STATUS:
            self.unit_status = payload.decode(errors="replace")
            return None
        with self._lock:  # the verifier's replay state is shared with any caller of handle()
            try:
                verified = self.verifier.verify(topic, payload, user_properties, now_s, retained=retained)
            except SignatureError as exc:
                self._reject(topic, type(exc).__name__, str(exc))
                return None
        if verified.unit_id != self.unit_id:
            self._reject(topic, "UnitMismatch", f"signed as unit {verified.unit_id!r}, expected {self.unit_id!r}")
            return None
        try:
            decoded = decode_payload(message_class, payload, verified.properties, reference_time_s=now_s)
        except WireError as exc:
            self._reject(topic, "Undecodable", str(exc))
            return None
        if self.encoding is not None and decoded.encoding is not self.encoding:
            self._reject(topic, "UnexpectedEncoding", f"{decoded.encoding.value} payload, expected {self.encoding}")
            return None
        distance_m = None
        if message_class is MessageClass.WARNINGS:
            relevant, distance_m = self._warning_is_relevant(decoded)
            if not relevant:
                self.filtered += 1
                return None
        delivered = VehicleMessage(verified.unit_id, message_class, verified, decoded, now_s, distance_m)
        self._deliver(delivered)
        return delivered

    def _warning_is_relevant(self, decoded: DecodedPayload) -> tuple[bool, float | None]:
        identity = _warning_key(decoded)
        pose = self.pose
        relevance = None
        if pose is not None:
            relevance = warning_relevance(
                decoded, pose, self.radius_m, self.participant_radius_m, self.ahead_half_angle_deg
            )
        distance_m = None if relevance is None else relevance.distance_m
        relevant = relevance is None or relevance.relevant
        if identity is None:
            return relevant, distance_m
        key, ends = identity
        with self._lock:
            known = key in self._delivered_warnings
            if ends:
                self._delivered_warnings.pop(key, None)
                return relevant or known, distance_m
            if relevant:
                self._delivered_warnings[key] = None
                self._delivered_warnings.move_to_end(key)
                while len(self._delivered_warnings) > MAX_REMEMBERED_WARNINGS:
                    self._delivered_warnings.popitem(last=False)
        return relevant, distance_m

    def _deliver(self, message: VehicleMessage) -> None:
        if self.on_message is not None:
            self.on_message(message)
        try:
            self._queue.put_nowait(message)
        except queue.Full:
            with contextlib.suppress(queue.Empty):
                self._queue.get_nowait()
            self.dropped += 1
            self._queue.put_nowait(message)

    def _reject(self, topic: str, kind: str, reason: str) -> None:
        self.rejections[kind] += 1
        self.recent_rejections.append((topic, reason))
        log.info("rejected message on %s: %s", topic, reason)
        if self.on_rejected is not None:
            self.on_rejected(topic, reason)

    # ---------------------------------------------------------------- reading

    def get(self, timeout_s: float | None = None) -> VehicleMessage | None:
        try:
            return self._queue.get(timeout=timeout_s)
        except queue.Empty:
            return None

    def messages(self, timeout_s: float | None = None, count: int | None = None) -> Iterator[VehicleMessage]:
        """Delivered messages until count is reached or timeout_s (total) has passed; None waits forever."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        delivered = 0
        while count is None or delivered < count:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return
            message = self.get(timeout_s=remaining if remaining is not None else 1.0)
            if message is None:
                continue
            delivered += 1
            yield message


# -------------------------------------------------------------------- command line


def add_vehicle_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add `vehicle listen` to an argparse subparsers object; the handler is set as `handler`."""
    vehicle = subparsers.add_parser("vehicle", help="vehicle-side tools for a unit's V2X messages")
    actions = vehicle.add_subparsers(dest="vehicle_command", required=True)
    listen = actions.add_parser(
        "listen",
        help="print one line per verified V2X message of a unit",
        description="Subscribe to a unit's V2X topics, verify every message against the unit's public key "
        "and print one line per verified message that concerns the vehicle; rejected messages go to stderr.",
    )
    listen.add_argument("--unit", required=True, help="unit id, e.g. rsu-demo-001")
    listen.add_argument("--key", required=True, help="the unit's Ed25519 public key (PEM)")
    listen.add_argument("--host", default="127.0.0.1", help="broker host (default 127.0.0.1)")
    listen.add_argument("--port", type=int, default=1883, help="broker port (default 1883; a TLS listener: 8883)")
    listen.add_argument("--lat", type=float, help="vehicle latitude (deg); without it every warning is shown")
    listen.add_argument("--lon", type=float, help="vehicle longitude (deg)")
    listen.add_argument("--heading", type=float, default=0.0, help="direction of travel, deg clockwise from north")
    listen.add_argument("--radius-m", type=float, default=DEFAULT_RADIUS_M, help="warning radius (default 300)")
    listen.add_argument(
        "--layout",
        choices=[style.value for style in LayoutStyle],
        default="rsu",
        help="the unit's v2x.topic_layout: rsu (default) or china",
    )
    listen.add_argument("--prefix", default="rsu", help="the unit's topic prefix (default rsu)")
    listen.add_argument(
        "--encoding",
        choices=["json", "uper", "any"],
        default="any",
        help="accept only this payload encoding (default any)",
    )
    listen.add_argument("--count", type=int, help="stop after this many messages")
    listen.add_argument("--timeout-s", type=float, help="stop after this many seconds")
    add_mqtt_connection_options(listen)
    listen.set_defaults(handler=run_listen)
    return vehicle


def run_listen(args: argparse.Namespace) -> int:
    """`rsu vehicle listen`: 0 when done, 1 if --count was not reached before --timeout-s."""
    if (args.lat is None) != (args.lon is None):
        print("rsu vehicle listen: give both --lat and --lon, or neither", file=sys.stderr)
        return 2
    position = None if args.lat is None else (args.lat, args.lon)
    layout = TopicLayout.china(args.prefix) if args.layout == "china" else TopicLayout(prefix=args.prefix)

    def print_rejection(topic: str, reason: str) -> None:
        print(f"rejected {topic}: {reason}", file=sys.stderr, flush=True)

    try:
        broker = mqtt_config_from_options(args, host=args.host, port=args.port)
    except MqttOptionError as exc:
        print(f"rsu vehicle listen: {exc}", file=sys.stderr)
        return 2
    try:
        client = VehicleClient(
            broker.host,
            broker.port,
            args.unit,
            args.key,
            position=position,
            heading_deg=args.heading,
            radius_m=args.radius_m,
            encoding=None if args.encoding == "any" else Encoding(args.encoding),
            layout=layout,
            on_rejected=print_rejection,
            username=broker.username,
            password=broker.password,
            tls=broker.tls,
            ca_file=broker.ca_file,
            cert_file=broker.cert_file,
            key_file=broker.key_file,
            check_hostname=broker.check_hostname,
        )
        client.connect()
    except (OSError, ValueError) as exc:  # unreadable key, wrong key type, broker down, TLS failure
        print(f"rsu vehicle listen: error: {exc}", file=sys.stderr)
        return 2
    received = 0
    try:
        for message in client.messages(timeout_s=args.timeout_s, count=args.count):
            print(message.summary(), flush=True)
            received += 1
    except KeyboardInterrupt:
        pass
    finally:
        client.close()
    return 1 if args.count is not None and received < args.count else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rsu", description="rsu-edge vehicle-side tools")
    add_vehicle_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
