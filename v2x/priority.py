"""The gate in front of the controller for priority requests: authenticate, validate, rate limit.

Pure logic: bytes, user properties and the time in, outcomes (for `PriorityStatus` messages) and
`PriorityCall`s for the controller out; the controller stage does the MQTT. Nothing reaches the
controller unless every check passed, in this order:

1. the Ed25519 signature (v2x.signing: key, signed properties, payload digest, topic, sequence
   number above the last one from that requester, signing time within `signature_window_s`);
2. the signer is an allow-listed requester (`priority.requesters` in the site file) and the key
   is that requester's own;
3. the requester's token bucket (`rate_per_min`, `burst`) has a token: floods are rejected;
4. the payload is a valid `rsu.priority.request` for this unit from this requester;
5. the requester may ask for this kind; the approach or signal group exists (vehicle groups
   only); the request has not lapsed; at most `max_active_requests` are checked in at once.

Every request gets an outcome naming what was wrong, if anything. State is bounded: one bucket
per allow-listed requester, at most `max_active_requests` requests, the verifier's replay streams
capped, and status answers to unauthenticated traffic rate limited as a whole.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from rsu_contracts.config.model import SiteConfig
from rsu_contracts.enums import Movement, PriorityKind, SignalGroupKind
from rsu_contracts.messages import MessageError, decode
from rsu_contracts.messages.priority import (
    PriorityAction,
    PriorityPhase,
    PriorityReason,
    PriorityRequest,
    PriorityService,
    PriorityStatusKind,
)
from signal_control.priority import PriorityCall
from v2x.signing import (
    SIGNATURE,
    BadSignature,
    MalformedSignature,
    ReplayedMessage,
    SignatureError,
    SignatureVerifier,
    StaleMessage,
    TamperedPayload,
    TamperedTopic,
    UnknownKey,
    UnsignedMessage,
    UserProperties,
    key_id,
)

# Status answers to traffic that could not be authenticated: at most this many per second (burst
# below), so a flood of forgeries cannot make the unit flood its status topic.
UNAUTHENTICATED_ANSWERS_PER_S = 2.0
UNAUTHENTICATED_ANSWER_BURST = 10
_SIGNATURE_REASONS: tuple[tuple[type[SignatureError], PriorityReason], ...] = (
    (UnsignedMessage, PriorityReason.UNSIGNED),
    (MalformedSignature, PriorityReason.MALFORMED_SIGNATURE),
    (UnknownKey, PriorityReason.UNKNOWN_REQUESTER),
    (BadSignature, PriorityReason.BAD_SIGNATURE),
    (TamperedPayload, PriorityReason.TAMPERED),
    (TamperedTopic, PriorityReason.TAMPERED),
    (ReplayedMessage, PriorityReason.REPLAYED),
    (StaleMessage, PriorityReason.STALE),
)
_ACTIVE_REASON = {
    PriorityPhase.PREEMPT_DWELL: PriorityReason.PREEMPTION_DWELL,
    PriorityPhase.TRANSIT_EARLY_GREEN: PriorityReason.TRANSIT_EARLY_GREEN,
    PriorityPhase.TRANSIT_EXTEND_GREEN: PriorityReason.TRANSIT_EXTEND_GREEN,
}


@dataclass(frozen=True)
class Requester:
    requester_id: str
    public_key: Ed25519PublicKey
    kinds: frozenset[PriorityKind]


@dataclass(frozen=True)
class PriorityOutcome:
    """One answer to publish as a `PriorityStatus` (see `status_fields`)."""

    status: PriorityStatusKind
    reason_code: PriorityReason
    reason: str
    requester_id: str | None = None
    request_id: str | None = None
    kind: PriorityKind | None = None
    signal_group: str | None = None
    stage_id: str | None = None
    # False: an unauthenticated rejection beyond the answer rate limit; count it, do not answer.
    announce: bool = True

    @property
    def call_id(self) -> str | None:
        if self.requester_id is None or self.request_id is None:
            return None
        return f"{self.requester_id}/{self.request_id}"

    def status_fields(self) -> dict[str, Any]:
        """Fields of the `PriorityStatus` message (the envelope comes from the publisher)."""
        return {
            "status": self.status,
            "reason_code": self.reason_code,
            "reason": self.reason[:500],
            "requester_id": self.requester_id,
            "request_id": self.request_id,
            "kind": self.kind,
            "signal_group": self.signal_group,
            "stage_id": self.stage_id,
        }


@dataclass
class TokenBucket:
    """`rate_per_s` tokens per second up to `capacity`; time from the caller, in seconds."""

    rate_per_s: float
    capacity: float
    tokens: float = -1.0
    last_s: float | None = None

    def __post_init__(self) -> None:
        if self.rate_per_s <= 0 or self.capacity < 1:
            raise ValueError("a token bucket needs a positive rate and a capacity of at least 1")
        if self.tokens < 0:
            self.tokens = self.capacity

    def take(self, now_s: float) -> bool:
        if self.last_s is not None:
            # A clock that steps back refills nothing (and never removes tokens).
            self.tokens = min(self.capacity, self.tokens + max(0.0, now_s - self.last_s) * self.rate_per_s)
        self.last_s = now_s if self.last_s is None else max(self.last_s, now_s)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


@dataclass
class _Active:
    request: PriorityRequest
    signal_group: str
    arrival_time_s: float
    expires_at_s: float
    announced: set[PriorityPhase] = field(default_factory=set)


class PriorityGate:
    def __init__(self, site: SiteConfig, requesters: Sequence[Requester], topic: str) -> None:
        config = site.priority
        self._site = site
        self._topic = topic
        self._config = config
        self._requesters = {requester.requester_id: requester for requester in requesters}
        if len(self._requesters) != len(requesters):
            raise ValueError("priority requesters: an id is listed twice")
        self._owner_of_key: dict[str, str] = {}
        for requester in requesters:
            kid = key_id(requester.public_key)
            if kid in self._owner_of_key:
                raise ValueError(
                    f"priority requesters {self._owner_of_key[kid]!r} and {requester.requester_id!r} share the "
                    f"public key {kid}: every requester needs its own key"
                )
            self._owner_of_key[kid] = requester.requester_id
        self._verifier = (
            SignatureVerifier(
                [requester.public_key for requester in requesters],
                window_s=config.signature_window_s,
                max_streams=max(16, 4 * len(requesters)),
            )
            if requesters
            else None
        )
        self._buckets = {
            requester.requester_id: TokenBucket(config.rate_per_min / 60.0, float(config.burst))
            for requester in requesters
        }
        self._answers = TokenBucket(UNAUTHENTICATED_ANSWERS_PER_S, UNAUTHENTICATED_ANSWER_BURST)
        self._active: dict[str, _Active] = {}
        self._vehicle_groups = {group.id for group in site.signal_groups if group.kind is SignalGroupKind.VEHICLE}
        self._stage_of_group: dict[str, str] = {}
        for stage in site.controller.stages:
            for group_id in stage.signal_groups:
                self._stage_of_group.setdefault(group_id, stage.id)
        self.rejected = 0

    # -- requests ---------------------------------------------------------------------------------

    def handle(self, payload: bytes, user_properties: UserProperties, now_s: float) -> PriorityOutcome:
        """Check one request received on the request topic at `now_s`; the outcome says what to answer."""
        outcome = self._handle(payload, user_properties, now_s)
        if outcome.status is PriorityStatusKind.REJECTED:
            self.rejected += 1
        return outcome

    def _handle(self, payload: bytes, user_properties: UserProperties, now_s: float) -> PriorityOutcome:
        # 1-2: who sent it.
        if self._verifier is None:
            signed = any(name == SIGNATURE for name, _ in user_properties)
            reason = PriorityReason.UNKNOWN_REQUESTER if signed else PriorityReason.UNSIGNED
            return self._unauthenticated(
                reason, "no priority requesters are allowed here (priority.requesters is empty)", now_s
            )
        try:
            verified = self._verifier.verify(self._topic, payload, user_properties, now_s)
        except SignatureError as exc:
            return self._unauthenticated(_signature_reason(exc), str(exc), now_s)
        owner = self._owner_of_key.get(verified.key_id)
        if owner != verified.unit_id:
            return self._unauthenticated(
                PriorityReason.UNKNOWN_REQUESTER,
                f"signed as {verified.unit_id!r} with the key of requester {owner!r}: a requester may sign only "
                "with its own key",
                now_s,
            )
        requester = self._requesters[owner]
        # 3: floods.
        if not self._buckets[owner].take(now_s):
            # Answered within the same overall limit as forgeries: a flood gets few answers.
            return _rejected(
                PriorityReason.RATE_LIMITED,
                f"requester {owner!r} sent more than {self._config.burst} requests in a burst or more than "
                f"{self._config.rate_per_min:g} per minute",
                announce=self._answers.take(now_s),
                requester_id=owner,
            )
        # 4: the payload.
        try:
            request = decode(PriorityRequest, payload)
        except MessageError as exc:
            return _rejected(PriorityReason.MALFORMED, str(exc), requester_id=owner)
        ids: dict[str, Any] = {"requester_id": owner, "request_id": request.request_id, "kind": request.kind}
        if request.requester_id != owner:
            return _rejected(
                PriorityReason.MALFORMED, f"requester_id {request.requester_id!r} is not the signer {owner!r}", **ids
            )
        if request.unit_id != self._site.unit_id:
            return _rejected(
                PriorityReason.WRONG_UNIT,
                f"addressed to unit {request.unit_id!r}, this is unit {self._site.unit_id!r}",
                **ids,
            )
        skew_s = abs(request.capture_time_s - now_s)
        if skew_s > self._config.signature_window_s:
            return _rejected(
                PriorityReason.STALE,
                f"capture_time_s {request.capture_time_s:.3f} is {skew_s:.3f} s from the unit's clock "
                f"(accepted {self._config.signature_window_s:g} s; check both clocks)",
                **ids,
            )
        # 5: what it asks for.
        if request.kind not in requester.kinds:
            allowed = ", ".join(sorted(kind.value for kind in requester.kinds))
            return _rejected(
                PriorityReason.WRONG_KIND,
                f"requester {owner!r} may ask for {allowed}, not {request.kind.value}",
                **ids,
            )
        if request.action is PriorityAction.CHECK_IN:
            return self._check_in(request, now_s)
        active = self._active.pop(request.call_id, None)
        if active is None:
            return _rejected(
                PriorityReason.UNKNOWN_REQUEST,
                f"{request.action.value}: request {request.request_id!r} of {owner!r} is not checked in",
                **ids,
            )
        code = PriorityReason.CHECKED_OUT if request.action is PriorityAction.CHECK_OUT else PriorityReason.CANCELLED
        return self._ended(active, code, f"{request.action.value.replace('_', '-')} by the requester")

    def _check_in(self, request: PriorityRequest, now_s: float) -> PriorityOutcome:
        ids: dict[str, Any] = {
            "requester_id": request.requester_id,
            "request_id": request.request_id,
            "kind": request.kind,
        }
        target = self._target_group(request)
        if isinstance(target, PriorityOutcome):
            return target
        lapses_s = (
            request.valid_until_s
            if request.valid_until_s is not None
            else request.capture_time_s + request.arrival_in_s + self._config.grace_after_arrival_s
        )
        if lapses_s <= now_s:
            return _rejected(
                PriorityReason.EXPIRED,
                f"request lapsed at t={lapses_s:.3f} s, before it was received (t={now_s:.3f} s)",
                signal_group=target,
                **ids,
            )
        renewal = request.call_id in self._active
        if not renewal and len(self._active) >= self._config.max_active_requests:
            return _rejected(
                PriorityReason.BUSY,
                f"{len(self._active)} requests are checked in already (priority.max_active_requests)",
                signal_group=target,
                **ids,
            )
        previous = self._active.get(request.call_id)
        self._active[request.call_id] = _Active(
            request=request,
            signal_group=target,
            arrival_time_s=request.capture_time_s + request.arrival_in_s,
            expires_at_s=min(lapses_s, now_s + self._config.max_request_s),
            announced=previous.announced if previous is not None and previous.signal_group == target else set(),
        )
        what = "preemption" if request.kind is PriorityKind.EMERGENCY else "transit priority"
        return PriorityOutcome(
            PriorityStatusKind.ACCEPTED,
            PriorityReason.OK,
            f"{what} for signal group {target} {'renewed' if renewal else 'checked in'}, "
            f"arrival in {request.arrival_in_s:.1f} s",
            signal_group=target,
            stage_id=self._stage_of_group.get(target),
            **ids,
        )

    def _target_group(self, request: PriorityRequest) -> str | PriorityOutcome:
        ids: dict[str, Any] = {
            "requester_id": request.requester_id,
            "request_id": request.request_id,
            "kind": request.kind,
        }
        if request.signal_group is not None:
            if request.signal_group not in self._vehicle_groups:
                known = ", ".join(sorted(self._vehicle_groups))
                return _rejected(
                    PriorityReason.UNKNOWN_SIGNAL_GROUP,
                    f"signal group {request.signal_group!r} is not a vehicle signal group of unit "
                    f"{self._site.unit_id} (known: {known})",
                    **ids,
                )
            return request.signal_group
        for approach in self._site.approaches:
            if approach.id == request.approach:
                # The through movement is what an emergency vehicle or a bus usually needs.
                lanes = [lane for lane in approach.lanes if Movement.THROUGH in lane.movements] or approach.lanes
                return lanes[0].signal_group
        known = ", ".join(approach.id for approach in self._site.approaches)
        return _rejected(
            PriorityReason.UNKNOWN_APPROACH,
            f"approach {request.approach!r} is not an approach of unit {self._site.unit_id} (known: {known})",
            **ids,
        )

    def _unauthenticated(self, code: PriorityReason, reason: str, now_s: float) -> PriorityOutcome:
        return _rejected(code, reason, announce=self._answers.take(now_s))

    # -- lifecycle --------------------------------------------------------------------------------

    def expire(self, now_s: float) -> list[PriorityOutcome]:
        """End the requests that lapsed without a renewal or a check-out."""
        lapsed = [call_id for call_id, active in self._active.items() if active.expires_at_s <= now_s]
        return [
            self._ended(self._active.pop(call_id), PriorityReason.EXPIRED, "lapsed without a renewal or check-out")
            for call_id in lapsed
        ]

    def observe(self, services: Iterable[PriorityService], exhausted_calls: Iterable[str]) -> list[PriorityOutcome]:
        """Answers that follow from the controller's output: active (served) and ended (max dwell)."""
        outcomes = []
        for service in services:
            active = self._active.get(service.call_id)
            code = _ACTIVE_REASON.get(service.phase)
            if active is None or code is None or service.phase in active.announced:
                continue
            active.announced.add(service.phase)
            outcomes.append(
                PriorityOutcome(
                    PriorityStatusKind.ACTIVE,
                    code,
                    f"{service.phase.value.replace('_', ' ')} for signal group {service.signal_group} in stage "
                    f"{service.stage_id}",
                    requester_id=active.request.requester_id,
                    request_id=active.request.request_id,
                    kind=active.request.kind,
                    signal_group=service.signal_group,
                    stage_id=service.stage_id,
                )
            )
        for call_id in exhausted_calls:
            ended = self._active.pop(call_id, None)
            if ended is not None:
                reason = f"held green for the longest dwell ({self._config.preemption.max_dwell_s:g} s)"
                outcomes.append(self._ended(ended, PriorityReason.MAX_DWELL, reason))
        return outcomes

    def calls(self, clock_offset_s: float = 0.0) -> list[PriorityCall]:
        """The checked-in requests as controller calls; `clock_offset_s` is added to their times
        (controller clock minus the clock the gate is given, zero when both are the wall clock)."""
        return [
            PriorityCall(call_id, active.request.kind, active.signal_group, active.arrival_time_s + clock_offset_s)
            for call_id, active in self._active.items()
        ]

    @property
    def active_count(self) -> int:
        return len(self._active)

    def _ended(self, active: _Active, code: PriorityReason, reason: str) -> PriorityOutcome:
        return PriorityOutcome(
            PriorityStatusKind.ENDED,
            code,
            reason,
            requester_id=active.request.requester_id,
            request_id=active.request.request_id,
            kind=active.request.kind,
            signal_group=active.signal_group,
            stage_id=self._stage_of_group.get(active.signal_group),
        )


def _signature_reason(exc: SignatureError) -> PriorityReason:
    for error_type, code in _SIGNATURE_REASONS:
        if isinstance(exc, error_type):
            return code
    return PriorityReason.BAD_SIGNATURE


def _rejected(code: PriorityReason, reason: str, announce: bool = True, **ids: Any) -> PriorityOutcome:
    return PriorityOutcome(PriorityStatusKind.REJECTED, code, reason, announce=announce, **ids)
