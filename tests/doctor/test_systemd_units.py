"""The systemd units in deploy/systemd: the settings the deployment section promises, and systemd accepts them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

UNITS = REPO_ROOT / "deploy" / "systemd"


def directives(path: Path) -> dict[str, list[str]]:
    """Key -> values of a unit file (keys may repeat), section names dropped."""
    found: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        found.setdefault(key.strip(), []).append(value.strip())
    return found


def test_the_unit_restarts_reads_etc_logs_to_the_journal_and_keeps_models_read_only() -> None:
    unit = directives(UNITS / "rsu@.service")
    assert unit["Restart"] == ["always"]
    assert unit["ExecStart"] == ["/opt/rsu-edge/.venv/bin/rsu run --config /etc/rsu/%i.yaml"]
    assert unit["ExecStartPre"] == ["/opt/rsu-edge/.venv/bin/rsu check-config /etc/rsu/%i.yaml"]
    assert unit["StandardOutput"] == unit["StandardError"] == ["journal"]
    assert unit["ReadOnlyPaths"] == ["/var/lib/rsu/models"]
    assert unit["ReadWritePaths"] == ["/etc/rsu"]
    assert "mosquitto.service" in unit["After"][0] and "redis-server.service" in unit["After"][0]
    # The supervisor stops its stages on SIGINT (KeyboardInterrupt); only it gets the signal.
    assert unit["KillSignal"] == ["SIGINT"] and unit["KillMode"] == ["mixed"]
    assert unit["WantedBy"] == ["multi-user.target"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_accepts_the_units(tmp_path: Path) -> None:
    rsu = Path(sys.executable).parent / "rsu"
    if not rsu.is_file():
        pytest.skip(f"{rsu} is not installed (pip install -e .)")
    copies = []
    for name in ("rsu@.service", "rsu-doctor@.service"):
        copy = tmp_path / name.replace("@", "@site")
        copy.write_text((UNITS / name).read_text().replace("/opt/rsu-edge/.venv/bin/rsu", str(rsu)))
        copies.append(str(copy))
    done = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *copies],
        capture_output=True,
        text=True,
        env={"SYSTEMD_LOG_LEVEL": "err", "PATH": "/usr/bin:/bin"},
        timeout=30,
        check=False,
    )
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr
