"""The signal state to publish when a cabinet, not the unit, drives the lights: what it shows.

SPaT, the signal-state topic and the ATSPM log must describe the lamps, and a cabinet can
differ from what the unit decided (it ignored a force-off, is in flash, runs its own plan, or
cannot be reached). Pure: the decided output and the cabinet's report in, the output to
publish out.

* A group the cabinet shows as decided keeps the plan's timing windows.
* A group it shows otherwise gets the shown indication and honest windows: it may change now
  (min end = now) and no later than the group's longest possible interval; the likely time is
  that bound too, since the unit no longer knows better. The reason names every such group.
* A cabinet in flash: every group flashing red, mode FLASH.
* No answer from the cabinet: every group DARK (SPaT "unavailable"), never the last picture.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from rsu_contracts.messages.signal import ControllerMode, Indication, SignalGroupState
from signal_control.controller import ControllerOutput
from signal_control.phasing import PhasePlan

# Longer than any interval a cabinet times (a max green with extensions): the honest upper bound
# of an indication the unit did not decide.
UNKNOWN_HORIZON_S = 120.0


def as_shown(
    output: ControllerOutput,
    shown: Mapping[str, Indication] | None,
    now_s: float,
    *,
    flashing: bool = False,
    problem: str = "",
) -> ControllerOutput:
    """``output`` rewritten to what the cabinet reports (``shown`` None: no answer)."""
    if shown is None or not shown:
        dark = [_unknown(state, Indication.DARK, now_s) for state in output.groups]
        why = problem or "the cabinet did not answer"
        return replace(output, groups=dark, reason=f"{why}; signal state unknown", stage_id=None)
    if flashing:
        flash = [_unknown(state, Indication.FLASHING_RED, now_s) for state in output.groups]
        return replace(output, mode=ControllerMode.FLASH, groups=flash, reason="the cabinet is in flash", stage_id=None)
    groups: list[SignalGroupState] = []
    differing: list[str] = []
    for state in output.groups:
        indication = shown.get(state.signal_group)
        if indication is None or indication is state.indication:
            groups.append(state)
            continue
        differing.append(f"{state.signal_group} shows {indication.value} (decided {state.indication.value})")
        groups.append(_unknown(state, indication, now_s))
    if not differing:
        return output
    return replace(output, groups=groups, reason=f"{output.reason}; cabinet differs: {', '.join(differing)}")


def _unknown(state: SignalGroupState, indication: Indication, now_s: float) -> SignalGroupState:
    since = state.since_s if indication is state.indication else now_s
    return SignalGroupState(
        signal_group=state.signal_group,
        indication=indication,
        since_s=min(since, now_s),
        min_end_time_s=now_s,
        max_end_time_s=now_s + UNKNOWN_HORIZON_S,
        likely_time_s=now_s + UNKNOWN_HORIZON_S,
    )


def called_groups(plan: PhasePlan, output: ControllerOutput) -> tuple[str, ...]:
    """The vehicle groups of the stage the controller serves or is clearing to: the cabinet's calls."""
    if output.stage_id is None:
        return ()
    for stage in plan.stages:
        if stage.stage_id == output.stage_id:
            return stage.vehicle_group_ids
    return ()
