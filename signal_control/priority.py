"""Priority calls as the controller sees them: emergency preemption and transit signal priority.

A call is plain data, like a cabinet's preempt input: while it is in the list passed to
`SignalController.step(..., priority=...)` it is on; when it leaves the list it is off. Who may
place a call (signatures, allow-list, rate limits, expiry) is decided before it gets here
(`v2x.priority.PriorityGate`); the controller only decides how to serve it, always through the
normal change and clearance intervals, and the conflict monitor checks every output as usual.

- Emergency (preemption): the conflicting greens end once their minimum green and pedestrian
  service have run (yellow, all-red, pedestrian clearance as always), the stage that gives the
  requested group green is served and held (dwell) while the call is on, at most `max_dwell_s`;
  then the active strategy takes over again. ATSPM 102 / 104 input on / off, 105 entry, 107 dwell,
  110 max presence exceeded, 111 exit.
- Transit (TSP), never while a preemption runs: at most one adjustment per cycle, either an
  extension of the bus's green beyond the strategy's end by at most `max_extension_s` (only when
  the bus is due within it), or an early green: the conflicting stage being served ends up to
  `max_early_green_s` before its planned green (the fixed green under a fixed plan or recall, the
  max green under actuated and adaptive control), never before its minimum green and pedestrian
  service. The stage order is kept,
  so every other call is still served each cycle. ATSPM 112 / 115 check in / out, 113 early green,
  114 extend green.

The event parameter of these events is the requested signal group (the project's stand-in for the
preempt / TSP channel number of a cabinet).
"""

from __future__ import annotations

from dataclasses import dataclass

from rsu_contracts.config.model import PriorityConfig
from rsu_contracts.enums import PriorityKind
from rsu_contracts.messages.priority import PriorityPhase

# Calls beyond this many (emergency first, then by arrival) are ignored: bounded state.
MAX_PRIORITY_CALLS = 64


@dataclass(frozen=True)
class PriorityCall:
    """One active priority request, in the controller's clock."""

    call_id: str
    kind: PriorityKind
    signal_group: str
    # Estimated arrival of the vehicle at the stop line (seconds, same clock as `step`'s now_s).
    arrival_time_s: float

    def sort_key(self) -> tuple[int, float, str]:
        return (0 if self.kind is PriorityKind.EMERGENCY else 1, self.arrival_time_s, self.call_id)


@dataclass(frozen=True)
class PriorityLimits:
    max_dwell_s: float = 90.0
    max_extension_s: float = 10.0
    max_early_green_s: float = 10.0

    @classmethod
    def from_config(cls, config: PriorityConfig) -> PriorityLimits:
        return cls(
            max_dwell_s=config.preemption.max_dwell_s,
            max_extension_s=config.transit.max_extension_s,
            max_early_green_s=config.transit.max_early_green_s,
        )


@dataclass
class PreemptRun:
    call_id: str
    signal_group: str
    stage_index: int
    phase: PriorityPhase  # PREEMPT_ENTRY or PREEMPT_DWELL
    since_s: float


@dataclass
class TransitRun:
    call_id: str
    signal_group: str
    phase: PriorityPhase  # TRANSIT_WAITING, TRANSIT_EARLY_GREEN or TRANSIT_EXTEND_GREEN
    since_s: float
    # End of a running green extension.
    hold_until_s: float = 0.0
    # After an early green: the bus's stage has begun (the adjustment is over once it ends).
    early_green_served: bool = False
