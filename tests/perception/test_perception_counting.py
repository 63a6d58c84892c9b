"""LineCounter: each confirmed track counted once per line, never clutter, never jitter twice."""

from __future__ import annotations

import pytest

from rsu.perception.counting import LineCounter
from rsu.perception.tracker import Track
from rsu_contracts.config.model import SiteConfig
from rsu_contracts.enums import RoadUserType
from rsu_contracts.messages.perception import LineCrossing
from tests.perception.perception_helpers import PEDESTRIAN, lane_heading_deg, lane_point, make_track

LANE = "south_through_right"
LINE = "south_in"


def line_distance_to_stop(site: SiteConfig) -> float:
    """How far upstream of the lane's stop line the counting line crosses the lane's centre line."""
    (line,) = [line for line in site.counting_lines if line.id == LINE]
    (ax, ay), (bx, by) = line.line_m

    def side(distance_to_stop_m: float) -> float:
        x, y = lane_point(site, LANE, distance_to_stop_m)
        return (bx - ax) * (y - ay) - (by - ay) * (x - ax)

    # Signed distance to the line is linear along a straight lane: solve side(d) = 0.
    return side(0.0) / (side(0.0) - side(1.0))


def in_lane(
    site: SiteConfig,
    track_id: int,
    distance_to_stop_m: float,
    time_s: float,
    *,
    confirmed: bool = True,
    speed_mps: float = 10.0,
    lateral_m: float = 0.0,
    coasting_s: float = 0.0,
    road_user: RoadUserType = RoadUserType.CAR,
) -> Track:
    x, y = lane_point(site, LANE, distance_to_stop_m, lateral_m)
    return make_track(
        track_id,
        x,
        y,
        speed_mps=speed_mps,
        heading_deg=lane_heading_deg(site, LANE),
        confirmed=confirmed,
        time_s=time_s,
        coasting_s=coasting_s,
        road_user=road_user,
    )


def run(counter: LineCounter, frames: list[list[Track]], t0: float = 0.0) -> list[LineCrossing]:
    crossings = []
    for i, tracks in enumerate(frames):
        crossings.extend(counter.update(tracks, t0 + 0.1 * i))
    return crossings


def test_a_vehicle_crossing_the_line_is_counted_once(sample_site: SiteConfig) -> None:
    counter = LineCounter(sample_site)
    line_at = line_distance_to_stop(sample_site)
    # 10 m/s from 20 m upstream of the line to 10 m past it.
    frames = [[in_lane(sample_site, 7, line_at + 20.0 - i, 0.1 * i)] for i in range(31)]
    crossings = run(counter, frames)
    assert len(crossings) == 1
    (crossing,) = crossings
    assert crossing.line_id == LINE
    assert crossing.lane_id == LANE
    assert crossing.road_user is RoadUserType.CAR
    assert crossing.speed_mps == pytest.approx(10.0)
    assert crossing.time_s == pytest.approx(2.0, abs=0.05)
    assert counter.totals[LINE] == 1
    assert sum(counter.totals.values()) == 1


def test_a_track_jittering_on_the_line_is_counted_once(sample_site: SiteConfig) -> None:
    counter = LineCounter(sample_site)
    line_at = line_distance_to_stop(sample_site)
    frames = [[in_lane(sample_site, 1, line_at + 5.0 - i, 0.1 * i)] for i in range(5)]
    # Stopped on the line: small jitter stays inside the band, large jitter swings across it.
    frames += [[in_lane(sample_site, 1, line_at + (0.2 if i % 2 else -0.2), 0.0, speed_mps=0.0)] for i in range(50)]
    frames += [[in_lane(sample_site, 1, line_at + (0.8 if i % 2 else -0.8), 0.0, speed_mps=0.0)] for i in range(50)]
    frames += [[in_lane(sample_site, 1, line_at - 1.0 - i, 0.0)] for i in range(10)]
    assert len(run(counter, frames)) == 1


def test_a_track_that_stops_on_the_line_and_backs_off_is_not_counted(sample_site: SiteConfig) -> None:
    counter = LineCounter(sample_site)
    line_at = line_distance_to_stop(sample_site)
    frames = [[in_lane(sample_site, 1, line_at + 3.0 - 0.5 * i, 0.0)] for i in range(6)]  # onto the line
    frames += [[in_lane(sample_site, 1, line_at + (0.25 if i % 2 else -0.25), 0.0)] for i in range(20)]
    frames += [[in_lane(sample_site, 1, line_at + 0.5 * i, 0.0)] for i in range(6)]  # back where it came from
    assert run(counter, frames) == []


def test_a_crossing_made_while_tentative_is_counted_when_the_track_confirms(sample_site: SiteConfig) -> None:
    counter = LineCounter(sample_site)
    line_at = line_distance_to_stop(sample_site)
    frames = [
        [in_lane(sample_site, 3, line_at + 1.5 - i, 0.1 * i, confirmed=i >= 4)] for i in range(12)
    ]  # crosses between frames 1 and 2, confirms at frame 4
    crossings = []
    for i, tracks in enumerate(frames):
        new = counter.update(tracks, 0.1 * i)
        if new:
            assert i == 4
        crossings.extend(new)
    assert len(crossings) == 1
    assert crossings[0].time_s == pytest.approx(0.15, abs=0.01)  # when it crossed, not when it confirmed
    assert crossings[0].lane_id == LANE


def test_clutter_that_never_confirms_is_never_counted_and_leaves_no_memory(sample_site: SiteConfig) -> None:
    counter = LineCounter(sample_site)
    line_at = line_distance_to_stop(sample_site)
    crossings = []
    for k in range(200):  # 200 short-lived tentative tracks, each hopping across the line
        frames = [[in_lane(sample_site, 100 + k, line_at + 1.0 - 2.0 * i, 0.0, confirmed=False)] for i in range(2)]
        crossings += run(counter, frames, t0=1.0 * k)
    crossings += counter.update([], 500.0)
    assert crossings == []
    assert counter.remembered_tracks == 0


def test_a_track_passing_beside_the_line_is_not_counted(sample_site: SiteConfig) -> None:
    counter = LineCounter(sample_site)
    line_at = line_distance_to_stop(sample_site)
    # 12 m to the left of the lane: the other side of the road, outside the line's end points.
    frames = [[in_lane(sample_site, 1, line_at + 10.0 - i, 0.1 * i, lateral_m=12.0)] for i in range(20)]
    assert run(counter, frames) == []


def test_coasting_predictions_do_not_count_until_a_detection_confirms_the_crossing(sample_site: SiteConfig) -> None:
    counter = LineCounter(sample_site)
    line_at = line_distance_to_stop(sample_site)
    assert run(counter, [[in_lane(sample_site, 1, line_at + 3.0 - i, 0.1 * i)] for i in range(3)]) == []
    # Coasting (predicted) positions beyond the line count for nothing ...
    coasting = [[in_lane(sample_site, 1, line_at - 1.0 - i, 0.0, coasting_s=0.1 * (i + 1))] for i in range(3)]
    assert run(counter, coasting, t0=0.3) == []
    # ... the next detection past the line does.
    crossings = counter.update([in_lane(sample_site, 1, line_at - 5.0, 0.7)], 0.7)
    assert len(crossings) == 1
    assert 0.2 < crossings[0].time_s < 0.7


def test_a_pedestrian_crossing_has_no_lane(sample_site: SiteConfig) -> None:
    counter = LineCounter(sample_site)
    line_at = line_distance_to_stop(sample_site)
    frames = [
        [in_lane(sample_site, 1, line_at + 2.0 - 0.5 * i, 0.0, road_user=PEDESTRIAN, speed_mps=1.4)] for i in range(9)
    ]
    (crossing,) = run(counter, frames)
    assert crossing.road_user is PEDESTRIAN
    assert crossing.lane_id is None


def test_each_track_is_counted_on_its_own(sample_site: SiteConfig) -> None:
    counter = LineCounter(sample_site)
    line_at = line_distance_to_stop(sample_site)
    frames = [
        [
            in_lane(sample_site, 1, line_at + 5.0 - i, 0.0),
            in_lane(sample_site, 2, line_at + 9.0 - i, 0.0),
            make_track(3, 0.0, 0.0),  # standing in the junction
        ]
        for i in range(15)
    ]
    crossings = run(counter, frames)
    assert len(crossings) == 2
    assert counter.totals[LINE] == 2


def test_time_going_backwards_raises(sample_site: SiteConfig) -> None:
    counter = LineCounter(sample_site)
    counter.update([], 3.0)
    with pytest.raises(ValueError, match="back in time"):
        counter.update([], 2.0)
