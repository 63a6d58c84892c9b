"""The latency bench's parts that need no broker, footage or detector."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from rsu_cli import main
from rsu_contracts.config import load_site_config
from rsu_contracts.messages.warnings import Severity, WarningKind
from rsu_tools.bench.latency import (
    OTC_SITE,
    SYNTHETIC_ID_BASE,
    LatencyOptions,
    broker_of,
    figure,
    seq_of,
    synthetic_pair,
    synthetic_signal,
)
from rsu_tools.testing.mqtt_packets import mqtt_packet, split_packet
from v2x.conflicts import ConflictDetector


def test_figure_percentiles_in_milliseconds() -> None:
    result = figure([0.001 * n for n in range(1, 101)])
    assert result.samples == 100
    assert result.p50_ms == pytest.approx(50.5)
    assert result.p99_ms == pytest.approx(99.01)
    assert result.max_ms == pytest.approx(100.0)
    assert math.isnan(figure([]).p50_ms)


def test_the_injected_pair_is_a_critical_rear_end_conflict_every_frame() -> None:
    site = load_site_config(OTC_SITE)
    detector = ConflictDetector(site, site.v2x.warnings)
    for frame in range(3):
        now = 1_800_000_000.0 + 0.1 * frame
        [conflict] = detector.update(synthetic_pair(frame, now), synthetic_signal(site, now), now)
        assert conflict.kind is WarningKind.REAR_END
        assert conflict.severity is Severity.CRITICAL  # no confirmation delay
        assert min(p.track_id for p in conflict.participants) >= SYNTHETIC_ID_BASE + 2 * frame


def test_raw_mqtt_framing_round_trips() -> None:
    payload = json.dumps({"schema_name": "rsu.v2x.warning", "seq": 4711, "x": "y" * 300}).encode()
    publish = mqtt_packet(0x32, (5).to_bytes(2, "big") + b"a/b/c" + (9).to_bytes(2, "big") + b"\x00" + payload)
    buffer = bytearray(publish[:3])
    assert split_packet(buffer) is None  # incomplete: nothing taken
    buffer += publish[3:] + mqtt_packet(0x90, b"\x00\x01\x00\x01")
    kind, body = split_packet(buffer) or (0, b"")
    assert kind == 0x32 and body.endswith(payload)
    assert seq_of(body) == 4711
    assert split_packet(buffer) == (0x90, b"\x00\x01\x00\x01")
    assert buffer == bytearray()


def test_options_are_bounded() -> None:
    with pytest.raises(ValueError, match="--frames"):
        LatencyOptions(frames=5).check()
    with pytest.raises(ValueError, match="--clients"):
        LatencyOptions(clients=100_000).check()
    with pytest.raises(ValueError, match="--client-kind"):
        LatencyOptions(client_kind="carrier-pigeon").check()


def test_only_loopback_brokers() -> None:
    site = load_site_config(OTC_SITE)
    assert broker_of(site, "127.0.0.1:1884").port == 1884
    with pytest.raises(ValueError, match="loopback"):
        broker_of(site, "192.0.2.10:1883")
    with pytest.raises(ValueError, match="HOST:PORT"):
        broker_of(site, "localhost")


def test_cli_reports_bad_options_without_touching_anything(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "latency", "--frames", "3", "--json", str(tmp_path / "x.json")]) == 2
    assert "--frames" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()
