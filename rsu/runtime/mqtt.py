"""One MQTT v5 client for every part of the project: the unit's bus, the centre's collector and the
vehicle-side clients.

It imports only paho, the standard library and the contracts (rsu_contracts.config.model,
rsu_contracts.topics), so vehicle-side code can use it without the rest of the unit. What it does for its users:

- credentials and TLS: the broker's certificate checked against MqttConfig.ca_file (or the system
  CA store) and, unless check_hostname is off, against the host; a client certificate
  (cert_file, key_file) for brokers that require one; each TLS failure named with its cause
  (untrusted CA, wrong host name, expired certificate, client certificate missing or refused);
- reconnects by itself, 1 s then doubling up to 5 s apart, and renews every subscription on each
  (re)connect;
- "ready" only once the broker has answered (SUBACK) every subscription: before that a message
  published to a new session would be missed (wait_ready());
- an optional persistent session (clean_start False, session expiry, receive maximum) with manual
  acknowledgement: a message is PUBACKed only when its user calls ack(), so an unacknowledged one
  is sent again after a reconnect;
- a last will, and a clean close (DISCONNECT, which also keeps a persistent session); the will
  can be delayed (MQTT v5 Will Delay Interval), so a broker restart or a client-id takeover that
  the client survives by reconnecting never publishes it: only a client that is really gone;
- a birth message (e.g. the retained "online" status next to the "offline" will), published on
  every (re)connect, so a broker restart or a takeover never leaves the will's word standing;
- a clear warning when another client connecting with the same client id takes over the
  connection (the client then reconnects, taking it back, and publishes its birth message again).

Messages are handed to on_message on paho's network thread; keep that callback short.
"""

from __future__ import annotations

import logging
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from rsu_contracts.config.model import MqttConfig
from rsu_contracts.topics import Route

log = logging.getLogger(__name__)

# Reconnect backoff: paho doubles the delay after each failed attempt, from the first to the last.
RECONNECT_MIN_DELAY_S = 1
RECONNECT_MAX_DELAY_S = 5
# MQTT v5 DISCONNECT reason: another client connected with this client id.
SESSION_TAKEN_OVER = 0x8E


# CONNACK reason codes that retrying with the same login cannot change: bad user name or password,
# not authorised, banned, bad authentication method.
_LOGIN_REFUSALS = frozenset({0x86, 0x87, 0x8A, 0x8C})


class BrokerUnavailable(ConnectionError):
    """The MQTT broker could not be reached or used; the message names host and port and why."""


# "(_ssl.c:2427)" at the end of an ssl error says nothing to an operator.
_OPENSSL_SOURCE_LINE = re.compile(r"\s*\(_ssl\.c:\d+\)")
# What OpenSSL reports (the verify message of a failed certificate check, or the reason of a TLS
# alert the broker sent) -> what is wrong, in words an operator can act on. Matched in lower case.
_SERVER_CERTIFICATE_UNTRUSTED = (
    "self-signed certificate",
    "self signed certificate",
    "unable to get local issuer certificate",
    "unable to get issuer certificate",
    "unable to verify the first certificate",
)
_SERVER_CERTIFICATE_EXPIRED = ("certificate has expired",)
_SERVER_CERTIFICATE_NOT_YET_VALID = ("certificate is not yet valid",)
_HOSTNAME_MISMATCH = ("hostname mismatch", "ip address mismatch")
_CLIENT_CERTIFICATE_REQUIRED = ("certificate required", "peer did not return a certificate")
_CLIENT_CERTIFICATE_EXPIRED = ("alert certificate expired",)
_CLIENT_CERTIFICATE_REFUSED = ("alert unknown ca", "alert bad certificate", "alert certificate unknown")
_CLOSED_WITHOUT_ALERT = ("eof occurred", "unexpected eof", "connection reset", "broken pipe")
# Without a client certificate a TLS 1.2 broker that requires one answers with a bare handshake failure.
_HANDSHAKE_FAILURE = ("alert handshake failure",)


@dataclass(frozen=True)
class LastWill:
    """What the broker publishes for a client that vanishes without a DISCONNECT."""

    topic: str
    payload: bytes
    retain: bool = True
    qos: int = 1
    # Will Delay Interval: the broker waits this long after the connection is lost and drops the
    # will if the client reconnects in time. The session is kept at least as long (MQTT v5 sends
    # the will at once when the session ends). 0: the will goes out as soon as the loss is seen.
    delay_s: int = 0

    def __post_init__(self) -> None:
        if self.delay_s < 0:
            raise ValueError(f"last will delay must not be negative, not {self.delay_s}")


@dataclass(frozen=True)
class BirthMessage:
    """What the client publishes after every (re)connect, e.g. the retained "online" status."""

    topic: str
    payload: bytes
    retain: bool = True
    qos: int = 1


@dataclass(frozen=True)
class PersistentSession:
    """Ask the broker to keep the session (subscriptions, queued and unacknowledged messages)
    across disconnects for expiry_s; receive_maximum bounds the messages in flight to us."""

    expiry_s: int
    receive_maximum: int | None = None


@dataclass(frozen=True)
class Inbound:
    """One received message."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    # MQTT v5 user properties (e.g. the unit's signature), in order.
    user_properties: tuple[tuple[str, str], ...]
    # Packet id and the connection it came in on: what ack() needs.
    mid: int
    connection: int


MessageHandler = Callable[[Inbound], None]


class _PahoClient(mqtt.Client):
    """paho's client, telling its owner why a connection failed: paho's own network loop
    (connect_in_background, every reconnect, every read) swallows the error and tries again."""

    on_attempt_failed: Callable[[OSError], None] | None = None
    # Only errors: paho's on_log would also format and hand over a debug line for every packet,
    # a cost on the warning path for nothing.
    on_error_logged: Callable[[str], None] | None = None

    def _easy_log(self, level: int, fmt: str, *args: Any) -> None:
        if level == mqtt.MQTT_LOG_ERR and self.on_error_logged is not None:
            self.on_error_logged(fmt % args)
        super()._easy_log(level, fmt, *args)  # type: ignore[arg-type]

    def reconnect(self) -> mqtt.MQTTErrorCode:
        try:
            return super().reconnect()
        except OSError as exc:
            if self.on_attempt_failed is not None:
                self.on_attempt_failed(exc)
            raise


class MqttClient:
    """A paho-mqtt 2.x client (MQTT v5) set up from an MqttConfig.

    subscribe() before or after connecting; connect() waits until the client is ready (connected
    and every subscription answered), connect_in_background() does not wait and keeps trying.
    """

    def __init__(
        self,
        config: MqttConfig,
        client_id: str,
        on_message: MessageHandler,
        *,
        last_will: LastWill | None = None,
        birth: BirthMessage | None = None,
        session: PersistentSession | None = None,
        manual_ack: bool = False,
        max_queued_messages: int = 0,
        tcp_nodelay: bool = False,
        broker_label: str = "MQTT broker",
        unreachable_hint: str = "",
        refusal_expected: bool = False,
    ) -> None:
        """max_queued_messages bounds what paho buffers while disconnected (0: no bound);
        tcp_nodelay sends small messages at once instead of waiting for delayed ACKs;
        broker_label names the broker in errors and logs ("centre MQTT broker");
        unreachable_hint is added to the error when the broker cannot be reached at all;
        refusal_expected: a refused login is the hoped-for answer (the preflight's anonymous probe),
        logged at INFO, not as a WARNING."""
        self.config = config
        self._refusal_level = logging.INFO if refusal_expected else logging.WARNING
        self.client_id = client_id
        self.broker_label = broker_label
        self._unreachable_hint = unreachable_hint
        self._on_message_handler = on_message
        self._session = session
        self._last_will = last_will
        self._birth = birth
        # How often another client took over our client id, as the broker said (DISCONNECT 0x8E) or
        # as the lost session shows (see _session_lost_to_a_takeover).
        self.takeovers = 0
        # When the latest connection was lost without a DISCONNECT from us (None: it was not).
        self._lost_at_monotonic_s: float | None = None
        self._tcp_nodelay = tcp_nodelay
        self._lock = threading.Lock()
        self._subscriptions: dict[str, int] = {}
        # SUBSCRIBE packet id -> its topics, until the broker answers.
        self._pending_subacks: dict[int, list[str]] = {}
        self._refused: dict[str, ReasonCode] = {}
        self._connected = threading.Event()
        self._ready = threading.Event()
        self._connection = 0
        self._last_refusal: ReasonCode | None = None
        # A TLS failure the network thread met after the handshake (TLS 1.3 brokers refuse a client
        # certificate only then): what connect() reports instead of a timeout.
        self._tls_error: str | None = None
        self._tls_failure_text_now: str | None = None
        self._started = False
        client = _PahoClient(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=manual_ack,
        )
        if config.username:
            client.username_pw_set(config.username, config.password)
        if config.tls:
            self._check_tls_files()
            try:
                client.tls_set(
                    ca_certs=config.ca_file,
                    certfile=config.cert_file,
                    keyfile=config.key_file,
                    cert_reqs=ssl.CERT_REQUIRED,
                )
            except (OSError, ssl.SSLError) as exc:  # the files are read here, not at connect
                raise BrokerUnavailable(
                    f"cannot set up TLS for {broker_label} at {self.address}: {_ssl_reason(exc)}"
                ) from None
            # Off only by explicit choice (MqttConfig.check_hostname): the chain is still verified.
            client.tls_insecure_set(not config.check_hostname)
        if last_will is not None:
            will_properties = None
            if last_will.delay_s:
                will_properties = Properties(PacketTypes.WILLMESSAGE)
                will_properties.WillDelayInterval = last_will.delay_s
            client.will_set(
                last_will.topic,
                last_will.payload,
                qos=last_will.qos,
                retain=last_will.retain,
                properties=will_properties,
            )
        client.reconnect_delay_set(min_delay=RECONNECT_MIN_DELAY_S, max_delay=RECONNECT_MAX_DELAY_S)
        client.max_queued_messages_set(max_queued_messages)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.on_error_logged = self._on_error_logged
        client.on_attempt_failed = self._on_attempt_failed
        self._client = client

    # state

    @property
    def address(self) -> str:
        return f"{self.config.host}:{self.config.port}"

    @property
    def connected(self) -> bool:
        """The broker accepted the connection (subscriptions may still be unanswered)."""
        return self._connected.is_set()

    @property
    def ready(self) -> bool:
        """Connected, and the broker has answered every subscription."""
        return self._ready.is_set()

    def wait_ready(self, timeout_s: float) -> bool:
        return self._ready.wait(timeout_s)

    @property
    def tls_failure(self) -> str | None:
        """Why TLS failed on the latest attempt (cause and remedy), until a connection succeeds;
        for links that connect in the background, where no exception reaches the caller."""
        return self._tls_failure_text_now

    @property
    def refused_subscriptions(self) -> dict[str, ReasonCode]:
        """Topic filters the broker refused on the latest connection (e.g. by its ACL), with why."""
        with self._lock:
            return dict(self._refused)

    # lifecycle

    def connect(self, timeout_s: float = 5.0) -> None:
        """Connect, start the network thread and wait until ready; raise BrokerUnavailable if the
        broker cannot be reached, the TLS handshake fails, or it is not ready within timeout_s."""
        try:
            self._client.connect(
                self.config.host,
                self.config.port,
                keepalive=self.config.keepalive_s,
                clean_start=self._clean_start,
                properties=self._connect_properties(),
            )
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError) as exc:
            # The TCP connection stood (refused or unreachable would say so), so the handshake
            # failed: a broker without TLS on this port drops the connection at the ClientHello.
            if not self.config.tls:
                raise BrokerUnavailable(self._unreachable(exc)) from None
            raise BrokerUnavailable(self._tls_failure(exc)) from None
        except OSError as exc:
            raise BrokerUnavailable(self._unreachable(exc)) from None
        self._set_tcp_nodelay()
        self._client.loop_start()
        self._started = True
        deadline = time.monotonic() + timeout_s
        # A TLS failure after the handshake, or a refused login, will not go away by retrying:
        # report it at once.
        while not self._ready.wait(0.05):
            refused_login = self._last_refusal is not None and self._last_refusal.value in _LOGIN_REFUSALS
            if self._tls_error is not None or refused_login or time.monotonic() >= deadline:
                self.close()
                raise BrokerUnavailable(self._not_ready_reason(timeout_s))

    def connect_in_background(self) -> None:
        """Start the network thread and return at once; it keeps trying (backoff up to 5 s) until
        the broker answers, and reconnects after every loss. For links that may be down at start."""
        self._client.connect_async(
            self.config.host,
            self.config.port,
            keepalive=self.config.keepalive_s,
            clean_start=self._clean_start,
            properties=self._connect_properties(),
        )
        self._client.loop_start()
        self._started = True

    def close(self) -> None:
        """DISCONNECT (after what is already queued) and stop the network thread. A persistent
        session stays on the broker for its expiry. Safe to call more than once."""
        if self._started:
            self._client.disconnect()
            self._client.loop_stop()
            self._started = False
        self._connected.clear()
        self._ready.clear()

    @property
    def _clean_start(self) -> bool | Literal[3]:
        # paho's default for MQTT v5 (clean on the first connect only) unless the session persists.
        return False if self._session is not None else mqtt.MQTT_CLEAN_START_FIRST_ONLY

    def _connect_properties(self) -> Properties | None:
        session_expiry_s = self._session_expiry_s()
        if not session_expiry_s:
            return None
        properties = Properties(PacketTypes.CONNECT)
        # A delayed will needs the session to outlive the connection by the delay: the broker
        # publishes the will as soon as the session ends, whatever the delay says.
        properties.SessionExpiryInterval = session_expiry_s
        if self._session is not None and self._session.receive_maximum is not None:
            properties.ReceiveMaximum = self._session.receive_maximum
        return properties

    def _unreachable(self, exc: OSError) -> str:
        hint = f"; {self._unreachable_hint}" if self._unreachable_hint else ""
        return f"{self.broker_label} at {self.address} is unreachable ({exc.strerror or exc}){hint}"

    def _check_tls_files(self) -> None:
        """Load the CA and client certificate files once on their own, so an error names the file."""
        config = self.config
        probe = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if config.ca_file is not None:
            try:
                probe.load_verify_locations(cafile=config.ca_file)
            except (OSError, ssl.SSLError) as exc:
                raise BrokerUnavailable(
                    f"cannot use the CA file {config.ca_file} for {self.broker_label} at {self.address}: "
                    f"{_ssl_reason(exc)} (it must hold PEM CA certificates)"
                ) from None
        if config.cert_file is not None and config.key_file is not None:
            for label, path in (("client certificate", config.cert_file), ("client key", config.key_file)):
                try:
                    with open(path, "rb"):
                        pass
                except OSError as exc:
                    raise BrokerUnavailable(
                        f"cannot use the {label} {path} for {self.broker_label} at {self.address}: {_ssl_reason(exc)}"
                    ) from None
            try:
                probe.load_cert_chain(config.cert_file, config.key_file)
            except (OSError, ssl.SSLError) as exc:
                raise BrokerUnavailable(
                    f"cannot use the client certificate {config.cert_file} with the key {config.key_file} for "
                    f"{self.broker_label} at {self.address}: {_ssl_reason(exc)} (both PEM, the key unencrypted and "
                    "belonging to the certificate)"
                ) from None

    def _tls_failure(self, exc: OSError) -> str:
        return self._tls_failure_text(_ssl_reason(exc))

    def _tls_failure_text(self, reason: str, after_handshake: bool = False) -> str:
        hint = self._tls_hint(reason, after_handshake)
        if after_handshake:
            return (
                f"TLS connection to {self.broker_label} at {self.address} was closed by the broker ({reason}); {hint}"
            )
        return f"TLS handshake with {self.broker_label} at {self.address} failed ({reason}); {hint}"

    def _tls_hint(self, reason: str, after_handshake: bool) -> str:
        """What a TLS failure means for this connection, and what to change."""
        config = self.config
        text = reason.lower()
        trust = f"a CA in {config.ca_file}" if config.ca_file else "a CA of the system store (or set ca_file)"
        has_client_certificate = config.cert_file is not None
        certificate_refused = (
            f"the broker did not accept the client certificate {config.cert_file}: it must be signed by a CA the "
            "broker trusts (its cafile) and be valid"
        )
        certificate_required = (
            "the broker requires a client certificate (mosquitto require_certificate): set cert_file and key_file "
            "(--cert-file, --key-file)"
        )
        # Under TLS 1.3 the broker checks the client certificate only after our side of the
        # handshake is done; Mosquitto then sends an alert or just closes the connection.
        if after_handshake and any(marker in text for marker in _CLOSED_WITHOUT_ALERT):
            return certificate_refused if has_client_certificate else certificate_required
        if any(marker in text for marker in _HOSTNAME_MISMATCH):
            return (
                f"the broker's certificate does not name {config.host}: connect by a name or address its subject "
                "alternative names list (or have the certificate reissued); check_hostname: false skips this "
                "check and is unsafe"
            )
        if any(marker in text for marker in _SERVER_CERTIFICATE_EXPIRED):
            return "the broker's certificate has expired (renew it, or check this machine's clock)"
        if any(marker in text for marker in _SERVER_CERTIFICATE_NOT_YET_VALID):
            return "the broker's certificate is not valid yet (check this machine's clock)"
        if any(marker in text for marker in _SERVER_CERTIFICATE_UNTRUSTED):
            return f"the broker's certificate is not signed by a trusted CA: it must be signed by {trust}"
        if any(marker in text for marker in _CLIENT_CERTIFICATE_EXPIRED):
            return f"the broker refused this client's certificate {config.cert_file} as expired: renew it"
        client_certificate_markers = _CLIENT_CERTIFICATE_REQUIRED + _CLIENT_CERTIFICATE_REFUSED
        if any(marker in text for marker in client_certificate_markers) or (
            not has_client_certificate and any(marker in text for marker in _HANDSHAKE_FAILURE)
        ):
            return certificate_refused if has_client_certificate else certificate_required
        return (
            "check that the broker speaks TLS on this port and that its certificate names this host and is signed "
            f"by {trust}"
        )

    def _not_ready_reason(self, timeout_s: float) -> str:
        if self._tls_error is not None:
            return self._tls_failure_text(self._tls_error, after_handshake=True)
        if self._last_refusal is not None:
            return f"{self.broker_label} at {self.address} refused the connection: {self._last_refusal}"
        if self._connected.is_set():
            return f"{self.broker_label} at {self.address} did not answer the subscriptions in {timeout_s} s"
        return f"{self.broker_label} at {self.address} did not accept the connection in {timeout_s} s"

    def _set_tcp_nodelay(self) -> None:
        # Small messages in request-response chains otherwise wait ~40 ms for delayed ACKs.
        if not self._tcp_nodelay:
            return
        sock = self._client.socket()
        if isinstance(sock, socket.socket):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    # traffic

    def subscribe(self, topic: str, qos: int = 0) -> None:
        """Subscribe now if connected (ready again once answered), and on every reconnect."""
        with self._lock:
            self._subscriptions[topic] = qos
            if self._connected.is_set():
                self._ready.clear()
                self._send_subscribe([(topic, qos)])

    def publish(
        self,
        topic: str,
        payload: bytes,
        qos: int = 0,
        retain: bool = False,
        user_properties: list[tuple[str, str]] | None = None,
    ) -> mqtt.MQTTMessageInfo:
        properties = None
        if user_properties:
            properties = Properties(PacketTypes.PUBLISH)
            properties.UserProperty = user_properties
        return self._client.publish(topic, payload, qos=qos, retain=retain, properties=properties)

    def publish_to(
        self, route: Route, payload: bytes, user_properties: list[tuple[str, str]] | None = None
    ) -> mqtt.MQTTMessageInfo:
        """Publish on a registered topic (rsu_contracts.topics) with the registry's QoS and retain flag."""
        return self.publish(route.topic, payload, qos=route.qos, retain=route.retain, user_properties=user_properties)

    def ack(self, message: Inbound) -> bool:
        """Acknowledge a message received with manual_ack; False if it cannot be any more.

        A PUBACK belongs to the connection the message came in on: on a newer one the same packet
        id may name a different message. A message from an older connection is not acknowledged;
        the broker sends it again instead."""
        if message.qos == 0 or message.connection != self._connection or not self._client.is_connected():
            return False
        self._client.ack(message.mid, message.qos)
        return True

    def _send_subscribe(self, topics: list[tuple[str, int]]) -> None:
        # Called with self._lock held, so the SUBACK (network thread) finds its packet id recorded.
        result, mid = self._client.subscribe(topics)
        if result == mqtt.MQTT_ERR_SUCCESS and mid is not None:
            self._pending_subacks[mid] = [topic for topic, _ in topics]

    # paho callbacks (network thread)

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            self._last_refusal = reason_code
            log.log(
                self._refusal_level,
                "%s: %s at %s refused the connection: %s",
                self.client_id,
                self.broker_label,
                self.address,
                reason_code,
            )
            return
        self._last_refusal = None
        self._tls_error = None
        self._tls_failure_text_now = None
        self._set_tcp_nodelay()  # a reconnect opens a new socket
        if self._session_lost_to_a_takeover(flags.session_present):
            self._warn_takeover(
                "was probably taken over",
                "the broker closed our connection and dropped our session before its expiry; the other cause "
                "would be a restart of a broker without persistence",
            )
        log.info(
            "%s: connected to %s at %s (session %s)",
            self.client_id,
            self.broker_label,
            self.address,
            "resumed" if flags.session_present else "new",
        )
        with self._lock:
            self._connection += 1
            self._pending_subacks.clear()
            self._refused.clear()
            self._connected.set()
            if self._subscriptions:
                self._send_subscribe(list(self._subscriptions.items()))
            else:
                self._ready.set()
        if self._birth is not None:
            # Every (re)connect: after a broker restart or a takeover the retained topic may hold
            # the will (or nothing); the birth message puts this client's word back.
            birth = self._birth
            client.publish(birth.topic, birth.payload, qos=birth.qos, retain=birth.retain)

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: object,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        with self._lock:
            topics = self._pending_subacks.pop(mid, None)
            if topics is None:
                return
            for topic, code in zip(topics, reason_codes, strict=False):
                if code.is_failure:
                    self._refused[topic] = code
                else:
                    self._refused.pop(topic, None)
            refused = {topic: str(code) for topic, code in zip(topics, reason_codes, strict=False) if code.is_failure}
            if not self._pending_subacks and self._connected.is_set():
                self._ready.set()
        if refused:
            log.warning(
                "%s: %s at %s refused subscriptions %s (ACL?)", self.client_id, self.broker_label, self.address, refused
            )

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self._ready.clear()
        self._connected.clear()
        if reason_code.value == SESSION_TAKEN_OVER:
            self._warn_takeover("was taken over", "the broker said so: DISCONNECT, session taken over")
        elif reason_code.is_failure:
            self._lost_at_monotonic_s = time.monotonic()
            # After a refused login paho reports the close as a failure too: one cause, one line.
            level = self._refusal_level if self._last_refusal is not None else logging.WARNING
            label, address = self.broker_label, self.address
            log.log(level, "%s: lost %s at %s (%s); reconnecting", self.client_id, label, address, reason_code)

    def _warn_takeover(self, verdict: str, evidence: str) -> None:
        self.takeovers += 1
        log.warning(
            "%s: client id %r %s: another client connected to %s at %s with the same client id (%s). "
            "A second copy of this process, or a client using our id: the broker should tie client ids to logins "
            "(deploy/mosquitto). This client takes it back by reconnecting (takeover %d)",
            self.client_id,
            self.client_id,
            verdict,
            self.broker_label,
            self.address,
            evidence,
            self.takeovers,
        )

    def _session_lost_to_a_takeover(self, session_present: bool) -> bool:
        """After a connection loss without DISCONNECT, whether our session vanished before it could
        have expired. Brokers that close a taken-over connection without saying why (Mosquitto 2.0)
        leave this trace: the other client's clean start discarded the session we kept."""
        lost_at_s, self._lost_at_monotonic_s = self._lost_at_monotonic_s, None
        expiry_s = self._session_expiry_s()
        if lost_at_s is None or session_present or not expiry_s:
            return False
        return time.monotonic() - lost_at_s < expiry_s

    def _session_expiry_s(self) -> int:
        will_delay_s = self._last_will.delay_s if self._last_will is not None else 0
        return max(self._session.expiry_s if self._session is not None else 0, will_delay_s)

    def _on_error_logged(self, text: str) -> None:
        # paho reports a failed read only in its log (then it reconnects): a TLS alert or close
        # from the broker after the handshake, e.g. a client certificate missing or refused (TLS 1.3).
        # Once the broker has accepted the connection (CONNACK), a TLS read error is a lost link
        # (e.g. a broker killed mid-session), not a refusal: the usual reconnect handles it.
        if "ssl" not in text.lower() or self._connected.is_set():
            return
        reason = _OPENSSL_SOURCE_LINE.sub("", text.split(": ", 1)[-1])
        self._tls_error = reason
        self._note_tls_failure(self._tls_failure_text(reason, after_handshake=True))

    def _on_attempt_failed(self, exc: OSError) -> None:
        # A handshake that failed in paho's loop (background connect, reconnect): e.g. the
        # broker's certificate expired while the unit ran. Unreachable brokers are not TLS news.
        if not self.config.tls or not isinstance(exc, ssl.SSLError | ConnectionResetError | BrokenPipeError):
            return
        self._note_tls_failure(self._tls_failure(exc))

    def _note_tls_failure(self, text: str) -> None:
        if text != self._tls_failure_text_now and self._started:  # once per cause, not on every retry
            log.warning("%s: %s", self.client_id, text)
        self._tls_failure_text_now = text

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        inbound = Inbound(
            topic=message.topic,
            payload=bytes(message.payload),
            qos=message.qos,
            retain=bool(message.retain),
            user_properties=tuple(getattr(message.properties, "UserProperty", None) or ()),
            mid=message.mid,
            connection=self._connection,
        )
        try:
            self._on_message_handler(inbound)
        except Exception:  # a bug in a handler must not kill paho's network thread
            log.exception("%s: failed to handle a message on %s", self.client_id, message.topic)


def _ssl_reason(exc: OSError) -> str:
    """The most telling part of an ssl or OS error: the certificate check's message, else the reason."""
    verify_message = getattr(exc, "verify_message", None)
    if verify_message:
        return str(verify_message)
    if isinstance(exc, ssl.SSLError) and len(exc.args) > 1 and isinstance(exc.args[1], str):
        return _OPENSSL_SOURCE_LINE.sub("", exc.args[1])
    return exc.strerror or str(exc)
