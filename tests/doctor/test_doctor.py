"""`rsu doctor`: one clear, specific message for each missing piece, and a non-zero exit code."""

from __future__ import annotations

import argparse
import socket
from pathlib import Path

import pytest
import yaml

from rsu.doctor import Finding, Level, add_doctor_parser, check_clock, check_disk, exit_code, render, run_checks
from rsu.samples import DATASETS_DIR, SAMPLE_SITE
from tests.web.scripted_unit import write_clip

OTC_SITE = DATASETS_DIR / "opentrafficcam" / "site.yaml"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def synced(command: object) -> tuple[int, str]:
    return 0, "yes"


@pytest.fixture
def video_site(tmp_path: Path) -> Path:
    """A video site whose camera (a small clip) and model file (a placeholder) exist."""
    raw = yaml.safe_load(OTC_SITE.read_text())
    camera = raw["cameras"][0]
    camera["uri"] = str(write_clip(tmp_path / "clip.avi", width=800, height=600))
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "yolo.pt").write_bytes(b"\0" * 1000)
    camera["detector"]["weights"] = "models/yolo.pt"  # relative: taken from the site file's folder
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def edit(path: Path, change: dict[str, object]) -> Path:
    raw = yaml.safe_load(path.read_text())
    for dotted, value in change.items():
        target = raw
        *parents, key = dotted.split(".")
        for part in parents:
            target = target[int(part)] if part.isdigit() else target.setdefault(part, {})
        target[key] = value
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def by_check(findings: list[Finding], check: str) -> Finding:
    return next(f for f in findings if f.check == check)


@pytest.mark.services
def test_a_ready_box_passes(video_site: Path, mqtt_broker: tuple[str, int], redis_url: str) -> None:
    edit(video_site, {"redis.url": redis_url})
    findings = run_checks(video_site, min_free_gb=0.001, runner=synced)
    failed = [f for f in findings if f.level is Level.FAIL]
    assert failed == [], render(findings, video_site)
    assert by_check(findings, "camera otc_pole").message.endswith("opens: 800x600 at 10 fps")
    assert "RMS reprojection error 0.135 m" in by_check(findings, "calibration otc_pole").message
    assert "models/yolo.pt" in by_check(findings, "model otc_pole").message
    assert by_check(findings, "broker").level is Level.OK
    assert by_check(findings, "redis").level in (Level.OK, Level.WARN)  # WARN: Redis keeps nothing on disk
    assert exit_code(findings) == 0


@pytest.mark.services
def test_each_missing_piece_gets_its_own_message(video_site: Path, mqtt_broker: tuple[str, int]) -> None:
    edit(
        video_site,
        {
            "cameras.0.detector.weights": "models/missing.pt",
            "cameras.0.uri": str(video_site.parent / "no-such-clip.mp4"),
            "mqtt.port": closed_port(),
            "redis.url": f"redis://127.0.0.1:{closed_port()}/0",
        },
    )
    findings = run_checks(video_site, min_free_gb=0.001, runner=synced)
    text = render(findings, video_site)

    model = by_check(findings, "model otc_pole")
    assert model.level is Level.FAIL
    assert "detector weights not found" in model.message and "models/missing.pt" in model.message
    assert "detector.weights" in model.fix

    camera = by_check(findings, "camera otc_pole")
    assert camera.level is Level.FAIL
    assert "cameras[otc_pole].uri" in camera.message and "no-such-clip.mp4" in camera.message

    broker = by_check(findings, "broker")
    port = yaml.safe_load(video_site.read_text())["mqtt"]["port"]
    assert broker.level is Level.FAIL and f"127.0.0.1:{port}" in broker.message
    assert "mosquitto" in broker.fix and "mqtt.port" in broker.fix

    redis_finding = by_check(findings, "redis")
    assert redis_finding.level is Level.FAIL and "unreachable" in redis_finding.message
    assert "redis.url" in redis_finding.fix

    assert exit_code(findings) == 1
    assert "4 problem(s)" in text and "NOT ready" in text


def test_a_bad_config_names_the_field_and_skips_the_rest(tmp_path: Path) -> None:
    raw = yaml.safe_load(SAMPLE_SITE.read_text())
    raw["approaches"][0]["lanes"][0]["signal_group"] = "99"
    raw["mqtt"] = {"prot": 1883}
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(raw))
    findings = run_checks(path, min_free_gb=0.001, runner=synced)
    config = by_check(findings, "config")
    assert config.level is Level.FAIL
    assert "mqtt.prot: unknown key" in config.message
    assert findings[-1].level is Level.SKIP and "config is invalid" in findings[-1].message
    assert exit_code(findings) == 1


def test_a_missing_config_file_is_named(tmp_path: Path) -> None:
    findings = run_checks(tmp_path / "nowhere.yaml", min_free_gb=0.001, runner=synced)
    assert "nowhere.yaml: site config file not found" in by_check(findings, "config").message


def test_the_clock_must_be_plausible_and_synchronised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("rsu.doctor.shutil.which", lambda name: "/usr/bin/timedatectl")
    wrong_year = check_clock(0.0, synced)
    assert wrong_year[0].level is Level.FAIL and "1970-01-01" in wrong_year[0].message
    assert "set-ntp" in wrong_year[0].fix
    unsynced = check_clock(1_800_000_000.0, lambda command: (0, "no"))
    assert [f.level for f in unsynced] == [Level.OK, Level.FAIL]
    assert "not NTP-synchronised" in unsynced[1].message
    unknown = check_clock(1_800_000_000.0, lambda command: (1, "System has not been booted with systemd"))
    assert unknown[1].level is Level.WARN and "systemd" in unknown[1].message
    assert [f.level for f in check_clock(1_800_000_000.0, synced)] == [Level.OK, Level.OK]


def test_low_disk_fails(tmp_path: Path) -> None:
    finding = check_disk([tmp_path], min_free_gb=1e9)[0]
    assert finding.level is Level.FAIL and str(tmp_path) in finding.message and "journalctl" in finding.fix


def test_the_command_line_prints_and_exits_non_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "site.yaml"
    path.write_text("unit_id: [not, a, string\n")
    parser = argparse.ArgumentParser(prog="rsu")
    add_doctor_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["doctor", "--config", str(path), "--min-free-gb", "0.001"])
    assert args.handler(args) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"rsu doctor: {path}") and "not valid YAML" in out and "fix:" in out
