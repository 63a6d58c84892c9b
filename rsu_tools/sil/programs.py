"""SUMO's own traffic-light programs for the comparison, built from the same phase plan.

Every program runs the site's stages in their configured order with the site's yellow, all-red,
minimum and maximum greens, and the same pedestrian rule as the unit's controller (a walk, then
the flashing-don't-walk clearance while the vehicles keep green), so the only difference between
programs is how they time the greens:

* ``fixed_webster``: static, greens split by Webster from the scenario's flows;
* ``actuated``: SUMO's gap-based ``actuated`` with its default detector parameters;
* ``actuated_tuned``: ``actuated`` with a shorter max-gap, detectors nearer the stop line and
  longer maximum greens;
* ``delay_based``: SUMO's time-loss-based ``delay_based`` controller.

SUMO's programs follow their phase sequence: a phase nobody waits for still runs its minimum
(``actuated`` can branch with ``next`` lists, but on this junction that raised light-traffic delay
from 25.1 to 52.3 s, measured on its protected-only plan), and they do not know whether a
pedestrian has called: their crossing walk is recalled every cycle. Protected/permissive lefts
show their flashing yellow arrow (SUMO's minor green) beside the opposing through, as under the
unit (``signal_control.permissive``). ``delay_based_permissive_only`` is a reference outside the
comparison: ``delay_based`` on a plan without the protected-left stages. They run the site's own
(sequential) stages, not the NEMA dual-ring stages the unit's adaptive strategy may add
(``signal_control.phasing.with_ring_barrier_stages``): choosing at run time between {1, 5},
{1, 6} and {2, 5} needs phase branching on detector state, which ``static`` and ``delay_based``
do not have and ``actuated`` did badly here (see above; a fixed lead-lag sequence would make every
cycle run the overlap phases whether or not a left is called); SUMO's separate ``NEMA`` controller type
is not among the programs compared. The link states come from
the unit's own signal-head mapping (rsu's SumoSignalHeads.state_for), so a link shows here what
it would show for the same signal-group states under the unit.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rsu_contracts.config.model import SiteConfig
from rsu_contracts.messages.signal import Indication, SignalGroupState
from signal_control.backends.sumo import SumoSignalHeads, read_link_facts
from signal_control.permissive import displayed as permissive_display
from signal_control.phasing import PhasePlan
from signal_control.strategies import FixedTimeStrategy

BUILTIN_PROGRAMS = ("fixed_webster", "actuated", "actuated_tuned", "delay_based")
# For reference, outside the comparison: delay_based on another signal plan, with the protected
# left phases left out, so the lefts only ever turn permissively.
REFERENCE_PROGRAMS = ("delay_based_permissive_only",)
PROGRAM_ID = "bench"


@dataclass(frozen=True)
class ActuatedParameters:
    max_gap_s: float
    detector_gap_s: float
    passing_time_s: float
    # Multiplier on the site's maximum greens.
    max_green_factor: float


SUMO_DEFAULT_ACTUATED = ActuatedParameters(max_gap_s=3.0, detector_gap_s=2.0, passing_time_s=2.0, max_green_factor=1.0)
# Tuned by hand on the balanced and unbalanced scenarios (one seed each): gaps tight enough to end
# a green soon after its queue has gone, greens allowed to run longer under heavy demand.
TUNED_ACTUATED = ActuatedParameters(max_gap_s=2.0, detector_gap_s=1.0, passing_time_s=1.5, max_green_factor=1.4)


class _NetworkTrafficLight:
    """The controlled links of a traffic light read from the network file, shaped like
    ``libsumo.trafficlight.getControlledLinks``, so SumoSignalHeads can map them without SUMO."""

    def __init__(self, net_file: str | Path, traffic_light_id: str) -> None:
        links: dict[int, list[tuple[str, str, str]]] = {}
        for connection in ET.parse(net_file).getroot().iter("connection"):
            if connection.get("tl") != traffic_light_id:
                continue
            index = int(connection.get("linkIndex", "-1"))
            from_lane = f"{connection.get('from')}_{connection.get('fromLane')}"
            to_lane = f"{connection.get('to')}_{connection.get('toLane')}"
            links.setdefault(index, []).append((from_lane, to_lane, connection.get("via", "")))
        self._links = [links[i] for i in range(len(links))]

    def getControlledLinks(self, tlsID: str) -> Any:
        return self._links

    def getRedYellowGreenState(self, tlsID: str) -> str:
        return ""

    def setRedYellowGreenState(self, tlsID: str, state: str) -> None:
        return None


def signal_heads_for_network(site: SiteConfig, net_file: str | Path) -> SumoSignalHeads:
    traffic_light_id = site.simulation.traffic_light_id
    api = _NetworkTrafficLight(net_file, traffic_light_id)
    return SumoSignalHeads(traffic_light_id, site, api, read_link_facts(net_file, traffic_light_id, site))


@dataclass(frozen=True)
class _Phase:
    duration_s: float
    state: str
    min_s: float | None = None
    max_s: float | None = None


def _state(
    heads: SumoSignalHeads, plan: PhasePlan, indications: Mapping[str, Indication], shown: dict[str, Indication]
) -> str:
    """The link states of one phase; ``shown`` carries the previous phase's display in and this
    one's out, so permissive lefts show their arrow and permissive yellow as under the unit."""
    protected = {group_id: indications.get(group_id, Indication.RED) for group_id in plan.groups}
    display = permissive_display(plan, protected, shown)
    shown.clear()
    shown.update(display)
    groups = [
        SignalGroupState(
            signal_group=group_id,
            indication=display[group_id],
            since_s=0.0,
            min_end_time_s=0.0,
            max_end_time_s=0.0,
            likely_time_s=0.0,
        )
        for group_id in plan.groups
    ]
    return heads.state_for(groups)[0]


def _phases(
    plan: PhasePlan,
    heads: SumoSignalHeads,
    greens_s: Sequence[float],
    actuated: ActuatedParameters | None,
    without_protected_lefts: bool = False,
) -> list[_Phase]:
    """Walk, green, yellow and all-red of every stage in order; greens_s are the static greens.
    ``without_protected_lefts`` leaves out the stages made only of permissive lefts."""
    phases: list[_Phase] = []
    shown: dict[str, Indication] = {}
    kept = [
        index
        for index, stage in enumerate(plan.stages)
        if not (
            without_protected_lefts
            and not stage.pedestrian_group_ids
            and all(plan.groups[g].permissive_with is not None for g in stage.vehicle_group_ids)
        )
    ]
    for position, index in enumerate(kept):
        stage = plan.stages[index]
        following = plan.stages[kept[(position + 1) % len(kept)]]
        vehicle_green = dict.fromkeys(stage.vehicle_group_ids, Indication.GREEN)
        walk_s = max((plan.groups[g].min_green_s for g in stage.pedestrian_group_ids), default=0.0)
        clearance_s = max((plan.groups[g].change_interval_s for g in stage.pedestrian_group_ids), default=0.0)
        minimum_s = stage.min_green_with_pedestrians_s
        rest: tuple[float, float | None, float | None]
        if actuated is None:
            green_s = max(greens_s[index], minimum_s)
            rest = (green_s - walk_s, None, None)
        else:
            maximum_s = max(minimum_s, stage.max_green_s * actuated.max_green_factor)
            rest_min = max(stage.vehicle_min_green_s - walk_s, clearance_s)
            rest = (rest_min, rest_min, maximum_s - walk_s)
        if walk_s > 0:
            walking = {**vehicle_green, **dict.fromkeys(stage.pedestrian_group_ids, Indication.GREEN)}
            state = _state(heads, plan, walking, shown)
            phases.append(_Phase(walk_s, state, walk_s, walk_s) if actuated else _Phase(walk_s, state))
        state = _state(heads, plan, vehicle_green, shown)
        duration_s, min_s, max_s = rest
        phases.append(_Phase(duration_s, state, min_s, max_s))
        leaving = [g for g in stage.vehicle_group_ids if g not in following.group_ids]
        staying = {g: Indication.GREEN for g in stage.vehicle_group_ids if g in following.group_ids}
        yellow_s = max((plan.groups[g].change_interval_s for g in leaving), default=0.0)
        all_red_s = max((plan.groups[g].all_red_s for g in leaving), default=0.0)
        if yellow_s > 0:
            state = _state(heads, plan, {**staying, **dict.fromkeys(leaving, Indication.YELLOW)}, shown)
            phases.append(_Phase(yellow_s, state, yellow_s, yellow_s) if actuated else _Phase(yellow_s, state))
        if all_red_s > 0:
            state = _state(heads, plan, staying, shown)
            phases.append(_Phase(all_red_s, state, all_red_s, all_red_s) if actuated else _Phase(all_red_s, state))
    return phases


def webster_greens(plan: PhasePlan, lane_flows_pcu_per_hour: Mapping[str, float]) -> tuple[float, ...]:
    known = {lane: flow for lane, flow in lane_flows_pcu_per_hour.items() if lane in plan.group_of_lane}
    return FixedTimeStrategy.webster(plan, known).greens_s


def write_program(
    path: str | Path,
    program: str,
    site: SiteConfig,
    net_file: str | Path,
    lane_flows_pcu_per_hour: Mapping[str, float],
) -> Path:
    """Write an additional file with the traffic light's program ``PROGRAM_ID`` of this kind."""
    plan = PhasePlan.from_site(site)
    heads = signal_heads_for_network(site, net_file)
    greens = webster_greens(plan, lane_flows_pcu_per_hour)
    params: dict[str, str] = {}
    if program == "fixed_webster":
        kind, phases = "static", _phases(plan, heads, greens, None)
    elif program in ("actuated", "actuated_tuned"):
        tuning = SUMO_DEFAULT_ACTUATED if program == "actuated" else TUNED_ACTUATED
        kind, phases = "actuated", _phases(plan, heads, greens, tuning)
        if program == "actuated_tuned":
            params = {
                "max-gap": f"{tuning.max_gap_s:g}",
                "detector-gap": f"{tuning.detector_gap_s:g}",
                "passing-time": f"{tuning.passing_time_s:g}",
            }
    elif program == "delay_based":
        kind, phases = "delay_based", _phases(plan, heads, greens, SUMO_DEFAULT_ACTUATED)
    elif program == "delay_based_permissive_only":
        kind, phases = "delay_based", _phases(plan, heads, greens, SUMO_DEFAULT_ACTUATED, without_protected_lefts=True)
    else:
        known = ", ".join((*BUILTIN_PROGRAMS, *REFERENCE_PROGRAMS))
        raise ValueError(f"unknown SUMO program {program!r}; known: {known}")
    lines = [
        "<additional>",
        f'    <tlLogic id="{site.simulation.traffic_light_id}" type="{kind}" programID="{PROGRAM_ID}" offset="0">',
    ]
    lines += [f'        <param key="{key}" value="{value}"/>' for key, value in params.items()]
    for phase in phases:
        bounds = ""
        if phase.min_s is not None and phase.max_s is not None:
            bounds = f' minDur="{phase.min_s:.2f}" maxDur="{phase.max_s:.2f}"'
        lines.append(f'        <phase duration="{phase.duration_s:.2f}" state="{phase.state}"{bounds}/>')
    lines += ["    </tlLogic>", "</additional>", ""]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
