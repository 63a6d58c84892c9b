"""The NTCIP backend's state in the unit's health message, /metrics and `rsu doctor`, all through the
virtual cabinet over real SNMP: in control, a stubborn cabinet, an unreachable one, a wrong
community, and the controller stage's report reaching the supervisor's health message."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from rsu.cabinet.heads import DIVERGENCE_GRACE_S, NtcipSignalHeads
from rsu.doctor import Level, check_cabinet
from rsu.metrics import UnitMetrics, parse_exposition
from rsu.runtime.stage import RunOptions
from rsu.runtime.supervisor import Supervisor
from rsu.unit import CONTROLLER, Unit
from rsu_contracts.config import load_site_config
from rsu_contracts.config.model import SiteConfig
from rsu_contracts.messages import CabinetState, DivergenceKind, UnitHealth, UnitStatus, decode
from rsu_tools.cabinet.site_timing import cabinet_timing
from rsu_tools.testing.cabinet import running_cabinet
from tests.cabinet.test_ntcip_heads_over_snmp import (
    EW_THROUGH,
    NS_THROUGH,
    THROUGH,
    TIMING,
    cabinet_config,
    decided,
    drive,
    wait_for,
)
from tests.runtime.unit_processes import private_site

PEDESTRIANS = {"p_east": 2, "p_west": 6, "p_north": 4, "p_south": 8}


def until(condition: Callable[[], bool], seconds: float, step_s: float = 0.2) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step_s)
    return condition()


def test_the_report_follows_the_cabinet_in_control_unreachable_and_back(
    sample_site: SiteConfig, tmp_path: Path
) -> None:
    with running_cabinet(TIMING, tmp_path) as cabinet:
        heads = NtcipSignalHeads(sample_site, cabinet_config(cabinet.port))
        assert heads.report().state is CabinetState.NOT_POLLED
        wanted = decided(sample_site, NS_THROUGH)
        assert wait_for(heads, wanted, 15.0, called=NS_THROUGH), heads.health.reason()
        drive(heads, wanted, 1.0, called=NS_THROUGH)
        report = heads.report()
        assert report.state is CabinetState.IN_CONTROL and report.in_control and report.reachable
        assert report.address == f"127.0.0.1:{cabinet.port}"
        assert report.writes > 0 and report.polls > 0 and report.snmp_errors == 0
        assert report.last_poll_age_s is not None and report.last_poll_age_s < 0.5
        cabinet.stop()
        heads.apply(wanted, called_groups=NS_THROUGH)
        report = heads.report()
        assert report.state is CabinetState.UNREACHABLE and not report.in_control and not report.reachable
        assert "no answer" in report.last_error and report.snmp_errors >= 1
        assert "unreachable" in report.detail
        cabinet.start()
        assert wait_for(heads, wanted, 15.0, called=NS_THROUGH), heads.health.reason()
        assert heads.report().state is CabinetState.IN_CONTROL
        heads.close()


def test_a_cabinet_that_ignores_force_off_is_diverged_once_it_outlasts_the_grace(
    sample_site: SiteConfig, tmp_path: Path
) -> None:
    # A max green longer than the test: only the (ignored) force-off could end the green.
    long_green = replace(THROUGH, local_max_green_s=60.0)
    timing = replace(TIMING, phases={n: long_green if n % 2 == 0 else t for n, t in TIMING.phases.items()})
    with running_cabinet(timing, tmp_path, ignore_force_off=True) as stubborn:
        heads = NtcipSignalHeads(sample_site, cabinet_config(stubborn.port))
        assert wait_for(heads, decided(sample_site, NS_THROUGH), 15.0, called=NS_THROUGH)
        drive(heads, decided(sample_site, NS_THROUGH), THROUGH.min_green_s)
        # The unit has ended north-south (its yellow and all-red are over): all red, east-west called.
        ending = decided(sample_site, set())
        heads.apply(ending, called_groups=EW_THROUGH)
        # Seen within one poll, with why, but not yet a lost cabinet: an honest one lags a change too.
        first = heads.report()
        assert {d.signal_group: d.kind for d in first.divergences if d.signal_group in NS_THROUGH} == {
            "2": DivergenceKind.IGNORED_FORCE_OFF,
            "6": DivergenceKind.IGNORED_FORCE_OFF,
        }
        drive(heads, ending, DIVERGENCE_GRACE_S + 0.3, called=EW_THROUGH)
        report = heads.report()
        assert report.state is CabinetState.DIVERGED and not report.in_control and report.reachable
        lasting = {d.signal_group: d for d in report.divergences}
        assert lasting["2"].kind is DivergenceKind.IGNORED_FORCE_OFF and lasting["2"].shown == "green"
        assert lasting["2"].for_s >= DIVERGENCE_GRACE_S
        heads.close()


def test_the_unit_health_and_metrics_carry_the_cabinet_the_controller_stage_drives(
    tmp_path: Path, mqtt_broker: tuple[str, int], redis_url: str
) -> None:
    cabinet = {
        "host": "127.0.0.1",
        "timeout_s": 0.1,
        "retries": 0,
        "backup_time_s": 2,
        "pedestrian_phases": PEDESTRIANS,
        "overlaps": {"1": 1, "3": 3, "5": 5, "7": 7},
    }
    site_path = private_site(tmp_path, redis_url, cabinet=cabinet)
    site = load_site_config(site_path)
    assert site.cabinet is not None
    with running_cabinet(cabinet_timing(site, site.cabinet), tmp_path) as agent:
        site_path = private_site(tmp_path, redis_url, unit_id=site.unit_id, cabinet={**cabinet, "port": agent.port})
        options = RunOptions(realtime=True)
        unit = Unit(site_path, options)
        unit.supervisor = Supervisor(site_path, options, [CONTROLLER])
        address = f"127.0.0.1:{agent.port}"
        assert unit.health().cabinet is not None
        assert unit.health().cabinet.state is CabinetState.NOT_POLLED  # type: ignore[union-attr]
        unit.supervisor.start()
        try:

            def health() -> UnitHealth:
                unit.supervisor.poll()
                return decode(UnitHealth, unit.health().to_json())

            assert until(lambda: _state(health()) is CabinetState.IN_CONTROL, 40), health().model_dump_json()
            report = health()
            assert report.cabinet is not None and report.cabinet.address == address
            assert not any("cabinet" in problem for problem in report.problems)
            metrics = UnitMetrics(site.unit_id)
            metrics.observe(report)
            samples = parse_exposition(metrics.render())
            assert samples[f'rsu_cabinet_in_control{{cabinet="{address}"}}'] == 1
            assert samples[f'rsu_cabinet_state{{cabinet="{address}",state="in_control"}}'] == 1
            assert samples[f'rsu_cabinet_polls_total{{cabinet="{address}"}}'] > 0
            assert samples[f'rsu_cabinet_last_poll_age_seconds{{cabinet="{address}"}}'] < 2.5

            agent.stop()
            assert until(lambda: _state(health()) is CabinetState.UNREACHABLE, 10)
            report = health()
            assert report.status is UnitStatus.DEGRADED
            assert any(f"signal cabinet {address} unreachable" in problem for problem in report.problems)
            metrics.observe(report)
            samples = parse_exposition(metrics.render())
            assert samples[f'rsu_cabinet_reachable{{cabinet="{address}"}}'] == 0
            assert samples[f'rsu_cabinet_state{{cabinet="{address}",state="unreachable"}}'] == 1
            assert samples[f'rsu_cabinet_state{{cabinet="{address}",state="in_control"}}'] == 0
            assert samples[f'rsu_cabinet_snmp_errors_total{{cabinet="{address}"}}'] > 0

            # Back without a restart of anything but the cabinet.
            agent.start()
            assert until(lambda: _state(health()) is CabinetState.IN_CONTROL, 20)
        finally:
            unit.supervisor.stop()


def _state(health: UnitHealth) -> CabinetState | None:
    return None if health.cabinet is None else health.cabinet.state


def _site_with_cabinet(sample_site: SiteConfig, port: int, **overrides: object) -> SiteConfig:
    return sample_site.model_copy(update={"cabinet": cabinet_config(port, **overrides)})


def test_doctor_reads_the_cabinet_with_the_configured_community(sample_site: SiteConfig, tmp_path: Path) -> None:
    with running_cabinet(TIMING, tmp_path) as cabinet:
        [finding] = check_cabinet(_site_with_cabinet(sample_site, cabinet.port))
        assert finding.level is Level.OK, finding
        assert "answers with the configured community" in finding.message
        assert "unitBackupTime now" in finding.message
        [wrong] = check_cabinet(_site_with_cabinet(sample_site, cabinet.port, community="private"))
        assert wrong.level is Level.FAIL
        assert "community is wrong" in wrong.message and "community" in wrong.fix
        port = cabinet.port
    [gone] = check_cabinet(_site_with_cabinet(sample_site, port))
    assert gone.level is Level.FAIL and "no usable answer" in gone.message


def test_doctor_has_nothing_to_say_about_a_site_without_a_cabinet(sample_site: SiteConfig) -> None:
    assert sample_site.cabinet is None
    assert check_cabinet(sample_site) == []


def test_a_green_the_unit_never_asked_for_is_the_cabinets_own_plan(sample_site: SiteConfig, tmp_path: Path) -> None:
    """The unit stops writing; after the backup time the cabinet serves its own plan, and a poll
    against the unit's last decision names the foreign greens as the cabinet's own plan."""
    with running_cabinet(TIMING, tmp_path) as cabinet:
        heads = NtcipSignalHeads(sample_site, cabinet_config(cabinet.port, backup_time_s=1))
        wanted = decided(sample_site, NS_THROUGH)
        assert wait_for(heads, wanted, 15.0, called=NS_THROUGH)

        def foreign_greens() -> dict[str, DivergenceKind]:
            heads.poll(wanted)
            return {d.signal_group: d.kind for d in heads.report().divergences if d.shown == "green"}

        assert until(lambda: bool(foreign_greens()), 15, step_s=0.05)
        assert set(foreign_greens().values()) == {DivergenceKind.OWN_PLAN}, foreign_greens()
        heads.close()
