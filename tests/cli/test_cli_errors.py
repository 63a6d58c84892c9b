"""The command line says exactly what is wrong: a bad config, no broker, no Redis."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from rsu.samples import SAMPLE_SITE
from rsu_cli import main
from tests.runtime.unit_processes import free_port


def _site_with(tmp_path: Path, **changes: Any) -> Path:
    raw = yaml.safe_load(SAMPLE_SITE.read_text())
    # The copy must pass the other checks before start (SUMO files found, web port free), so that
    # the one under test is the one that fails.
    raw["simulation"]["network"] = str(SAMPLE_SITE.parent / raw["simulation"]["network"])
    raw["simulation"]["routes"] = str(SAMPLE_SITE.parent / raw["simulation"]["routes"])
    raw["web"] = {"port": free_port()}
    for dotted, value in changes.items():
        target = raw
        *parents, leaf = dotted.split("__")
        for key in parents:
            target = target.setdefault(key, {})
        target[leaf] = value
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_check_config_accepts_the_sample(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(SAMPLE_SITE)]) == 0
    assert "valid site config for unit rsu-demo-001" in capsys.readouterr().out


def test_a_broken_config_is_reported_with_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _site_with(tmp_path, controller__decision_rate_hz=500)
    assert main(["check-config", str(path)]) == 2
    error = capsys.readouterr().err
    assert "controller.decision_rate_hz" in error and "less than or equal to 50" in error


def test_the_demo_names_an_unreachable_broker(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _site_with(tmp_path, mqtt__port=1)
    assert main(["demo", "--site", str(path), "--duration-s", "10"]) == 2
    assert "MQTT broker at 127.0.0.1:1 is unreachable" in capsys.readouterr().err


@pytest.mark.services
def test_the_demo_names_an_unreachable_redis(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], mqtt_broker: tuple[str, int]
) -> None:
    path = _site_with(tmp_path, redis__url="redis://127.0.0.1:1/0")
    assert main(["demo", "--site", str(path), "--duration-s", "10"]) == 2
    assert "Redis at redis://127.0.0.1:1/0 is unreachable" in capsys.readouterr().err
