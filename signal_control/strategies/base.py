"""What a control strategy sees and decides, and the helpers every strategy shares.

A strategy only chooses *when* the current stage should end and *which* stage comes next. The
controller enforces minimum greens, runs the change and clearance intervals, and the conflict
monitor checks the result, so a strategy cannot make an output unsafe.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from rsu_contracts.messages.perception import LaneObservation


class Action(StrEnum):
    HOLD = "hold"
    TERMINATE = "terminate"


class Termination(StrEnum):
    GAP_OUT = "gap_out"
    MAX_OUT = "max_out"
    FORCE_OFF = "force_off"


@dataclass(frozen=True)
class DecisionContext:
    now_s: float
    stage_index: int
    time_in_green_s: float
    # The controller's bounds for this stage's green (min includes any pedestrian service).
    min_green_s: float
    max_green_s: float
    # Per stage of the plan: does it have a call (vehicles, pedestrians, or recall)?
    stage_calls: tuple[bool, ...]
    # Latest detector state per lane id; empty when detectors are unavailable.
    lanes: Mapping[str, LaneObservation]
    # Optional camera lookahead: per lane, seconds until each moving vehicle seen upstream reaches
    # the stop line (ascending). Empty when the caller gives none or detectors are unavailable.
    arrivals_s: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    # Pedestrian groups with a call (detected or pushbutton): their walk will be served.
    pedestrian_calls: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str
    termination: Termination | None = None
    next_stage: int | None = None
    # Best estimate of the green still to run, for SPaT likelyTime; the controller clamps it.
    likely_remaining_s: float = 0.0

    @classmethod
    def hold(cls, reason: str, likely_remaining_s: float) -> Decision:
        return cls(Action.HOLD, reason, likely_remaining_s=likely_remaining_s)

    @classmethod
    def terminate(cls, termination: Termination, next_stage: int, reason: str) -> Decision:
        return cls(Action.TERMINATE, reason, termination=termination, next_stage=next_stage)


class Strategy(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def serves_every_stage(self) -> bool:
        """True: every stage and every pedestrian walk is served regardless of calls (recall)."""
        ...

    def decide(self, context: DecisionContext) -> Decision: ...

    def expected_green_s(self, stage_index: int) -> float:
        """Typical green of a stage when it is served, for SPaT estimates of later stages."""
        ...


def next_called_stage(current: int, stage_calls: tuple[bool, ...]) -> int | None:
    """The first stage after `current` in cyclic order with a call. Serving stages in this fixed
    rotation is what bounds every called stage's wait to one cycle."""
    count = len(stage_calls)
    for step in range(1, count):
        candidate = (current + step) % count
        if stage_calls[candidate]:
            return candidate
    return None
