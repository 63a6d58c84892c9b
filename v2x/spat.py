"""Signal controller state -> SAE J2735 SPaT movement states.

The names are J2735 MovementPhaseState enumeration names, so a vehicle-side decoder can map them
one to one onto the UPER encoding.
"""

from __future__ import annotations

from rsu_contracts.messages.signal import Indication, SignalState, SpatMovement

# J2735 MovementPhaseState names.
UNAVAILABLE = "unavailable"
DARK = "dark"
STOP_THEN_PROCEED = "stop-Then-Proceed"
STOP_AND_REMAIN = "stop-And-Remain"
PRE_MOVEMENT = "pre-Movement"
PERMISSIVE_MOVEMENT_ALLOWED = "permissive-Movement-Allowed"
PROTECTED_MOVEMENT_ALLOWED = "protected-Movement-Allowed"
PERMISSIVE_CLEARANCE = "permissive-clearance"
PROTECTED_CLEARANCE = "protected-clearance"
CAUTION_CONFLICTING_TRAFFIC = "caution-Conflicting-Traffic"

EVENT_STATE_BY_INDICATION: dict[Indication, str] = {
    Indication.RED: STOP_AND_REMAIN,
    Indication.GREEN: PROTECTED_MOVEMENT_ALLOWED,
    Indication.YELLOW: PROTECTED_CLEARANCE,
    Indication.RED_YELLOW: PRE_MOVEMENT,
    # Flashing don't walk: the pedestrian clearance interval of a protected crossing.
    Indication.PED_CLEARANCE: PROTECTED_CLEARANCE,
    Indication.FLASHING_RED: STOP_THEN_PROCEED,
    # The controller shows a flashing yellow only as a permissive left's arrow: turn, giving way.
    Indication.FLASHING_YELLOW: PERMISSIVE_MOVEMENT_ALLOWED,
    Indication.DARK: DARK,
}


def event_state(indication: Indication) -> str:
    """The J2735 MovementPhaseState name of a signal indication."""
    return EVENT_STATE_BY_INDICATION.get(indication, UNAVAILABLE)


def spat_movements(state: SignalState, now_s: float) -> list[SpatMovement]:
    """One SPaT movement per signal group, in the controller's order.

    time_to_change_s counts from now_s (the SPaT publish time) to the likely change, never below 0:
    an overdue change still reads 0 rather than a negative countdown.
    """
    return [
        SpatMovement(
            signal_group=group.signal_group,
            event_state=event_state(group.indication),
            min_end_time_s=group.min_end_time_s,
            max_end_time_s=group.max_end_time_s,
            likely_time_s=group.likely_time_s,
            time_to_change_s=max(0.0, group.likely_time_s - now_s),
        )
        for group in state.groups
    ]
