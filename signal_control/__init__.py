"""Signal control: phase plan, timing formulas, strategies, the controller and its conflict monitor.

Pure logic: plain data in, plain data out, no I/O. Backends (SUMO, a real cabinet) live in
`signal_control.backends` and only ever drive heads from a `ControllerOutput`.
"""

from signal_control.controller import ControllerOutput, SignalController
from signal_control.phasing import PhasePlan
from signal_control.safety import ConflictMonitor, conflicting_greens

__all__ = ["ConflictMonitor", "ControllerOutput", "PhasePlan", "SignalController", "conflicting_greens"]
