"""The unit's controller driving the virtual cabinet over SNMP in real time: the published state
is always what the cabinet shows, it follows the controller's decisions within a poll, and the
controller's stages are served."""

from __future__ import annotations

import time
from pathlib import Path

from rsu.cabinet.heads import NtcipSignalHeads, through_cabinet
from rsu_contracts.config.cabinet import CabinetConfig
from rsu_contracts.config.model import SiteConfig
from rsu_contracts.messages.signal import Indication
from rsu_tools.cabinet.site_timing import cabinet_timing
from rsu_tools.testing.cabinet import running_cabinet
from signal_control import SignalController
from signal_control.phasing import PhasePlan

TICK_S = 0.1
# Recall mode (no detector data) at 5 s greens with the pedestrian intervals: 4/8 go green ~47 s in.
RUN_S = 60.0


def quick_site(site: SiteConfig) -> SiteConfig:
    """The sample junction with short greens, so a test sees a whole cycle (both barrier sides)."""
    groups = [
        group.model_copy(update={"min_green_s": 3.0, "max_green_s": 5.0}) if group.nema_phase else group
        for group in site.signal_groups
    ]
    # No detector data in this test: the controller runs recall, whose green is fixed_green_s.
    controller = site.controller.model_copy(update={"fixed_green_s": 5.0})
    return site.model_copy(update={"signal_groups": groups, "controller": controller})


def test_the_published_state_is_the_cabinets_and_follows_the_controller(
    sample_site: SiteConfig, tmp_path: Path
) -> None:
    site = quick_site(sample_site)
    cabinet = CabinetConfig(
        host="127.0.0.1",
        timeout_s=0.1,
        retries=0,
        backup_time_s=2,
        pedestrian_phases={"p_east": 2, "p_west": 6, "p_north": 4, "p_south": 8},
        overlaps={"1": 1, "3": 3, "5": 5, "7": 7},
    )
    with running_cabinet(cabinet_timing(site, cabinet), tmp_path) as agent:
        heads = NtcipSignalHeads(site, cabinet.model_copy(update={"port": agent.port}))
        controller = SignalController(site)
        plan = PhasePlan.from_site(site)
        ticks = differing = 0
        served: set[str] = set()
        start = time.monotonic()
        while time.monotonic() - start < RUN_S:
            now_s = time.time()
            decided = controller.step(now_s, None, [])
            published = through_cabinet(heads, plan, decided, now_s)
            ticks += 1
            assert heads.health.reachable, heads.health.reason()
            shown = heads.shown
            # Every published indication is the cabinet's, never the request.
            assert {g.signal_group: g.indication for g in published.groups} == {
                g.signal_group: shown.get(g.signal_group, g.indication) for g in decided.groups
            }
            if any(shown.get(g.signal_group) not in (None, g.indication) for g in decided.groups):
                differing += 1
            served |= {group for group, indication in shown.items() if indication is Indication.GREEN}
            time.sleep(TICK_S)
        heads.close()
    assert {"2", "4", "6", "8"} <= served, f"stages served: {sorted(served)}"
    # The cabinet lags the decision only around changes (its own clearances, one poll).
    assert differing / ticks < 0.35, f"{differing} of {ticks} ticks differ"
