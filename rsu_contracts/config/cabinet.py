"""The signal cabinet the unit drives over NTCIP 1202, when it drives one (``site.cabinet``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from rsu_contracts.config.model import Identifier, SiteConfig, Strict


class CabinetConfig(Strict):
    """How to reach the cabinet's controller and where the site's signal groups live in it.

    Vehicle groups map to their ``nema_phase`` unless ``vehicle_phases`` says otherwise; a
    pedestrian group maps to the phase whose pedestrian outputs drive it; a protected/permissive
    left may also map to the overlap that shows its flashing yellow arrow.
    """

    host: str = Field(min_length=1, description="The controller's IP address or host name.")
    port: int = Field(default=161, ge=1, le=65535, description="SNMP UDP port.")
    community: str = Field(default="public", min_length=1, max_length=64, description="SNMP v1/v2c community.")
    snmp_version: Literal[1, 2] = Field(default=2, description="1 for SNMPv1, 2 for v2c (v3 is not supported yet).")
    timeout_s: float = Field(default=0.2, gt=0, le=10, description="Per-request answer timeout, seconds.")
    retries: int = Field(default=1, ge=0, le=5, description="Retries after a timeout.")
    backup_time_s: int = Field(
        default=5,
        ge=1,
        le=255,
        description="unitBackupTime written at start: with no write for this long the cabinet reverts to its own plan.",
    )
    vehicle_phases: dict[Identifier, int] = Field(
        default_factory=dict, description="Signal group -> NEMA phase, where it differs from the group's nema_phase."
    )
    pedestrian_phases: dict[Identifier, int] = Field(
        default_factory=dict, description="Pedestrian signal group -> the phase whose walk outputs drive it."
    )
    overlaps: dict[Identifier, int] = Field(
        default_factory=dict, description="Permissive-left signal group -> its flashing-yellow-arrow overlap."
    )

    @model_validator(mode="after")
    def _numbers_in_range(self) -> CabinetConfig:
        for name, mapping in (
            ("vehicle_phases", self.vehicle_phases),
            ("pedestrian_phases", self.pedestrian_phases),
            ("overlaps", self.overlaps),
        ):
            for group_id, number in mapping.items():
                if not 1 <= number <= 16:
                    raise ValueError(f"cabinet.{name}[{group_id}] = {number}: phases and overlaps are 1-16")
        return self


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
