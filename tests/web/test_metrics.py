"""/metrics: the Prometheus text format, and what the unit's messages turn into."""

from __future__ import annotations

import re

from rsu.metrics import MetricsRegistry, UnitMetrics, parse_exposition
from rsu.samples import SAMPLE_SITE
from rsu_contracts.config import load_site_config
from rsu_contracts.messages import InputRejection
from tests.web.scripted_unit import ScriptedUnit

SAMPLE_LINE = re.compile(
    r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? -?[0-9.e+Inf]+$|^.+ NaN$'
)


def assert_valid_exposition(text: str) -> None:
    assert text.endswith("\n")
    declared: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            name, kind = line.split()[2:4]
            assert kind in {"counter", "gauge", "histogram"}
            assert name not in declared, f"{name} declared twice"
            declared.add(name)
        elif not line.startswith("# HELP "):
            assert SAMPLE_LINE.match(line), f"not a valid sample line: {line!r}"
            base = line.split("{")[0].split(" ")[0]
            assert any(base == n or base.startswith(n + "_") for n in declared), f"{base} has no TYPE line"


def test_exposition_format_escapes_labels_and_renders_histograms() -> None:
    registry = MetricsRegistry()
    counter = registry.counter("rsu_things_total", "Things")
    counter.inc(2, kind='a "quoted"\nname')
    histogram = registry.histogram("rsu_latency_seconds", "Latency")
    for value in (0.004, 0.03, 0.2, 7.0):
        histogram.observe(value, stage="perception")
    text = registry.render()
    assert_valid_exposition(text)
    assert 'rsu_things_total{kind="a \\"quoted\\"\\nname"} 2' in text
    samples = parse_exposition(text)
    assert samples['rsu_latency_seconds_bucket{stage="perception",le="0.005"}'] == 1
    assert samples['rsu_latency_seconds_bucket{stage="perception",le="0.25"}'] == 3
    assert samples['rsu_latency_seconds_bucket{stage="perception",le="+Inf"}'] == 4
    assert samples['rsu_latency_seconds_count{stage="perception"}'] == 4
    assert abs(samples['rsu_latency_seconds_sum{stage="perception"}'] - 7.234) < 1e-9


def test_unit_metrics_count_frames_gaps_latency_queues_restarts_and_backlog(tmp_path) -> None:  # type: ignore[no-untyped-def]
    site = load_site_config(SAMPLE_SITE)
    unit = ScriptedUnit(SAMPLE_SITE)
    metrics = UnitMetrics(site.unit_id)
    for i in range(5):
        now = 1_800_000_000.0 + i * 0.1
        tracks = unit.tracks(i * 0.1, now - 0.03, now)
        if i != 3:  # one TrackList lost on the way: a sequence gap of one
            metrics.observe(tracks, received_wall_s=now + 0.01)
        metrics.observe(unit.detectors(i * 0.1, now - 0.03, now))
    metrics.observe(unit.health(1_800_000_001.0))
    metrics.set_mqtt(connected=True, backlog=3, dropped_total=2)
    metrics.set_outbox(backlog=7, trimmed_total=0)
    text = metrics.render()
    assert_valid_exposition(text)
    samples = parse_exposition(text)
    assert samples['rsu_frames_total{camera="cam_pole_ne"}'] == 4
    assert samples['rsu_message_gaps_total{schema="rsu.tracks"}'] == 1
    assert samples['rsu_stage_latency_seconds_count{schema="rsu.tracks",stage="perception"}'] == 4
    assert abs(samples['rsu_message_age_seconds{schema="rsu.tracks"}'] - 0.04) < 1e-6
    assert samples['rsu_frames_per_second{camera="cam_pole_ne"}'] > 0
    first_lane = site.lanes[0].id
    assert f'rsu_lane_queue_vehicles{{lane="{first_lane}"}}' in samples
    assert samples['rsu_stage_restarts_total{stage="perception"}'] == 1
    assert samples['rsu_stage_up{stage="uplink"}'] == 1
    assert samples['rsu_unit_status{status="online"}'] == 1
    assert samples["rsu_mqtt_inbox_backlog_messages"] == 3
    assert samples["rsu_mqtt_inbox_dropped_total"] == 2
    assert samples["rsu_uplink_outbox_backlog_records"] == 7
    assert samples["rsu_uplink_outbox_reachable"] == 1
    summary = metrics.summary()
    assert summary["sequence_gaps"] == 1
    assert summary["latency_ms"]["perception"] == 30.0


def test_a_restarted_publisher_is_not_counted_as_a_gap() -> None:
    unit = ScriptedUnit(SAMPLE_SITE)
    metrics = UnitMetrics("u")
    first = unit.tracks(0.0, 1.0, 1.1)
    second = unit.tracks(0.1, 1.1, 1.2)
    metrics.observe(second)
    metrics.observe(first)  # lower seq: the publisher started again
    assert metrics.summary()["sequence_gaps"] == 0


def test_input_rejections_from_the_health_message_are_exposed_per_stage_topic_and_reason() -> None:
    site = load_site_config(SAMPLE_SITE)
    unit = ScriptedUnit(SAMPLE_SITE)
    metrics = UnitMetrics(site.unit_id)
    health = unit.health(1_800_000_001.0)
    refused = [
        InputRejection(stage="v2x", topic="rsu/x/signal/state", reason="conflicting_greens", count=30),
        InputRejection(stage="controller", topic="rsu/x/perception/detectors", reason="future", count=1),
    ]
    metrics.observe(health.model_copy(update={"rejections": refused}))
    text = metrics.render()
    assert_valid_exposition(text)
    samples = parse_exposition(text)
    key = 'rsu_input_rejections_total{reason="conflicting_greens",stage="v2x",topic="rsu/x/signal/state"}'
    assert samples[key] == 30
    assert (
        samples['rsu_input_rejections_total{reason="future",stage="controller",topic="rsu/x/perception/detectors"}']
        == 1
    )
