"""A stage that keeps crashing is named, with its last error, in `rsu run`'s summary and in the
unit's health on the broker."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import rsu.unit
import rsu_cli
from rsu.runtime.bus import MqttBus
from rsu.runtime.supervisor import StageSpec
from rsu_contracts.config import SiteConfig, load_site_config
from rsu_contracts.messages import UnitHealth, decode
from rsu_contracts.topics import HEALTH, Topics
from tests.runtime.unit_processes import private_site

pytestmark = [pytest.mark.services]

TARGETS = "tests.runtime.stages_for_tests"


def test_a_stage_crashing_repeatedly_is_named_in_the_summary_and_in_health(
    tmp_path: Path,
    redis_url: str,
    mqtt_broker: tuple[str, int],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (tmp_path / "starts.log").touch()
    monkeypatch.setenv("RSU_TEST_STAGE_LOG", str(tmp_path / "starts.log"))
    # Long enough for the crashing stage to be restarted twice (backoff 1 s, then 2 s).
    monkeypatch.setenv("RSU_TEST_STAGE_RUN_S", "8")

    def crashing_unit(site: SiteConfig) -> list[StageSpec]:
        return [
            StageSpec("world", f"{TARGETS}:finish_after_a_while", runs_to_completion=True),
            StageSpec("web", f"{TARGETS}:crash_always"),
        ]

    monkeypatch.setattr(rsu.unit, "stage_specs", crashing_unit)
    site_path = private_site(tmp_path, redis_url)
    site = load_site_config(site_path)
    health_watch = MqttBus(site.mqtt, f"{site.unit_id}-test-health-{os.getpid()}")
    health_watch.subscribe(Topics.for_site(site).route(HEALTH).topic, qos=0)
    health_watch.connect()
    try:
        code = rsu_cli.main(["run", "--config", str(site_path)])
        reports = [decode(UnitHealth, item.payload) for item in health_watch.drain()]
    finally:
        health_watch.close()
    out = capsys.readouterr().out
    assert code == 0
    summary_line = next(line for line in out.splitlines() if line.strip().startswith("stage web"))
    assert "restarted" in summary_line
    assert "RuntimeError: simulated fault in web: the device went away" in summary_line
    problems = [problem for report in reports for problem in report.problems]
    assert any("stage web" in p and "the device went away" in p for p in problems), problems
    web_health = [stage for report in reports for stage in report.stages if stage.name == "web"]
    assert any(stage.restarts >= 2 and "the device went away" in stage.detail for stage in web_health)
