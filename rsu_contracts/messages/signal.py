"""Signal controller output: the state of every signal group with SPaT timing."""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar

from pydantic import BaseModel, Field

from rsu_contracts.messages.bounds import (
    MAX_EVENTS_PER_MESSAGE,
    MAX_PRIORITY_CALLS,
    MAX_SIGNAL_GROUPS,
    MESSAGE_MODEL_CONFIG,
)
from rsu_contracts.messages.envelope import Message
from rsu_contracts.messages.priority import PriorityService


class Indication(StrEnum):
    RED = "red"
    RED_YELLOW = "red_yellow"
    GREEN = "green"
    YELLOW = "yellow"
    # Pedestrian heads: walk is GREEN, flashing don't walk is PED_CLEARANCE, don't walk is RED.
    PED_CLEARANCE = "ped_clearance"
    FLASHING_YELLOW = "flashing_yellow"
    FLASHING_RED = "flashing_red"
    DARK = "dark"


class ControllerMode(StrEnum):
    NORMAL = "normal"
    RECALL = "recall"  # detectors stale or failed: fixed-time recall
    FLASH = "flash"  # fault: all-way flashing red
    STARTUP = "startup"


class SignalGroupState(BaseModel):
    model_config = MESSAGE_MODEL_CONFIG

    signal_group: str
    indication: Indication
    since_s: float = Field(description="time this indication began")
    min_end_time_s: float = Field(description="earliest time the indication can change")
    max_end_time_s: float = Field(description="latest time the indication will change")
    likely_time_s: float = Field(description="best estimate of the change time")


class SignalEvent(BaseModel):
    """One ATSPM high-resolution event (Indiana enumerations: 1 green, 4 gap-out, 5 max-out, ...)."""

    model_config = MESSAGE_MODEL_CONFIG

    time_s: float
    code: int = Field(ge=0, le=255)
    parameter: str = Field(description="signal group or detector (lane) id the event refers to")


class SignalState(Message):
    SCHEMA: ClassVar[str] = "rsu.signal_state"
    mode: ControllerMode
    strategy: str
    groups: list[SignalGroupState] = Field(max_length=MAX_SIGNAL_GROUPS)
    reason: str = ""
    events: list[SignalEvent] = Field(
        default_factory=list, max_length=MAX_EVENTS_PER_MESSAGE, description="ATSPM events since the last message"
    )
    # Emergency preemption and transit priority calls being served (empty in normal operation).
    priority: list[PriorityService] = Field(default_factory=list, max_length=MAX_PRIORITY_CALLS)


class SpatMovement(BaseModel):
    """One signal group in J2735 SPaT terms (MovementState / MovementEvent)."""

    model_config = MESSAGE_MODEL_CONFIG

    signal_group: str
    event_state: str = Field(description="J2735 MovementPhaseState name, e.g. protected-Movement-Allowed")
    min_end_time_s: float
    max_end_time_s: float
    likely_time_s: float
    time_to_change_s: float = Field(ge=0)


class Spat(Message):
    SCHEMA: ClassVar[str] = "rsu.v2x.spat"
    intersection_id: str
    movements: list[SpatMovement] = Field(max_length=MAX_SIGNAL_GROUPS)
