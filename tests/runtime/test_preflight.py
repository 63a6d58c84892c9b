"""Checks before start, through the real `rsu` entry: each failure is one line naming what and the
setting, exit 2, and no stage is started."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import yaml

import rsu_cli
from rsu.runtime.supervisor import Supervisor
from tests.runtime.unit_processes import REPO_ROOT, free_port, private_site

pytestmark = [pytest.mark.services]


@pytest.fixture
def stage_starts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records any attempt to start the stages (there must be none after a failed check)."""
    starts: list[str] = []
    monkeypatch.setattr(Supervisor, "start", lambda self: starts.append("started"))
    return starts


def _fails_before_start(
    argv: list[str], capsys: pytest.CaptureFixture[str], stage_starts: list[str], *expected: str
) -> str:
    code = rsu_cli.main(argv)
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.strip()]
    assert code == 2, captured
    assert len(errors) == 1, errors
    assert errors[0].startswith("rsu: error: ")
    for text in expected:
        assert text in errors[0], errors[0]
    assert "Traceback" not in captured.err + captured.out
    assert stage_starts == []
    return errors[0]


@pytest.mark.parametrize("command", ["run", "demo"])
def test_a_busy_web_port_is_named_with_its_setting(
    tmp_path: Path,
    redis_url: str,
    mqtt_broker: tuple[str, int],
    capsys: pytest.CaptureFixture[str],
    stage_starts: list[str],
    command: str,
) -> None:
    site_path = private_site(tmp_path, redis_url)
    port = yaml.safe_load(site_path.read_text())["web"]["port"]
    argv = ["run", "--config", str(site_path)] if command == "run" else ["demo", "--site", str(site_path)]
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        _fails_before_start(argv, capsys, stage_starts, f"127.0.0.1:{port}", "in use", "web.port")


def test_an_unwritable_state_folder_is_named_with_its_setting(
    tmp_path: Path,
    redis_url: str,
    mqtt_broker: tuple[str, int],
    capsys: pytest.CaptureFixture[str],
    stage_starts: list[str],
) -> None:
    # A regular file where the folder should be: not writable even for root (chmod would not do).
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    site_path = private_site(tmp_path, redis_url, v2x={"state_dir": str(blocker)})
    _fails_before_start(["run", "--config", str(site_path)], capsys, stage_starts, str(blocker), "v2x.state_dir")


def test_a_missing_model_file_is_named_with_its_setting(
    tmp_path: Path,
    redis_url: str,
    mqtt_broker: tuple[str, int],
    capsys: pytest.CaptureFixture[str],
    stage_starts: list[str],
) -> None:
    raw = yaml.safe_load((REPO_ROOT / "datasets" / "opentrafficcam" / "site.yaml").read_text())
    missing = tmp_path / "models" / "no-such-model.pt"
    raw["cameras"][0]["uri"] = str(tmp_path / "clip.mp4")
    raw["cameras"][0]["detector"]["weights"] = str(missing)
    raw["web"] = {"port": free_port()}
    raw["redis"] = {"url": redis_url}
    site_path = tmp_path / "site.yaml"
    site_path.write_text(yaml.safe_dump(raw))
    _fails_before_start(
        ["run", "--config", str(site_path)], capsys, stage_starts, str(missing), "cameras[0].detector.weights"
    )


def test_an_unreachable_broker_is_named(
    tmp_path: Path, redis_url: str, capsys: pytest.CaptureFixture[str], stage_starts: list[str]
) -> None:
    closed = free_port()  # nothing listens there once the probe socket is closed
    site_path = private_site(tmp_path, redis_url, mqtt={"host": "127.0.0.1", "port": closed})
    _fails_before_start(["run", "--config", str(site_path)], capsys, stage_starts, f"127.0.0.1:{closed}", "mqtt.port")


def test_an_unreachable_redis_is_named(
    tmp_path: Path, mqtt_broker: tuple[str, int], capsys: pytest.CaptureFixture[str], stage_starts: list[str]
) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    site_path = private_site(tmp_path, url)
    _fails_before_start(["run", "--config", str(site_path)], capsys, stage_starts, url, "redis.url")


@pytest.mark.parametrize("field", ["reference", "cameras"])
def test_a_signal_only_site_is_refused_by_run_naming_what_it_lacks(
    tmp_path: Path,
    redis_url: str,
    capsys: pytest.CaptureFixture[str],
    stage_starts: list[str],
    field: str,
) -> None:
    site_path = private_site(tmp_path, redis_url)
    raw = yaml.safe_load(site_path.read_text())
    del raw[field]
    site_path.write_text(yaml.safe_dump(raw))
    _fails_before_start(
        ["run", "--config", str(site_path)], capsys, stage_starts, "cannot run without", field, "signal-only"
    )
