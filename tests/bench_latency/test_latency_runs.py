"""`rsu bench latency` on a short slice, through the real Mosquitto: the JSON it writes.

No timing is asserted here (the machine is shared); the figures are checked for presence and
consistency only.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from rsu_cli import main
from tests.conftest import shared_dir

pytestmark = [pytest.mark.services]


def _run(tmp_path: Path, *args: str) -> dict[str, Any]:
    out = tmp_path / "latency.json"
    code = main(["bench", "latency", *args, "--json", str(out)])
    assert code in (0, 1), "the bench failed to run"  # 1: ran, a target not met on this machine now
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def test_fanout_to_many_clients(tmp_path: Path, mqtt_broker: tuple[str, int]) -> None:
    host, port = mqtt_broker
    result = _run(
        tmp_path,
        "--no-path",
        "--broker",
        f"{host}:{port}",
        "--clients",
        "24",
        "--client-processes",
        "2",
        "--fanout-messages",
        "10",
        "--fanout-rate-hz",
        "20",
    )
    assert result["path"] is None
    fanout = result["fanout"]
    assert fanout["clients"] == 24 and fanout["client_kind"] == "raw"
    assert fanout["deliveries_expected"] == 240
    assert fanout["deliveries"] == 240  # QoS 1 on loopback: nothing lost
    assert fanout["delivery"]["samples"] == 240
    assert 0 < fanout["delivery"]["p50_ms"] <= fanout["delivery"]["p99_ms"] <= fanout["delivery"]["max_ms"]
    assert fanout["target_p99_ms"] == 50.0
    assert len(result["load_average_start"]) == 3 and result["cpu_count"] >= 1


def test_fanout_with_paho_clients(tmp_path: Path, mqtt_broker: tuple[str, int]) -> None:
    host, port = mqtt_broker
    result = _run(
        tmp_path, "--no-path", "--broker", f"{host}:{port}", "--clients", "6", "--client-processes", "1",
        "--fanout-messages", "5", "--client-kind", "paho",
    )  # fmt: skip
    assert result["fanout"]["client_kind"] == "paho"
    assert result["fanout"]["deliveries"] == 30


@pytest.mark.footage
def test_camera_to_vehicle_on_real_footage(
    tmp_path: Path, mqtt_broker: tuple[str, int], footage_dir: Path, models_dir: Path
) -> None:
    os.environ.setdefault("RSU_SHARED_DIR", str(shared_dir()))
    host, port = mqtt_broker
    result = _run(tmp_path, "--no-fanout", "--broker", f"{host}:{port}", "--frames", "30", "--fps", "10")
    path = result["path"]
    assert result["fanout"] is None
    assert "synthetic" in path["measured"] and "injected" in path["measured"]
    assert path["detector"]["type"] == "ultralytics" and path["detector"]["imgsz"] == 320
    assert path["frames_released"] == 30
    assert path["warnings_timed"] + path["warnings_lost"] + 10 >= 30 - path["frames_dropped"]
    assert path["warnings_timed"] > 0
    stages = {stage["stage"]: stage for stage in path["stages"]}
    assert list(stages) == ["detect", "track", "tracks hop", "warning logic", "sign", "delivery"]
    assert sum(stage["share_of_mean"] for stage in stages.values()) == pytest.approx(1.0, abs=0.01)
    e2e = path["end_to_end"]
    assert stages["detect"]["p50_ms"] < e2e["p50_ms"] and path["after_detector"]["p50_ms"] < e2e["p50_ms"]
    assert set(path["passed"]) == {"end_to_end_p50", "end_to_end_p99", "after_detector_p99"}
