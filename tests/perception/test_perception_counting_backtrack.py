"""LineCounter back-tracking: a road user hidden while it crossed a line is counted once, never twice."""

from __future__ import annotations

import pytest

from rsu.perception.counting import LineCounter
from rsu.perception.tracker import Track
from rsu_contracts.config.model import SiteConfig
from rsu_contracts.enums import RoadUserType
from rsu_contracts.messages.perception import LineCrossing
from tests.perception.test_perception_counting import LANE, LINE, in_lane, line_distance_to_stop

FRAME_S = 0.1


def appearing_past_the_line(
    site: SiteConfig, track_id: int, first_past_m: float, t0: float, *, speed_mps: float = 10.0, frames: int = 12
) -> list[list[Track]]:
    """A car first detected first_past_m beyond the line at t0, driving on; confirmed from its third frame."""
    line_at = line_distance_to_stop(site)
    return [
        [
            in_lane(
                site,
                track_id,
                line_at - first_past_m - speed_mps * FRAME_S * i,
                t0 + FRAME_S * i,
                confirmed=i >= 2,
                speed_mps=speed_mps,
            )
        ]
        for i in range(frames)
    ]


def play(counter: LineCounter, frames: list[list[Track]], t0: float) -> list[LineCrossing]:
    crossings: list[LineCrossing] = []
    for i, tracks in enumerate(frames):
        crossings.extend(counter.update(tracks, t0 + FRAME_S * i))
    return crossings


def test_a_car_first_seen_past_the_line_is_counted_at_the_time_its_path_reached_it(sample_site: SiteConfig) -> None:
    counter = LineCounter(sample_site)
    counter.update([], 0.0)  # counting runs from t = 0
    # Hidden while it crossed: first seen 4 m past the line at t = 2.0 s, at 10 m/s.
    crossings = play(counter, appearing_past_the_line(sample_site, 5, 4.0, 2.0), 2.0)
    assert len(crossings) == 1
    (crossing,) = crossings
    assert (crossing.line_id, crossing.road_user, crossing.lane_id) == (LINE, RoadUserType.CAR, LANE)
    assert crossing.time_s == pytest.approx(1.6, abs=0.05)
    assert crossing.speed_mps == pytest.approx(10.0, rel=0.05)
    assert counter.totals[LINE] == 1 and counter.backtracked == 1


def test_nothing_is_traced_back_to_before_counting_started(sample_site: SiteConfig) -> None:
    counter = LineCounter(sample_site)
    # The first update is the car's first sighting: it crossed before the counter was running.
    assert play(counter, appearing_past_the_line(sample_site, 5, 4.0, 2.0), 2.0) == []


def test_a_car_first_seen_far_past_the_line_or_slow_is_not_traced_back(sample_site: SiteConfig) -> None:
    counter = LineCounter(sample_site)
    counter.update([], 0.0)
    # 15 m past the line at 10 m/s: 1.5 s ago, longer than backtrack_s.
    assert play(counter, appearing_past_the_line(sample_site, 1, 15.0, 2.0), 2.0) == []
    # Appearing 0.5 m past the line but creeping at 1 m/s (pulling out, not passing through).
    frames = appearing_past_the_line(sample_site, 2, 0.5, 10.0, speed_mps=1.0, frames=40)
    assert play(counter, frames, 10.0) == []


def test_back_tracking_can_be_switched_off(sample_site: SiteConfig) -> None:
    site = sample_site.model_copy(update={"tracking": sample_site.tracking.model_copy(update={"backtrack_s": 0.0})})
    counter = LineCounter(site)
    counter.update([], 0.0)
    assert play(counter, appearing_past_the_line(site, 5, 4.0, 2.0), 2.0) == []
    assert counter.remembered_recent == 0


def test_a_track_lost_after_its_crossing_and_found_again_under_a_new_id_is_counted_once(
    sample_site: SiteConfig,
) -> None:
    counter = LineCounter(sample_site)
    line_at = line_distance_to_stop(sample_site)
    # Track 1 crosses at t = 1.0 s, is last detected 2 m past the line at t = 1.2 s ...
    frames = [[in_lane(sample_site, 1, line_at + 10.0 - i, FRAME_S * i)] for i in range(13)]
    crossings = play(counter, frames, 0.0)
    # ... and the tracker picks the car up again as track 2, 5 m past the line at t = 1.5 s.
    crossings += play(counter, appearing_past_the_line(sample_site, 2, 5.0, 1.5), 1.5)
    assert [c.line_id for c in crossings] == [LINE]


def test_a_track_lost_before_the_line_and_found_again_past_it_is_counted_once(sample_site: SiteConfig) -> None:
    counter = LineCounter(sample_site)
    line_at = line_distance_to_stop(sample_site)
    # Track 1 is last detected 1 m before the line at t = 0.9 s (hidden from there on) ...
    frames = [[in_lane(sample_site, 1, line_at + 10.0 - i, FRAME_S * i)] for i in range(10)]
    crossings = play(counter, frames, 0.0)
    assert crossings == []
    # ... and comes back as track 2, 3 m past the line at t = 1.3 s: it crossed once, at about 1.0 s.
    crossings += play(counter, appearing_past_the_line(sample_site, 2, 3.0, 1.3), 1.3)
    assert len(crossings) == 1
    assert crossings[0].time_s == pytest.approx(1.0, abs=0.05)


def test_a_car_hidden_behind_one_counted_in_view_is_counted_too(sample_site: SiteConfig) -> None:
    counter = LineCounter(sample_site)
    line_at = line_distance_to_stop(sample_site)
    counter.update([], 0.0)
    # Car 1 crosses in view at t = 1.0 s and stays in view; car 2, hidden behind it, appears past the
    # line at t = 2.5 s (it crossed at about 2.2 s).
    leader = [[in_lane(sample_site, 1, line_at + 10.0 - i, FRAME_S * i)] for i in range(37)]
    follower = appearing_past_the_line(sample_site, 2, 3.0, 2.5)
    frames = [lead + (follower[i - 25] if i >= 25 else []) for i, lead in enumerate(leader)]
    crossings = play(counter, frames, 0.0)
    assert [c.line_id for c in crossings] == [LINE, LINE]
    assert crossings[1].time_s == pytest.approx(2.2, abs=0.05)


def test_a_second_track_on_the_same_car_is_not_counted_again(sample_site: SiteConfig) -> None:
    counter = LineCounter(sample_site)
    line_at = line_distance_to_stop(sample_site)
    counter.update([], 0.0)
    # Car 1 crosses at t = 1.0 s; from t = 1.3 s a duplicate box of it starts a second track 0.5 m aside.
    car = [[in_lane(sample_site, 1, line_at + 10.0 - i, FRAME_S * i)] for i in range(25)]
    duplicate = [
        [in_lane(sample_site, 2, line_at - 3.0 - i, 1.3 + FRAME_S * i, confirmed=i >= 2, lateral_m=0.5)]
        for i in range(12)
    ]
    frames = [track + (duplicate[i - 13] if 13 <= i < 25 else []) for i, track in enumerate(car)]
    assert [c.line_id for c in play(counter, frames, 0.0)] == [LINE]


def test_the_memory_for_back_tracking_stays_bounded_over_a_long_run(sample_site: SiteConfig) -> None:
    counter = LineCounter(sample_site)
    line_at = line_distance_to_stop(sample_site)
    for k in range(300):  # a car every 2 s for 10 minutes, each crossing in view
        t0 = 2.0 * k
        frames = [[in_lane(sample_site, 1000 + k, line_at + 5.0 - i, t0 + FRAME_S * i)] for i in range(10)]
        play(counter, frames, t0)
    counter.update([], 600.0)
    assert counter.totals[LINE] == 300
    assert counter.remembered_tracks == 0
    assert counter.remembered_recent <= 6  # only the last few seconds
