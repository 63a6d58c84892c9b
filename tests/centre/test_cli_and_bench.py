"""The command-line hooks for the lead's rsu_cli/__init__.py, and a small bounded load run."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from rsu.samples import SAMPLE_SITE
from rsu.uplink.bridge import mosquitto_bridge_config
from rsu_cli import build_parser
from rsu_contracts.config import load_site_config
from rsu_tools.bench.uplink import BenchOptions, mqtt_publish_frame_bytes, run_bench

REPO_ROOT = Path(__file__).resolve().parents[2]


def _parser() -> argparse.ArgumentParser:
    return build_parser()


def test_each_hook_adds_its_command_with_one_call() -> None:
    parser = _parser()
    centre = parser.parse_args(["centre", "--db", "c.sqlite", "--port", "1884"])
    assert (centre.db, centre.host, centre.port, centre.topic) == ("c.sqlite", "127.0.0.1", 1884, "centre/+/aggregates")
    bridge = parser.parse_args(["uplink", "bridge-config", "--config", "site.yaml", "--central-host", "tmc"])
    assert (bridge.config, bridge.central_host, bridge.central_port) == ("site.yaml", "tmc", 1883)
    bench = parser.parse_args(["bench", "uplink", "--units", "3"])
    assert bench.units == 3 and bench.intervals == 20
    for args in (centre, bridge, bench):
        assert callable(args.handler)
    with pytest.raises(SystemExit):
        parser.parse_args(["centre"])  # --db is required


def test_bridge_config_command_writes_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "bridge.conf"
    args = _parser().parse_args(
        ["uplink", "bridge-config", "--config", str(SAMPLE_SITE), "--central-host", "tmc.example", "-o", str(output)]
    )
    assert args.handler(args) == 0
    assert "topic centre/rsu-demo-001/# out 1" in output.read_text().splitlines()
    assert "rsu-demo-001 -> tmc.example:1883" in capsys.readouterr().out


def test_the_shipped_example_matches_the_generator() -> None:
    example = REPO_ROOT / "deploy" / "bridge" / "rsu-demo-001.conf"
    expected = mosquitto_bridge_config(load_site_config(SAMPLE_SITE), "centre.example.org")
    assert example.read_text() == expected, "regenerate deploy/bridge/rsu-demo-001.conf (see deploy/bridge/README.md)"


def test_mqtt_frame_size_counts_the_variable_length_header() -> None:
    topic = "centre/u/aggregates"  # 19 bytes
    assert mqtt_publish_frame_bytes(topic, 100) == 1 + 1 + 2 + 19 + 2 + 1 + 100
    assert mqtt_publish_frame_bytes(topic, 4000) == 1 + 2 + 2 + 19 + 2 + 1 + 4000


@pytest.mark.services
def test_a_small_load_run_stores_every_message_once(tmp_path: Path) -> None:
    result = run_bench(
        BenchOptions(units=20, intervals=3, period_s=0.2, publisher_processes=1, timeout_s=30.0),
        tmp_path / "centre.sqlite",
    )

    assert (result.messages_expected, result.messages_stored, result.losses) == (60, 60, 0)
    assert result.duplicates == 0 and result.invalid == 0
    assert 0 < result.delay_p50_ms <= result.delay_p99_ms < 5000
    assert 2_000 < result.mean_payload_bytes < 20_000, "an 8-lane junction's aggregate is a few kB"
    assert result.upstream_bytes_per_hour_1min > result.upstream_bytes_per_hour_15min
    assert result.camera_bytes_per_hour == 1_800_000_000
    json.dumps(result.__dict__)  # the figures serialise as they are written out
