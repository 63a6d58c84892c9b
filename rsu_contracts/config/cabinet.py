"""The signal cabinet the unit drives over NTCIP 1202, when it drives one (``site.cabinet``)."""

from __future__ import annotations

from rsu_contracts.config.model import CabinetConfig, SiteConfig

__all__ = ["CabinetConfig", "cabinet_phase_maps"]


def cabinet_phase_maps(
    site: SiteConfig, cabinet: CabinetConfig
) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    """(vehicle phase, pedestrian phase, overlap) per signal group; raises ValueError naming a
    group of the site that has no place in the cabinet, or a mapped group the site lacks."""
    groups = {group.id: group for group in site.signal_groups}
    for name, mapping in (
        ("vehicle_phases", cabinet.vehicle_phases),
        ("pedestrian_phases", cabinet.pedestrian_phases),
        ("overlaps", cabinet.overlaps),
    ):
        for group_id in mapping:
            if group_id not in groups:
                raise ValueError(f"cabinet.{name}: signal group {group_id} is not in the site")
    vehicle: dict[str, int] = {}
    for group in site.signal_groups:
        if group.id in cabinet.pedestrian_phases:
            continue
        number = cabinet.vehicle_phases.get(group.id, group.nema_phase)
        if number is None:
            raise ValueError(
                f"signal group {group.id} has no nema_phase and no cabinet.vehicle_phases/pedestrian_phases entry"
            )
        vehicle[group.id] = number
    return vehicle, dict(cabinet.pedestrian_phases), dict(cabinet.overlaps)
