"""Unit health, published by the supervisor."""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar

from pydantic import BaseModel, Field

from rsu_contracts.messages.bounds import MESSAGE_MODEL_CONFIG
from rsu_contracts.messages.envelope import Message

# One entry per (stage, topic, reason): a handful of stages, topics and reasons.
MAX_REJECTION_ENTRIES = 256


class UnitStatus(StrEnum):
    ONLINE = "online"
    DEGRADED = "degraded"
    OFFLINE = "offline"


class StageHealth(BaseModel):
    model_config = MESSAGE_MODEL_CONFIG

    name: str
    alive: bool
    restarts: int = Field(ge=0)
    heartbeat_age_s: float | None = Field(default=None, ge=0)
    detail: str = ""


class InputRejection(BaseModel):
    """How many inputs one stage dropped on one topic for one reason (rsu.runtime.input_guard)."""

    model_config = MESSAGE_MODEL_CONFIG

    stage: str
    topic: str
    reason: str = Field(description="invalid, future, stale, superseded, out_of_order, conflicting_greens, ...")
    count: int = Field(ge=0, description="since the stage process started")


class CabinetState(StrEnum):
    """What the unit can say about the signal cabinet it drives (rsu.cabinet.heads)."""

    IN_CONTROL = "in_control"  # answering, not in flash, showing what the unit asked
    NOT_POLLED = "not_polled"  # configured, but the controller stage has not reported yet
    UNREACHABLE = "unreachable"  # no valid SNMP answer (down, wrong community, bad answers)
    FLASH = "flash"  # the cabinet reports flash (MMU, local switch)
    DIVERGED = "diverged"  # answering, but it has shown other states than asked for a while


class DivergenceKind(StrEnum):
    IGNORED_FORCE_OFF = "ignored_force_off"  # still green after the unit forced it off
    OWN_PLAN = "own_plan"  # green on a phase the unit did not ask for (its own plan, backup mode)
    NOT_SERVED = "not_served"  # not green although the unit holds it
    OTHER = "other"  # another colour than asked (a dark or mixed head)


class CabinetDivergence(BaseModel):
    model_config = MESSAGE_MODEL_CONFIG

    signal_group: str
    kind: DivergenceKind
    wanted: str = Field(description="the indication the unit decided")
    shown: str = Field(description="the indication the cabinet reports")
    for_s: float = Field(ge=0, description="how long the cabinet has shown it differently")


class CabinetReport(BaseModel):
    """The NTCIP 1202 backend's state, as the controller stage last reported it."""

    model_config = MESSAGE_MODEL_CONFIG

    address: str = Field(description="host:port of the cabinet's SNMP agent")
    state: CabinetState
    in_control: bool = Field(description="the unit's requests are being written and followed")
    reachable: bool
    flashing: bool = False
    detail: str = Field(default="", description="the state in words, naming what is wrong")
    last_error: str = ""
    snmp_errors: int = Field(default=0, ge=0, description="failed SNMP requests since the stage started")
    writes: int = Field(default=0, ge=0)
    polls: int = Field(default=0, ge=0)
    last_poll_time_s: float | None = Field(default=None, description="wall time of the last good poll")
    last_poll_age_s: float | None = Field(default=None, ge=0, description="age of the last good poll when sent")
    divergences: list[CabinetDivergence] = Field(default_factory=list, max_length=64)


class UnitHealth(Message):
    SCHEMA: ClassVar[str] = "rsu.health"
    status: UnitStatus
    stages: list[StageHealth]
    redis_connected: bool
    problems: list[str] = Field(default_factory=list)
    rejections: list[InputRejection] = Field(
        default_factory=list,
        max_length=MAX_REJECTION_ENTRIES,
        description="inputs the stages refused, per stage, topic and reason",
    )
    cabinet: CabinetReport | None = Field(
        default=None, description="the signal cabinet driven over NTCIP 1202 (site.cabinet), if any"
    )
