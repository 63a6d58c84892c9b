"""Signal-head backends: where the controller's signal-group states become real (or simulated) lights.

Every backend offers ``apply(groups)`` and runs the same last, independent conflict check before
anything is shown: if two conflicting signal groups (site.conflicts) would both let traffic move,
the backend shows all red and raises :class:`ConflictingGreensError`.

Cabinet adapter (NTCIP 1202), the interface a real controller fits. A field cabinet is never
driven lamp by lamp: its own controller keeps the timers, the MMU and the intervals, and the unit
only *requests*. Per NEMA phase, the adapter turns each ``ControllerOutput`` into the NTCIP 1202
control objects, written every decision tick:

* ``phaseControlGroupHold``: hold the phases of the stage being served (strategy HOLD);
* ``phaseControlGroupForceOff``: end them (strategy TERMINATE: gap-out, max-out, force-off alike);
* ``phaseControlGroupVehCall`` / ``PedCall``: the calls the camera registered (ATSPM 43 / 45);
* ``phaseControlGroupPhaseOmit`` / ``PedOmit``: stages the strategy passes over.

together with ``unitBackupTime`` > 0 (e.g. 5 s): if the unit stops writing, the cabinet reverts to
its local plan by itself, which is what makes a crashed or disconnected unit safe. The adapter
reads the phase status groups (green / yellow / red, ``phaseStatusGroup*``) back and reports them
as the shown states; its ``apply`` is a request, the cabinet's own MMU stays the last word. Such
an adapter sits beside the SUMO one and implements the same :class:`SignalHeads` protocol, with
stage ids mapped to NEMA phases through ``SignalGroup.nema_phase`` in the site config.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from rsu_contracts.config.model import SiteConfig
from rsu_contracts.enums import SignalGroupKind
from rsu_contracts.messages.signal import SignalGroupState

# Only these stop everybody (the monitor's definition, shared): any other indication may let road
# users into the conflict area.
from signal_control.safety import STOP_INDICATIONS, conflicting_greens


class ConflictingGreensError(RuntimeError):
    """A command would have shown conflicting groups together; the heads now show all red."""

    def __init__(self, pairs: Sequence[tuple[str, str]]) -> None:
        self.pairs = tuple(pairs)
        listed = ", ".join(f"{a}+{b}" for a, b in self.pairs)
        super().__init__(f"refused conflicting signal groups {listed}; all heads set to red")


class SignalHeads(Protocol):
    """What a controller drives: the heads of one intersection."""

    def apply(self, groups: Sequence[SignalGroupState]) -> None:
        """Show these states; raises ConflictingGreensError (after setting all red) on a conflict."""
        ...


def conflicting_pairs(groups: Iterable[SignalGroupState], site: SiteConfig) -> list[tuple[str, str]]:
    """The site's conflict pairs whose two groups both show something other than a stop (a
    permissive left's flashing yellow arrow beside its partner's green gives way, and is allowed)."""
    permissive_with = {g.id: g.permissive_with for g in site.signal_groups if g.permissive_with is not None}
    pedestrians = {g.id for g in site.signal_groups if g.kind is SignalGroupKind.PEDESTRIAN}
    return conflicting_greens(list(groups), site.conflicts, permissive_with, pedestrians)


__all__ = [
    "STOP_INDICATIONS",
    "ConflictingGreensError",
    "SignalHeads",
    "conflicting_pairs",
]
