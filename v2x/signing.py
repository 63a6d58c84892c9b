"""Ed25519 signatures on MQTT v5 user properties, so a vehicle can tell a genuine unit message.

The signature travels beside the payload as user properties; the payload itself is untouched, so
JSON and UPER consumers that ignore properties still read it. A signed message carries:

    rsu-unit    unit id of the sender
    rsu-key     key id: first 16 hex digits of SHA-256 of the raw 32-byte public key
    rsu-topic   topic the message was signed for
    rsu-digest  SHA-256 of the payload, base64url without padding
    rsu-seq     sequence number per (unit, topic), strictly increasing (see UnitSigner)
    rsu-ts      signing time, seconds since the Unix epoch, 3 decimals
    rsu-sig     Ed25519 signature, base64, over the canonical bytes below

and, only on a message the unit publishes retained:

    rsu-retained  the age in seconds up to which the unit vouches for it as a retained message
                  (e.g. two MAP periods), so a subscriber may accept it that old on subscribe

The retain flag itself is set by whoever publishes and is not signed: anyone on the broker can
re-publish a genuine live SPaT or warning as retained. A message flagged retained by the broker
therefore gets the retained bound only if the unit signed it as retained (rsu-retained), on a
topic the verifier lets be retained; everything else is held to the live window.

Canonical bytes: the ASCII tag ``rsu-v2x-signature/1`` followed by every ``rsu-`` property except
``rsu-sig``, sorted by name, each name and value as a 4-byte big-endian length and UTF-8 bytes.
Every ``rsu-`` property is therefore bound (including extra ones such as the encoding); other user
properties (e.g. added by a bridge) are ignored and never reported as verified.

Topic and digest are carried although the verifier could recompute them, so a rejection can say
precisely what changed (payload, or the topic the message was re-published on).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

PROPERTY_PREFIX = "rsu-"
UNIT = "rsu-unit"
KEY_ID = "rsu-key"
TOPIC = "rsu-topic"
DIGEST = "rsu-digest"
SEQ = "rsu-seq"
TIMESTAMP = "rsu-ts"
SIGNATURE = "rsu-sig"
RETAINED = "rsu-retained"
REQUIRED_PROPERTIES = (UNIT, KEY_ID, TOPIC, DIGEST, SEQ, TIMESTAMP, SIGNATURE)
CANONICAL_TAG = b"rsu-v2x-signature/1"

DEFAULT_WINDOW_S = 2.0
# Retained messages (MAP) are delivered on subscribe long after signing; each gets the bound its
# signer put in rsu-retained (its re-send period based), never more than this verifier-side cap.
# The cap covers the longest MAP period a site may configure (240 s) twice over.
DEFAULT_RETAINED_MAX_AGE_S = 600.0
DEFAULT_MAX_STREAMS = 10_000

UserProperties = Sequence[tuple[str, str]]
Clock = Callable[[], float]


class SignatureError(ValueError):
    """A message that failed verification; str() says why."""


class UnsignedMessage(SignatureError):
    """The message carries no signature."""


class MalformedSignature(SignatureError):
    """Signature properties missing, repeated or unparsable."""


class UnknownKey(SignatureError):
    """Signed with a key the verifier does not trust."""


class BadSignature(SignatureError):
    """The signature does not match the signed properties (altered, or signed with another key)."""


class TamperedPayload(SignatureError):
    """The payload differs from the one that was signed."""


class TamperedTopic(SignatureError):
    """The message arrived on a topic other than the one it was signed for."""


class ReplayedMessage(SignatureError):
    """Sequence number not above the last accepted one for the same unit and topic."""


class StaleMessage(SignatureError):
    """Signing time outside the accepted window around now."""


def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def payload_digest(payload: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(payload).digest()).rstrip(b"=").decode()


def canonical_bytes(properties: Mapping[str, str]) -> bytes:
    parts = [CANONICAL_TAG]
    for name in sorted(properties):
        if name == SIGNATURE:
            continue
        for text in (name, properties[name]):
            data = text.encode()
            parts.append(len(data).to_bytes(4, "big"))
            parts.append(data)
    return b"".join(parts)


def public_key_from_pem(data: bytes, source: str = "public key") -> Ed25519PublicKey:
    """An Ed25519 public key from PEM bytes; source names where they came from in the error."""
    key = serialization.load_pem_public_key(data)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"{source}: not an Ed25519 public key ({type(key).__name__})")
    return key


def private_key_from_pem(data: bytes, source: str = "private key") -> Ed25519PrivateKey:
    """An Ed25519 private key from unencrypted PEM (PKCS#8) bytes."""
    key = serialization.load_pem_private_key(data, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{source}: not an Ed25519 private key ({type(key).__name__})")
    return key


@dataclass(frozen=True)
class KeyPairPem:
    """A new key pair as PEM bytes (private key PKCS#8 unencrypted), and its key id."""

    private_pem: bytes
    public_pem: bytes
    key_id: str


def new_key_pair() -> KeyPairPem:
    """A fresh Ed25519 key pair; writing it to files is the caller's (rsu.key_files)."""
    private_key = Ed25519PrivateKey.generate()
    private_pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return KeyPairPem(private_pem, public_pem, key_id(private_key.public_key()))


class UnitSigner:
    """Signs a unit's outgoing messages.

    Sequence numbers: per topic, max(previous + 1, signing time in milliseconds). They increase
    within a run, and a restarted unit starts above its previous run without persisted state as
    long as its clock does not step back (verifiers keep the last seq per unit and topic).
    """

    def __init__(self, private_key: Ed25519PrivateKey, unit_id: str, clock: Clock = time.time) -> None:
        if not unit_id:
            raise ValueError("unit_id must not be empty")
        self.unit_id = unit_id
        self.key_id = key_id(private_key.public_key())
        self._private_key = private_key
        self._clock = clock
        self._last_seq: dict[str, int] = {}
        self._lock = threading.Lock()  # stages may sign from several threads

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self._private_key.public_key()

    def sign(
        self,
        topic: str,
        payload: bytes,
        properties: UserProperties = (),
        retained_max_age_s: float | None = None,
    ) -> list[tuple[str, str]]:
        """User properties to publish with the payload: `properties` (bound too) plus the signature.

        Extra properties must use the ``rsu-`` prefix (they are all signed) and must not reuse a
        signature property name. retained_max_age_s: the message is published retained, and a
        subscriber may accept it on subscribe up to that age (signed as rsu-retained); None for a
        live message, which any subscriber holds to its live window however the broker flags it.
        """
        extra = dict(properties)
        if len(extra) != len(properties):
            raise ValueError("extra properties repeat a name")
        unbound = [name for name in extra if not name.startswith(PROPERTY_PREFIX)]
        if unbound:
            raise ValueError(f"extra properties {unbound} lack the {PROPERTY_PREFIX!r} prefix and would go unsigned")
        # rsu-retained is set through retained_max_age_s only, so its value is always well formed.
        clash = set(extra) & {*REQUIRED_PROPERTIES, RETAINED}
        if clash:
            raise ValueError(f"extra properties reuse signature property names {sorted(clash)}")
        if retained_max_age_s is not None:
            if not math.isfinite(retained_max_age_s) or retained_max_age_s <= 0:
                raise ValueError(f"retained_max_age_s must be a positive number of seconds, not {retained_max_age_s}")
            extra[RETAINED] = _format_age(retained_max_age_s)
        with self._lock:
            now_s = self._clock()
            # The number of topics a unit publishes is fixed and small, so this dict stays bounded.
            seq = max(self._last_seq.get(topic, -1) + 1, int(now_s * 1000))
            self._last_seq[topic] = seq
        signed = {
            **extra,
            UNIT: self.unit_id,
            KEY_ID: self.key_id,
            TOPIC: topic,
            DIGEST: payload_digest(payload),
            SEQ: str(seq),
            TIMESTAMP: f"{now_s:.3f}",
        }
        signature = base64.b64encode(self._private_key.sign(canonical_bytes(signed))).decode()
        own = [(name, signed[name]) for name in REQUIRED_PROPERTIES if name != SIGNATURE]
        if retained_max_age_s is not None:
            own.append((RETAINED, signed[RETAINED]))
        return [*properties, *own, (SIGNATURE, signature)]


@dataclass(frozen=True)
class VerifiedMessage:
    topic: str
    payload: bytes
    unit_id: str
    key_id: str
    seq: int
    timestamp_s: float
    # Every signed rsu-* property (signature excluded), e.g. the payload encoding.
    properties: Mapping[str, str] = field(default_factory=dict)

    def age_s(self, now_s: float) -> float:
        return now_s - self.timestamp_s


@dataclass
class _Stream:
    last_seq: int
    last_timestamp_s: float


class SignatureVerifier:
    """Checks signatures against trusted public keys and rejects replays.

    State: the last accepted seq per (key, unit, topic), at most max_streams entries. Streams whose
    last message is older than the freshness window are dropped first: every message they could
    still guard against is already rejected as stale. Only beyond that does the least recently
    used stream go, which merely weakens replay protection to the timestamp window for it.
    """

    def __init__(
        self,
        public_keys: Iterable[Ed25519PublicKey],
        window_s: float = DEFAULT_WINDOW_S,
        retained_max_age_s: float = DEFAULT_RETAINED_MAX_AGE_S,
        max_streams: int = DEFAULT_MAX_STREAMS,
        retainable: Callable[[str], bool] | None = None,
    ) -> None:
        """retained_max_age_s caps the age a message signed as retained may have on subscribe;
        retainable(topic) says whether a topic may be accepted as retained at all (the vehicle SDK
        allows the topics the registry declares retained); None allows every topic, the signature
        binding the topic the unit signed it as retained for."""
        if window_s <= 0:
            raise ValueError("window_s must be positive")
        if max_streams < 1:
            raise ValueError("max_streams must be at least 1")
        self._keys = {key_id(key): key for key in public_keys}
        if not self._keys:
            raise ValueError("at least one trusted public key is needed")
        self.window_s = window_s
        self.retained_max_age_s = max(retained_max_age_s, window_s)
        self.max_streams = max_streams
        self._retainable = retainable
        self._streams: OrderedDict[tuple[str, str, str], _Stream] = OrderedDict()

    @property
    def trusted_key_ids(self) -> list[str]:
        return sorted(self._keys)

    @property
    def stream_count(self) -> int:
        return len(self._streams)

    def verify(
        self,
        topic: str,
        payload: bytes,
        user_properties: UserProperties,
        now_s: float,
        retained: bool = False,
    ) -> VerifiedMessage:
        """Return the verified message or raise a SignatureError subclass saying why not.

        retained: the broker flagged the message retained (delivered on subscribe). Its signing time
        may then lie as far in the past as the unit vouched for in rsu-retained (at most
        retained_max_age_s), if the unit signed it as retained and the topic is retainable;
        otherwise, like every live message, at most window_s. Never further in the future than
        window_s.
        """
        properties = _signature_properties(user_properties)
        signer_key_id = properties[KEY_ID]
        public_key = self._keys.get(signer_key_id)
        if public_key is None:
            raise UnknownKey(
                f"signed with key {signer_key_id} (unit {properties[UNIT]!r}), which is not among the trusted "
                f"keys {self.trusted_key_ids}"
            )
        try:
            signature = base64.b64decode(properties[SIGNATURE], validate=True)
            public_key.verify(signature, canonical_bytes(properties))
        except (InvalidSignature, binascii.Error, ValueError):
            raise BadSignature(
                f"signature by key {signer_key_id} does not verify: the signed properties were altered "
                "or the message was signed with another key"
            ) from None
        if properties[TOPIC] != topic:
            raise TamperedTopic(f"signed for topic {properties[TOPIC]!r} but received on {topic!r}")
        if properties[DIGEST] != payload_digest(payload):
            raise TamperedPayload(f"payload on {topic!r} differs from the signed one (SHA-256 mismatch)")
        seq, timestamp_s = _parse_numbers(properties)
        age_s = now_s - timestamp_s
        oldest_s, kind = self._oldest_age_s(topic, properties, retained)
        if age_s > oldest_s or age_s < -self.window_s:
            raise StaleMessage(
                f"{kind} signed at {timestamp_s:.3f} is {age_s:+.3f} s from now ({now_s:.3f}); accepted "
                f"-{self.window_s:g} s .. +{oldest_s:g} s (check both clocks)"
            )
        stream_key = (signer_key_id, properties[UNIT], topic)
        stream = self._streams.get(stream_key)
        if stream is not None and seq <= stream.last_seq:
            raise ReplayedMessage(
                f"seq {seq} on {topic!r} from unit {properties[UNIT]!r} is not above the last accepted "
                f"seq {stream.last_seq}: replayed or duplicated"
            )
        self._remember(stream_key, seq, timestamp_s, now_s)
        return VerifiedMessage(
            topic=topic,
            payload=payload,
            unit_id=properties[UNIT],
            key_id=signer_key_id,
            seq=seq,
            timestamp_s=timestamp_s,
            properties={name: value for name, value in properties.items() if name != SIGNATURE},
        )

    def _oldest_age_s(self, topic: str, properties: Mapping[str, str], retained: bool) -> tuple[float, str]:
        """The oldest age accepted for this message, and what kind of message that bound is for."""
        if not retained:
            return self.window_s, "message"
        if RETAINED not in properties:
            # A live message someone re-published as retained: the replay the flag alone would allow.
            return self.window_s, "message flagged retained by the broker but not signed as retained"
        if self._retainable is not None and not self._retainable(topic):
            return self.window_s, f"message flagged retained on {topic!r}, which is not a retained topic"
        vouched_s = _parse_age(properties[RETAINED])
        return max(self.window_s, min(vouched_s, self.retained_max_age_s)), "retained message"

    def _remember(self, stream_key: tuple[str, str, str], seq: int, timestamp_s: float, now_s: float) -> None:
        self._streams[stream_key] = _Stream(seq, timestamp_s)
        self._streams.move_to_end(stream_key)
        if len(self._streams) <= self.max_streams:
            return
        expired = [key for key, stream in self._streams.items() if stream.last_timestamp_s < now_s - self.window_s]
        for key in expired:
            del self._streams[key]
        while len(self._streams) > self.max_streams:
            self._streams.popitem(last=False)


def _signature_properties(user_properties: UserProperties) -> dict[str, str]:
    properties: dict[str, str] = {}
    for name, value in user_properties:
        if not name.startswith(PROPERTY_PREFIX):
            continue
        if name in properties:
            raise MalformedSignature(f"user property {name!r} appears more than once")
        properties[name] = value
    if SIGNATURE not in properties:
        raise UnsignedMessage("message is unsigned (no rsu-sig user property)")
    missing = [name for name in REQUIRED_PROPERTIES if name not in properties]
    if missing:
        raise MalformedSignature(f"signed message lacks user properties {missing}")
    return properties


def _format_age(age_s: float) -> str:
    return f"{age_s:.3f}".rstrip("0").rstrip(".")


def _parse_age(text: str) -> float:
    try:
        age_s = float(text)
    except ValueError:
        raise MalformedSignature(f"unparsable {RETAINED}={text!r}") from None
    if not math.isfinite(age_s) or age_s <= 0:
        raise MalformedSignature(f"invalid {RETAINED}={text!r} (a positive number of seconds)")
    return age_s


def _parse_numbers(properties: Mapping[str, str]) -> tuple[int, float]:
    try:
        seq = int(properties[SEQ])
        timestamp_s = float(properties[TIMESTAMP])
    except ValueError:
        raise MalformedSignature(
            f"unparsable {SEQ}={properties[SEQ]!r} or {TIMESTAMP}={properties[TIMESTAMP]!r}"
        ) from None
    if seq < 0 or timestamp_s != timestamp_s:  # NaN compares unequal to itself
        raise MalformedSignature(f"invalid {SEQ}={properties[SEQ]!r} or {TIMESTAMP}={properties[TIMESTAMP]!r}")
    return seq, timestamp_s
