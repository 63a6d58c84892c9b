"""`rsu demo --cabinet ntcip`: the unit on the simulated junction, driving the virtual cabinet.

The chain is the field's: the unit's strategy decides, the NTCIP backend writes hold / force-off /
calls / omits over SNMP, the virtual cabinet (rsu_tools.cabinet.agent, its own process) times its
own intervals, the simulated street's lamps follow the cabinet's outputs (rsu.sim.lamps), and the
simulated camera sees the traffic they let go. The cabinet's timing is the site's own, as a
controller programmed from the same timing sheet.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from rsu_contracts.config import load_site_config
from rsu_contracts.config.model import CabinetConfig, SiteConfig
from rsu_contracts.enums import SignalGroupKind
from rsu_tools.cabinet.site_timing import cabinet_timing
from rsu_tools.testing.cabinet import VirtualCabinet, running_cabinet

# The virtual cabinet answers on the loopback at once: short timeouts keep a lost answer from
# costing the controller's decision tick.
DEMO_TIMEOUT_S = 0.1
DEMO_RETRIES = 1
DEMO_BACKUP_TIME_S = 3


def demo_cabinet(site: SiteConfig, port: int = 161) -> CabinetConfig:
    """The site's own cabinet map if it has one; otherwise one derived from its stages: a pedestrian
    group walks with a vehicle phase of its stage (the next one not yet taken), a permissive left
    shows its flashing yellow arrow on the overlap of its own phase number."""
    if site.cabinet is not None:
        return site.cabinet.model_copy(update={"host": "127.0.0.1", "port": port})
    groups = {group.id: group for group in site.signal_groups}
    pedestrian: dict[str, int] = {}
    for stage in site.controller.stages:
        phases = [
            groups[g].nema_phase
            for g in stage.signal_groups
            if groups[g].kind is SignalGroupKind.VEHICLE and groups[g].nema_phase is not None
        ]
        walkers = [g for g in stage.signal_groups if groups[g].kind is SignalGroupKind.PEDESTRIAN]
        if walkers and not phases:
            raise ValueError(f"controller.stages[{stage.id}]: pedestrians but no vehicle phase to walk with")
        for index, walker in enumerate(walkers):
            phase = phases[index % len(phases)]
            assert phase is not None
            pedestrian[walker] = phase
    overlaps = {
        group.id: group.nema_phase
        for group in site.signal_groups
        if group.permissive_with is not None and group.nema_phase is not None
    }
    return CabinetConfig(
        host="127.0.0.1",
        port=port,
        timeout_s=DEMO_TIMEOUT_S,
        retries=DEMO_RETRIES,
        backup_time_s=DEMO_BACKUP_TIME_S,
        pedestrian_phases=pedestrian,
        overlaps=overlaps,
    )


def site_with_cabinet(site: SiteConfig, cabinet: CabinetConfig, target: Path) -> Path:
    """A copy of the site (every path in it absolute) that drives ``cabinet``."""
    raw: dict[str, Any] = site.model_dump(mode="json", exclude_defaults=True)
    raw["cabinet"] = cabinet.model_dump(mode="json", exclude_defaults=True)
    target.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return target


@contextmanager
def virtual_cabinet_site(site_path: Path, folder: Path) -> Iterator[tuple[Path, VirtualCabinet]]:
    """Start the virtual cabinet for the site and yield a site copy pointing at it (and the cabinet)."""
    site = load_site_config(site_path)
    cabinet = demo_cabinet(site)
    with running_cabinet(cabinet_timing(site, cabinet), folder, community=cabinet.community) as agent:
        path = site_with_cabinet(site, cabinet.model_copy(update={"port": agent.port}), folder / "site.yaml")
        yield path, agent
