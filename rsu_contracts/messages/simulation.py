"""Statistics of the simulated world (demo and benchmarks only; never sent upstream)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from rsu_contracts.messages.envelope import Message


class WorldStatistics(Message):
    SCHEMA: ClassVar[str] = "rsu.sim.statistics"
    sim_time_s: float = Field(ge=0)
    vehicles_departed: int = Field(ge=0)
    vehicles_arrived: int = Field(ge=0)
    mean_delay_s: float | None = Field(default=None, ge=0, description="mean time loss per arrived vehicle")
    persons_arrived: int = Field(ge=0)
    collisions: int = Field(ge=0, description="SUMO's collision count (no safety measure)")
    teleports: int = Field(ge=0, default=0)
    red_light_runners: int = Field(ge=0, default=0)
    jaywalkers: int = Field(ge=0, default=0)
    finished: bool = False
