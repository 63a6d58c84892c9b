"""Ctrl-C (SIGINT to the terminal's process group) and SIGTERM (to the unit's main process, as
systemd's KillMode=mixed sends it) stop `rsu demo` and `rsu run` cleanly: exit 0, the summary
printed, no traceback, and no stage process left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from rsu.runtime.bus import MqttBus
from rsu_contracts.config import load_site_config
from rsu_contracts.messages import SignalState, decode
from rsu_contracts.messages.signal import ControllerMode, Indication
from rsu_contracts.topics import Topics
from tests.runtime.unit_processes import (
    child_pids,
    command_line,
    is_running,
    private_site,
    start_rsu,
    wait_for_healthy_unit,
)

pytestmark = [pytest.mark.services, pytest.mark.sumo, pytest.mark.slow]


def _send(process: subprocess.Popen[str], signum: signal.Signals) -> None:
    if signum is signal.SIGINT:
        os.killpg(process.pid, signum)  # what the terminal does on Ctrl-C
    else:
        os.kill(process.pid, signum)  # systemd with KillMode=mixed: the main process only


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("command", ["demo", "run"])
def test_a_signal_stops_the_unit_cleanly_with_its_summary(
    tmp_path: Path, redis_url: str, mqtt_broker: tuple[str, int], command: str, signum: signal.Signals
) -> None:
    site_path = private_site(tmp_path, redis_url)
    args = (
        ["demo", "--site", str(site_path), "--duration-s", "36000"]
        if command == "demo"
        else ["run", "--config", str(site_path)]
    )
    site = load_site_config(site_path)
    signal_watch = MqttBus(site.mqtt, f"{site.unit_id}-test-signal-{os.getpid()}")
    signal_watch.subscribe(Topics.for_site(site).signal_state, qos=1)
    signal_watch.connect()
    process = start_rsu(args)
    try:
        health = wait_for_healthy_unit(site_path, process, timeout_s=120)
        stages = child_pids(process.pid)
        # Every stage has its own process (multiprocessing may add a resource tracker).
        assert len(stages) >= len(health.stages)
        _send(process, signum)
        stdout, stderr = process.communicate(timeout=60)
        time.sleep(0.5)
        states = [decode(SignalState, item.payload) for item in signal_watch.drain()]
    finally:
        signal_watch.close()
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
    assert process.returncode == 0, (stdout, stderr)
    assert "Traceback" not in stdout + stderr, stderr
    assert "KeyboardInterrupt" not in stdout + stderr
    assert f"stopped by {signum.name}" in stdout
    assert "messages per topic:" in stdout  # the summary's last section
    # multiprocessing's resource tracker leaves when the last pipe to it closes: give it a moment.
    deadline = time.monotonic() + 5.0
    while [pid for pid in stages if is_running(pid)] and time.monotonic() < deadline:
        time.sleep(0.1)
    left = {pid: command_line(pid) for pid in stages if is_running(pid)}
    assert not left, f"processes outlived the unit: {left}"
    # The controller's last word: every head flashing red (the safe state), not a frozen green.
    # Checked for `run` only: in the lock-step demo the watcher does not see the signal states
    # reliably yet (open: issue 16), so the demo's safe end state is not claimed here.
    if command == "run":
        assert states, "no signal state seen"
        assert states[-1].mode is ControllerMode.FLASH
        assert {group.indication for group in states[-1].groups} == {Indication.FLASHING_RED}
