"""Priority requests and their status: emergency-vehicle preemption and transit signal priority.

A requester (an ambulance, a bus) publishes a `PriorityRequest` on `rsu/{unit}/priority/request`,
signed with its own Ed25519 key (v2x.signing user properties; `rsu-unit` is the requester id). The
unit answers every request on `rsu/{unit}/priority/status` with a `PriorityStatus`: accepted or
rejected (with a reason code and a sentence naming what is wrong), later active (the signals are
serving it) and ended (checked out, cancelled, expired or its dwell limit reached).

The envelope's `unit_id` of a request is the unit it is addressed to; `seq` is the requester's own
counter; `capture_time_s` is when the requester made the request.
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar

from pydantic import BaseModel, Field, model_validator

from rsu_contracts.enums import PriorityKind
from rsu_contracts.messages.bounds import MESSAGE_MODEL_CONFIG
from rsu_contracts.messages.envelope import Message

IDENTIFIER_PATTERN = r"^[A-Za-z0-9_.-]+$"
# Longest announced arrival a request may give: beyond this the estimate is worthless.
MAX_ARRIVAL_IN_S = 600.0

__all__ = [
    "PriorityAction",
    "PriorityKind",
    "PriorityPhase",
    "PriorityReason",
    "PriorityRequest",
    "PriorityService",
    "PriorityStatus",
    "PriorityStatusKind",
]


class PriorityAction(StrEnum):
    CHECK_IN = "check_in"  # ask for (or renew) priority
    CHECK_OUT = "check_out"  # the vehicle has passed the stop line
    CANCEL = "cancel"  # no longer needed (route changed, call withdrawn)


class PriorityRequest(Message):
    SCHEMA: ClassVar[str] = "rsu.priority.request"
    requester_id: str = Field(min_length=1, max_length=64, pattern=IDENTIFIER_PATTERN)
    request_id: str = Field(min_length=1, max_length=64, pattern=IDENTIFIER_PATTERN)
    kind: PriorityKind
    action: PriorityAction = PriorityAction.CHECK_IN
    # Exactly one of these names what the vehicle needs green for (check-in).
    approach: str | None = Field(default=None, min_length=1, max_length=64, description="approach id of the site")
    signal_group: str | None = Field(default=None, min_length=1, max_length=64, description="vehicle signal group id")
    arrival_in_s: float = Field(
        default=0.0, ge=0, le=MAX_ARRIVAL_IN_S, description="estimated time to the stop line from capture_time_s"
    )
    # When the request lapses unless renewed; None: the unit's grace after the estimated arrival.
    valid_until_s: float | None = Field(default=None, ge=0, description="absolute time the request lapses")

    @model_validator(mode="after")
    def _check_target(self) -> PriorityRequest:
        if self.action is PriorityAction.CHECK_IN and (self.approach is None) == (self.signal_group is None):
            raise ValueError("a check_in names exactly one of approach or signal_group")
        return self

    @property
    def call_id(self) -> str:
        """The request's identity at the unit: requester and request id."""
        return f"{self.requester_id}/{self.request_id}"


class PriorityStatusKind(StrEnum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    ACTIVE = "active"  # the signals are serving the request (preemption dwell, TSP adjustment)
    ENDED = "ended"


class PriorityReason(StrEnum):
    """Machine-readable reason of a status; `PriorityStatus.reason` says it in words."""

    OK = "ok"
    UNSIGNED = "unsigned"
    MALFORMED_SIGNATURE = "malformed_signature"
    BAD_SIGNATURE = "bad_signature"
    TAMPERED = "tampered"
    REPLAYED = "replayed"
    STALE = "stale"
    UNKNOWN_REQUESTER = "unknown_requester"
    RATE_LIMITED = "rate_limited"
    MALFORMED = "malformed"
    WRONG_UNIT = "wrong_unit"
    WRONG_KIND = "wrong_kind"
    UNKNOWN_APPROACH = "unknown_approach"
    UNKNOWN_SIGNAL_GROUP = "unknown_signal_group"
    EXPIRED = "expired"
    UNKNOWN_REQUEST = "unknown_request"
    BUSY = "busy"
    PREEMPTION_DWELL = "preemption_dwell"
    TRANSIT_EARLY_GREEN = "transit_early_green"
    TRANSIT_EXTEND_GREEN = "transit_extend_green"
    CHECKED_OUT = "checked_out"
    CANCELLED = "cancelled"
    MAX_DWELL = "max_dwell"


class PriorityStatus(Message):
    SCHEMA: ClassVar[str] = "rsu.priority.status"
    status: PriorityStatusKind
    reason_code: PriorityReason
    reason: str = Field(max_length=500)
    # Unknown (None) when the request could not be authenticated or decoded.
    requester_id: str | None = None
    request_id: str | None = None
    kind: PriorityKind | None = None
    signal_group: str | None = None
    stage_id: str | None = None


class PriorityPhase(StrEnum):
    """What the controller is doing for a priority call."""

    PREEMPT_ENTRY = "preempt_entry"  # ending conflicting greens through their clearance
    PREEMPT_DWELL = "preempt_dwell"  # holding the requested stage green
    TRANSIT_WAITING = "transit_waiting"  # checked in, no adjustment (yet) in this cycle
    TRANSIT_EARLY_GREEN = "transit_early_green"
    TRANSIT_EXTEND_GREEN = "transit_extend_green"


class PriorityService(BaseModel):
    """One priority call the controller is serving, as shown in the signal state."""

    model_config = MESSAGE_MODEL_CONFIG

    call_id: str = Field(description="requester id / request id")
    kind: PriorityKind
    signal_group: str
    stage_id: str
    phase: PriorityPhase
    since_s: float = Field(description="time the current phase began")
