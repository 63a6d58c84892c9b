"""ATSPM high-resolution controller events (Indiana Traffic Signal Hi Resolution Data Logger
Enumerations), the log traffic-centre tools compute split failures and terminations from."""

from __future__ import annotations

from enum import IntEnum

from rsu_contracts.messages.signal import SignalEvent


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
    PEDESTRIAN_DETECTOR_ON = 90  # a pushbutton press; the parameter is the crosswalk id
    # Preemption and transit signal priority; the parameter is the requested signal group.
    PREEMPT_CALL_INPUT_ON = 102
    PREEMPT_CALL_INPUT_OFF = 104
    PREEMPT_ENTRY_STARTED = 105
    PREEMPT_BEGIN_DWELL_SERVICE = 107
    PREEMPT_MAX_PRESENCE_EXCEEDED = 110
    PREEMPT_BEGIN_EXIT_INTERVAL = 111
    TSP_CHECK_IN = 112
    TSP_ADJUSTMENT_TO_EARLY_GREEN = 113
    TSP_ADJUSTMENT_TO_EXTEND_GREEN = 114
    TSP_CHECK_OUT = 115


def signal_event(time_s: float, code: AtspmEvent, parameter: str) -> SignalEvent:
    """One event; the parameter is the signal group id (for priority events the requested one), or
    the lane id for detector events."""
    return SignalEvent(time_s=time_s, code=int(code), parameter=parameter)
