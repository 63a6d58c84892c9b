"""ATSPM high-resolution controller events (Indiana Traffic Signal Hi Resolution Data Logger
Enumerations), the log traffic-centre tools compute split failures and terminations from."""

from __future__ import annotations

from enum import IntEnum

from rsu.messages.signal import SignalEvent


class AtspmEvent(IntEnum):
    PHASE_BEGIN_GREEN = 1
    PHASE_GAP_OUT = 4
    PHASE_MAX_OUT = 5
    PHASE_FORCE_OFF = 6
    PHASE_GREEN_TERMINATION = 7
    PHASE_BEGIN_YELLOW_CLEARANCE = 8
    PHASE_END_YELLOW_CLEARANCE = 9
    PHASE_BEGIN_RED_CLEARANCE = 10
    PHASE_END_RED_CLEARANCE = 11
    PEDESTRIAN_BEGIN_WALK = 21
    PEDESTRIAN_BEGIN_CLEARANCE = 22
    PEDESTRIAN_BEGIN_SOLID_DONT_WALK = 23
    PHASE_CALL_REGISTERED = 43
    PEDESTRIAN_CALL_REGISTERED = 45
    DETECTOR_OFF = 81
    DETECTOR_ON = 82


def signal_event(time_s: float, code: AtspmEvent, parameter: str) -> SignalEvent:
    """One event; the parameter is the signal group id, or the lane id for detector events."""
    return SignalEvent(time_s=time_s, code=int(code), parameter=parameter)
