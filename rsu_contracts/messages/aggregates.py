"""Interval aggregates for the traffic centre.

Privacy by construction: these schemas have no field that can hold a track id, a position, an
image or a time finer than the interval, and extra fields are forbidden.
"""

from __future__ import annotations

import json
from typing import ClassVar

from pydantic import BaseModel, Field

from rsu_contracts.messages.bounds import (
    MAX_LANES,
    MAX_LINES,
    MAX_MOVEMENTS,
    MAX_QUEUE_LENGTH_M,
    MAX_QUEUED_VEHICLES,
    MAX_SIGNAL_GROUPS,
    MAX_SPEED_MPS,
    MESSAGE_MODEL_CONFIG,
)
from rsu_contracts.messages.envelope import Message


class _Part(BaseModel):
    model_config = MESSAGE_MODEL_CONFIG


class LaneAggregate(_Part):
    lane_id: str
    counts_by_class: dict[str, int]
    mean_speed_mps: float | None = Field(default=None, ge=0, le=MAX_SPEED_MPS)
    speed_p85_mps: float | None = Field(default=None, ge=0, le=MAX_SPEED_MPS)
    occupancy_ratio: float = Field(ge=0, le=1, description="share of the interval the stop bar was occupied")
    mean_queue_m: float = Field(ge=0, le=MAX_QUEUE_LENGTH_M)
    max_queue_m: float = Field(ge=0, le=MAX_QUEUE_LENGTH_M)
    mean_queue_vehicles: float = Field(ge=0, le=MAX_QUEUED_VEHICLES)
    mean_headway_s: float | None = Field(
        default=None, ge=0, description="mean gap between successive vehicles crossing the entry line in one green"
    )


class MovementCount(_Part):
    line_id: str
    counts_by_class: dict[str, int]


class TurningMovementCount(_Part):
    """Road users that entered across entry_line_id and left across exit_line_id, by class."""

    entry_line_id: str
    exit_line_id: str
    movement: str = Field(description="left / through / right / uturn")
    counts_by_class: dict[str, int]


class PhaseAggregate(_Part):
    signal_group: str
    green_time_s: float = Field(ge=0, description="green time used in the interval")
    green_starts: int = Field(ge=0)
    gap_outs: int = Field(ge=0)
    max_outs: int = Field(ge=0)
    force_offs: int = Field(default=0, ge=0)
    arrivals: int = Field(default=0, ge=0, description="vehicles crossing the entry line on the group's lanes")
    arrivals_on_green: int = Field(default=0, ge=0)
    split_failures: int = Field(default=0, ge=0, description="cycles with green and red occupancy ratios > 0.8")

    @property
    def arrivals_on_green_ratio(self) -> float | None:
        """Share of arrivals on green; derived, so it is not sent (the upstream budget is 5 kB/min)."""
        return round(self.arrivals_on_green / self.arrivals, 4) if self.arrivals else None


class Aggregate(Message):
    """One interval. capture_time_s is the interval end; publish_time_s when it was sealed.

    Version 2 added observed_s. An interval the unit did not observe at all (it was down) is sent
    as "no data": observed_s 0 and no lanes, lines, phases or movements (counts absent, not zero),
    so the centre cannot mistake it for an interval with no traffic. Version 1 payloads (no
    observed_s: coverage unknown) are still read.
    """

    SCHEMA: ClassVar[str] = "rsu.aggregate"
    VERSION: ClassVar[int] = 2
    READS_VERSIONS: ClassVar[tuple[int, ...]] = (1,)
    schema_version: int = VERSION
    interval_start_s: float
    interval_s: float = Field(gt=0)
    lanes: list[LaneAggregate] = Field(max_length=MAX_LANES)
    lines: list[MovementCount] = Field(default_factory=list, max_length=MAX_LINES)
    phases: list[PhaseAggregate] = Field(default_factory=list, max_length=MAX_SIGNAL_GROUPS)
    movements: list[TurningMovementCount] = Field(
        default_factory=list, max_length=MAX_MOVEMENTS, description="non-zero movements only"
    )
    warnings_by_kind: dict[str, int] = Field(default_factory=dict)
    detector_valid_ratio: float = Field(ge=0, le=1, default=1.0)
    observed_s: float | None = Field(
        default=None,
        ge=0,
        description="seconds of the interval covered by valid detector data; 0: not observed (no data); "
        "null: not reported (schema version 1)",
    )

    def to_json(self) -> bytes:
        """Compact JSON: fields at their default (zero counts, None ratios, empty lists) are left out
        and decode back to the same values, so the upstream stays small; the envelope's schema name
        and version always travel, as on every payload."""
        body = self.model_dump(mode="json", exclude_defaults=True)
        header = {"schema_name": self.schema_name, "schema_version": self.schema_version}
        return json.dumps({**header, **body}, separators=(",", ":"), allow_nan=False).encode()
