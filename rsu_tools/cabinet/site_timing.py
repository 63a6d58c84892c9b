"""The virtual cabinet's timing from a site: the same intervals the unit's plan times, so the
cabinet is a faithful stand-in for a controller programmed from the same timing sheet."""

from __future__ import annotations

from rsu_contracts.config.cabinet import CabinetConfig, cabinet_phase_maps
from rsu_contracts.config.model import SiteConfig
from rsu_tools.cabinet.nema import CabinetTiming, PhaseTiming
from signal_control.phasing import PhasePlan


def cabinet_timing(site: SiteConfig, cabinet: CabinetConfig) -> CabinetTiming:
    plan = PhasePlan.from_site(site)
    vehicle, pedestrian, overlap = cabinet_phase_maps(site, cabinet)
    walks: dict[int, tuple[float, float]] = {}
    for group_id, phase in pedestrian.items():
        timing = plan.groups[group_id]
        walk, clear = walks.get(phase, (0.0, 0.0))
        walks[phase] = (max(walk, timing.min_green_s), max(clear, timing.change_interval_s))
    phases: dict[int, PhaseTiming] = {}
    for group_id, phase in vehicle.items():
        timing = plan.groups[group_id]
        walk, clear = walks.get(phase, (0.0, 0.0))
        phases[phase] = PhaseTiming(
            min_green_s=timing.min_green_s,
            local_max_green_s=timing.max_green_s,
            yellow_s=timing.change_interval_s,
            all_red_s=timing.all_red_s,
            walk_s=walk,
            ped_clear_s=clear,
        )
    overlaps: dict[int, tuple[int, int]] = {}
    for group_id, number in overlap.items():
        partner = plan.groups[group_id].permissive_with
        if partner is None or group_id not in vehicle or partner not in vehicle:
            raise ValueError(
                f"cabinet.overlaps[{group_id}]: only a permissive left with a mapped partner has an overlap"
            )
        overlaps[number] = (vehicle[group_id], vehicle[partner])
    return CabinetTiming(phases=phases, overlaps=overlaps)
