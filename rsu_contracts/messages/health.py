"""Unit health, published by the supervisor."""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from rsu_contracts.messages.envelope import Message


class UnitStatus(StrEnum):
    ONLINE = "online"
    DEGRADED = "degraded"
    OFFLINE = "offline"


class StageHealth(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    alive: bool
    restarts: int = Field(ge=0)
    heartbeat_age_s: float | None = Field(default=None, ge=0)
    detail: str = ""


class UnitHealth(Message):
    SCHEMA: ClassVar[str] = "rsu.health"
    status: UnitStatus
    stages: list[StageHealth]
    redis_connected: bool
    problems: list[str] = Field(default_factory=list)
