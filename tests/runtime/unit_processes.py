"""Helpers for tests that run the `rsu` command as a subprocess on a private copy of the sample site."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import yaml

from rsu.runtime.bus import MqttBus
from rsu.samples import SAMPLE_SITE
from rsu_contracts.config import load_site_config
from rsu_contracts.messages import UnitHealth, decode
from rsu_contracts.topics import HEALTH, Topics

REPO_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def private_site(folder: Path, redis_url: str, **overrides: Any) -> Path:
    """The sample site with its own unit id (topics, outbox) and a free web port."""
    raw = yaml.safe_load(SAMPLE_SITE.read_text())
    raw["unit_id"] = f"rsu-t-{uuid.uuid4().hex[:8]}"
    raw["web"] = {"port": free_port()}
    raw["redis"] = {"url": redis_url}
    raw["simulation"]["network"] = str(SAMPLE_SITE.parent / raw["simulation"]["network"])
    raw["simulation"]["routes"] = str(SAMPLE_SITE.parent / raw["simulation"]["routes"])
    raw.update(overrides)
    path = folder / "site.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def start_rsu(args: list[str]) -> subprocess.Popen[str]:
    """`python -m rsu_cli ...` in its own session, as a terminal would run it (its own process group)."""
    return subprocess.Popen(
        [sys.executable, "-c", "import sys, rsu_cli; sys.exit(rsu_cli.main(sys.argv[1:]))", *args],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def child_pids(parent: int) -> set[int]:
    """Every live process whose parent is `parent` (from /proc)."""
    children = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent:
            children.add(int(entry.name))
    return children


def is_running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_for_healthy_unit(site_path: Path, process: subprocess.Popen[str], timeout_s: float) -> UnitHealth:
    """The first health report with every stage alive and beating, read from the broker."""
    site = load_site_config(site_path)
    bus = MqttBus(site.mqtt, f"{site.unit_id}-test-health-{os.getpid()}")
    bus.subscribe(Topics.for_site(site).route(HEALTH).topic, qos=0)
    bus.connect()
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError(f"rsu exited early with {process.returncode}: {process.communicate()}")
            for item in bus.drain():
                health = decode(UnitHealth, item.payload)
                if health.stages and all(s.alive and s.heartbeat_age_s is not None for s in health.stages):
                    return health
            time.sleep(0.2)
    finally:
        bus.close()
    raise AssertionError(f"the unit's stages were not all up within {timeout_s} s")


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "(gone)"
