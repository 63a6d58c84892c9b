"""`rsu demo --cabinet ntcip` end to end: the unit's strategy drives the virtual NEMA cabinet over
real SNMP, the simulated lamps follow the cabinet's outputs, and the camera sees what they let go.
Vehicles are served, the lamps never break the site's safety rules, and SPaT tells what they show."""

from __future__ import annotations

from pathlib import Path

import pytest

from rsu.demo import run_demo
from rsu.sim.lamps import read_lamp_log
from rsu_contracts.config import load_site_config
from rsu_contracts.messages import CabinetState
from rsu_tools.cabinet.demo import virtual_cabinet_site
from rsu_tools.cabinet.shown_check import shown_state_violations, spat_agreement
from signal_control.phasing import PhasePlan
from tests.runtime.unit_processes import private_site

pytestmark = [pytest.mark.services, pytest.mark.sumo, pytest.mark.slow]

SIMULATED_S = 60.0


def test_the_demo_through_the_virtual_cabinet_serves_vehicles_safely_and_spat_tells_the_lamps(
    tmp_path: Path, mqtt_broker: tuple[str, int], redis_url: str
) -> None:
    site_path = private_site(tmp_path, redis_url)
    lamp_log = tmp_path / "lamps.jsonl"
    cabinet_folder = tmp_path / "cabinet"
    cabinet_folder.mkdir()
    with virtual_cabinet_site(site_path, cabinet_folder) as (cabinet_site, agent):
        summary = run_demo(
            cabinet_site,
            duration_s=SIMULATED_S,
            seed=7,
            progress=None,
            wall_timeout_s=SIMULATED_S + 90,
            lamp_log=lamp_log,
        )
        assert agent.process is not None and agent.process.poll() is None, "the cabinet process died"
    site = load_site_config(cabinet_site)
    assert summary.invalid_messages == []
    assert summary.vehicles_served > 0, summary.render()
    assert summary.cabinet is not None and summary.cabinet.state is CabinetState.IN_CONTROL, summary.cabinet
    assert summary.cabinet.writes > 100 and summary.cabinet.polls > 100

    lamps = read_lamp_log(lamp_log)
    served = {group for _, shown in lamps for group, indication in shown.items() if indication.value == "green"}
    assert {"2", "6"} <= served, f"groups the cabinet served: {sorted(served)}"
    assert shown_state_violations(lamps, PhasePlan.from_site(site), tolerance_s=2 * site.simulation.step_s) == []

    assert summary.first_capture_s is not None and summary.last_capture_s is not None
    poll_s = 1.0 / site.controller.decision_rate_hz
    agreement = spat_agreement(
        lamps, summary.spat_changes, summary.first_capture_s + 5, summary.last_capture_s - 1, exclude_s=poll_s
    )
    assert agreement.samples > 1000
    assert agreement.fraction >= 0.98, agreement.disagreements
