"""The live page's state: what one snapshot shows after a stream of the unit's messages."""

from __future__ import annotations

import json

from rsu.samples import SAMPLE_SITE
from rsu.web.hub import LiveHub, finite
from rsu.web.state import WARNING_EXPIRY_S
from rsu_contracts.config import load_site_config
from tests.web.scripted_unit import ScriptedUnit, make_jpeg


class FakeClock:
    def __init__(self) -> None:
        self.wall = 1_800_000_000.0
        self.monotonic = 1000.0

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.monotonic += seconds


def feed_rounds(hub: LiveHub, unit: ScriptedUnit, clock: FakeClock, rounds: int) -> None:
    for _ in range(rounds):
        t = clock.wall - unit.start_s
        capture = clock.wall - 0.03
        topics = unit.topics
        hub.absorb(topics.tracks, unit.tracks(t, capture, clock.wall).to_json())
        hub.absorb(topics.detectors, unit.detectors(t, capture, clock.wall).to_json())
        state = unit.signal_state(t, capture, clock.wall)
        hub.absorb(topics.signal_state, state.to_json())
        hub.absorb(topics.spat_sent, unit.spat(state, clock.wall).to_json())
        warning = unit.warning(t, capture, clock.wall)
        if warning is not None:
            hub.absorb(topics.warnings_sent, warning.to_json())
        if unit.rounds % 10 == 0:
            hub.absorb(topics.health, unit.health(clock.wall).to_json())
        unit.rounds += 1
        clock.advance(0.1)


def make_hub() -> tuple[LiveHub, ScriptedUnit, FakeClock]:
    clock = FakeClock()
    site = load_site_config(SAMPLE_SITE)
    hub = LiveHub(site, realtime=True, wall_clock=lambda: clock.wall, monotonic=lambda: clock.monotonic)
    unit = ScriptedUnit(SAMPLE_SITE)
    unit.start_s = clock.wall
    return hub, unit, clock


def test_snapshot_shows_tracks_signals_lanes_counts_warnings_and_health() -> None:
    hub, unit, clock = make_hub()
    feed_rounds(hub, unit, clock, 12)
    snapshot = hub.snapshot()
    assert len(snapshot["tracks"]["objects"]) == 5
    assert snapshot["tracks"]["stale"] is False
    groups = {g["id"]: g for g in snapshot["signals"]["groups"]}
    assert set(groups) == {g.id for g in hub.site.signal_groups}
    green = [g for g in groups.values() if g["indication"] == "green"]
    assert green and all(g["likely_s"] >= 0 for g in green)
    assert green[0]["spat_state"] == "protected-Movement-Allowed"
    assert {lane["id"] for lane in snapshot["lanes"]["lanes"]} == {lane.id for lane in hub.site.lanes}
    assert sum(line["total"] for line in snapshot["lines"]) == 3  # a crossing every 5th round
    feed = snapshot["warnings"]["feed"]
    assert len(feed) == 1 and feed[0]["status"] == "ended"  # new, update, ended: one line, newest state
    assert snapshot["warnings"]["active"] == []
    assert snapshot["warnings"]["by_kind"] == {"vulnerable_road_user": 1}
    assert snapshot["health"]["stages"][0]["name"] == "perception"
    assert snapshot["metrics"]["fps"] is not None
    json.dumps(finite(snapshot), allow_nan=False)


def test_countdowns_run_on_the_message_clock_in_a_fast_simulation() -> None:
    clock = FakeClock()
    site = load_site_config(SAMPLE_SITE)
    hub = LiveHub(site, realtime=False, wall_clock=lambda: clock.wall + 5000, monotonic=lambda: clock.monotonic)
    unit = ScriptedUnit(SAMPLE_SITE)
    unit.start_s = clock.wall
    feed_rounds(hub, unit, clock, 3)
    snapshot = hub.snapshot()
    # The wall clock is far ahead; countdowns still come from the newest capture time.
    assert abs(snapshot["clock_s"] - (clock.wall - 0.1 - 0.03)) < 1e-6
    assert any(g["likely_s"] > 0 for g in snapshot["signals"]["groups"])


def test_stale_data_and_unended_warnings_age_out() -> None:
    hub, unit, clock = make_hub()
    feed_rounds(hub, unit, clock, 1)  # a NEW warning in round 0
    assert len(hub.snapshot()["warnings"]["active"]) == 1
    clock.advance(WARNING_EXPIRY_S + 0.5)
    snapshot = hub.snapshot()
    assert snapshot["warnings"]["active"] == []
    assert snapshot["tracks"]["stale"] is True
    assert snapshot["signals"]["stale"] is True


def test_bad_payloads_are_counted_not_raised_and_previews_are_kept() -> None:
    hub, unit, _ = make_hub()
    hub.absorb(unit.topics.tracks, b'{"schema_name": "rsu.tracks"}')
    hub.absorb(unit.topics.signal_state, b"\xff\xfe not json")
    assert hub.snapshot()["metrics"]["invalid_messages"] == 2
    assert hub.frame() is None
    jpeg = make_jpeg()
    hub.absorb(unit.topics.camera_preview, jpeg)
    frame = hub.frame()
    assert frame is not None and frame.jpeg == jpeg and frame.version == 1
    assert hub.snapshot()["camera"]["frames"] == 1


def test_snapshot_json_is_cached_until_something_changes() -> None:
    hub, unit, clock = make_hub()
    feed_rounds(hub, unit, clock, 2)
    version, text = hub.snapshot_json()
    assert hub.snapshot_json() == (version, text)
    feed_rounds(hub, unit, clock, 1)
    assert hub.snapshot_json()[0] > version
    assert "NaN" not in text and "Infinity" not in text
