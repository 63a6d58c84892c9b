"""ZoneMonitor: stop-bar presence and gap, queues, waits and crosswalk counts from confirmed tracks."""

from __future__ import annotations

import pytest

from rsu.perception.tracker import Track
from rsu.perception.zones import ZoneMonitor
from rsu_contracts.config.model import SiteConfig
from rsu_contracts.enums import RoadUserType
from rsu_contracts.messages.perception import LaneObservation
from tests.perception.perception_helpers import PEDESTRIAN, lane_heading_deg, lane_point, make_track

LANE = "south_through_right"


def car_in_lane(
    site: SiteConfig,
    track_id: int,
    distance_to_stop_m: float,
    *,
    lane_id: str = LANE,
    speed_mps: float = 0.0,
    time_s: float = 0.0,
    road_user: RoadUserType = RoadUserType.CAR,
    confirmed: bool = True,
    age_s: float = 5.0,
) -> Track:
    x, y = lane_point(site, lane_id, distance_to_stop_m)
    return make_track(
        track_id,
        x,
        y,
        road_user=road_user,
        speed_mps=speed_mps,
        heading_deg=lane_heading_deg(site, lane_id),
        time_s=time_s,
        confirmed=confirmed,
        age_s=age_s,
    )


def lane_observation(monitor: ZoneMonitor, tracks: list[Track], time_s: float, lane_id: str = LANE) -> LaneObservation:
    observations = monitor.update(tracks, time_s).lanes
    return next(o for o in observations if o.lane_id == lane_id)


def test_a_queue_of_five_stopped_cars(sample_site: SiteConfig) -> None:
    # Cars 4.5 m long, 2 m apart, the first one's front 1 m before the stop line.
    fronts = [1.0, 7.5, 14.0, 20.5, 27.0]
    tracks = [car_in_lane(sample_site, i + 1, front + 2.25) for i, front in enumerate(fronts)]
    tracks.append(car_in_lane(sample_site, 10, 50.0))  # stopped, but 18.75 m behind the queue
    tracks.append(car_in_lane(sample_site, 11, 90.0, speed_mps=12.0))
    tracks.append(car_in_lane(sample_site, 12, 120.0, speed_mps=8.0))
    observation = lane_observation(ZoneMonitor(sample_site), tracks, 0.0)
    assert observation.queued_vehicles == 5
    assert observation.queue_length_m == pytest.approx(31.5)
    assert observation.stop_bar_occupied
    assert observation.stop_bar_gap_s == 0.0
    assert observation.approaching_vehicles == 2
    assert observation.approaching_speed_mean_mps == pytest.approx(10.0)


def test_a_queue_must_start_at_the_stop_line(sample_site: SiteConfig) -> None:
    tracks = [car_in_lane(sample_site, 1, 30.0), car_in_lane(sample_site, 2, 37.0)]
    observation = lane_observation(ZoneMonitor(sample_site), tracks, 0.0)
    assert (observation.queued_vehicles, observation.queue_length_m) == (0, 0.0)
    assert not observation.stop_bar_occupied


def test_other_lanes_are_unaffected(sample_site: SiteConfig) -> None:
    observations = ZoneMonitor(sample_site).update([car_in_lane(sample_site, 1, 3.0)], 0.0).lanes
    assert [o.lane_id for o in observations] == [lane.id for lane in sample_site.lanes]
    for observation in observations:
        if observation.lane_id != LANE:
            assert not observation.stop_bar_occupied
            assert observation.queued_vehicles == observation.approaching_vehicles == 0


def test_the_stop_bar_gap_timer_starts_when_the_car_leaves(sample_site: SiteConfig) -> None:
    monitor = ZoneMonitor(sample_site)
    first = lane_observation(monitor, [], 100.0)
    assert not first.stop_bar_occupied
    assert first.stop_bar_gap_s == 0.0
    never = lane_observation(monitor, [], 104.0)
    assert never.stop_bar_gap_s == pytest.approx(4.0)  # never occupied: time since the start
    for t in (105.0, 106.0, 110.0):
        observation = lane_observation(monitor, [car_in_lane(sample_site, 1, 3.0, time_s=t)], t)
        assert observation.stop_bar_occupied
        assert observation.stop_bar_gap_s == 0.0
    # It drives off into the junction at 10.1 s.
    moving_away = car_in_lane(sample_site, 1, -8.0, speed_mps=6.0, time_s=110.1)
    observation = lane_observation(monitor, [moving_away], 110.1)
    assert not observation.stop_bar_occupied
    assert observation.stop_bar_gap_s == pytest.approx(0.1)
    assert lane_observation(monitor, [], 112.0).stop_bar_gap_s == pytest.approx(2.0)


@pytest.mark.parametrize(
    ("road_user", "distance_to_stop_m", "occupied"),
    [
        (RoadUserType.CAR, 10.0, True),  # front at 7.75 m: inside the 8 m zone
        (RoadUserType.CAR, 10.5, False),  # front at 8.25 m
        (RoadUserType.TRUCK, 12.5, True),  # a 10 m truck reaches in with its front
        (RoadUserType.CAR, -1.5, True),  # overran the stop line, the rear still covers the zone
        (RoadUserType.CAR, -3.0, False),  # wholly in the junction
        (RoadUserType.BICYCLE, 4.0, True),  # a waiting cyclist calls the signal too
        (RoadUserType.PEDESTRIAN, 4.0, False),
    ],
)
def test_stop_bar_presence_uses_the_vehicle_footprint(
    sample_site: SiteConfig, road_user: RoadUserType, distance_to_stop_m: float, occupied: bool
) -> None:
    track = car_in_lane(sample_site, 1, distance_to_stop_m, road_user=road_user)
    assert lane_observation(ZoneMonitor(sample_site), [track], 0.0).stop_bar_occupied is occupied


def test_unconfirmed_tracks_do_not_count(sample_site: SiteConfig) -> None:
    tracks = [
        car_in_lane(sample_site, 1, 3.0, confirmed=False),
        car_in_lane(sample_site, 2, 60.0, speed_mps=10.0, confirmed=False),
    ]
    observation = lane_observation(ZoneMonitor(sample_site), tracks, 0.0)
    assert not observation.stop_bar_occupied
    assert observation.queued_vehicles == observation.approaching_vehicles == 0


def test_traffic_in_the_opposite_direction_is_not_in_the_lane(sample_site: SiteConfig) -> None:
    northbound = (lane_heading_deg(sample_site, "north_left") + 180.0) % 360.0
    tracks = []
    for track_id, lateral in ((1, 3.2), (2, 1.2), (3, 0.0)):  # exit lane, drifting, wrong way in the lane
        x, y = lane_point(sample_site, "north_left", 5.0, lateral_m=lateral)
        tracks.append(make_track(track_id, x, y, speed_mps=8.0, heading_deg=northbound))
    observations = ZoneMonitor(sample_site).update(tracks, 0.0).lanes
    assert not any(o.stop_bar_occupied or o.approaching_vehicles for o in observations)


def test_max_wait_follows_the_longest_waiting_vehicle_and_timers_are_pruned(sample_site: SiteConfig) -> None:
    monitor = ZoneMonitor(sample_site)
    # Car 1 approaches, stops at t = 2 and waits; car 2, slow since it appeared at 9.7 s, is confirmed at 10 s.
    for step in range(301):
        t = step * 0.1
        first = car_in_lane(sample_site, 1, 3.0, speed_mps=8.0 if t < 2.0 else 0.0, time_s=t)
        tracks = [first]
        if t >= 10.0:
            tracks.append(car_in_lane(sample_site, 2, 10.0, speed_mps=0.3, time_s=t, age_s=t - 9.7))
        observation = lane_observation(monitor, tracks, t)
    assert observation.max_wait_s == pytest.approx(28.0)
    assert monitor.tracked_waits == 2
    # Car 1 leaves: the longest wait is now car 2's; then both tracks end and their timers go.
    observation = lane_observation(monitor, [car_in_lane(sample_site, 2, 10.0, time_s=30.1, age_s=20.4)], 30.1)
    assert observation.max_wait_s == pytest.approx(20.4)
    assert monitor.tracked_waits == 1
    assert lane_observation(monitor, [], 30.2).max_wait_s == 0.0
    assert monitor.tracked_waits == 0


def test_creeping_in_a_queue_does_not_reset_the_wait(sample_site: SiteConfig) -> None:
    monitor = ZoneMonitor(sample_site)
    for step in range(100):
        t = step * 0.1
        speed = 0.0 if step < 20 else (1.4 if step % 2 else 1.8)  # around the 1.5 m/s queue speed
        observation = lane_observation(monitor, [car_in_lane(sample_site, 1, 3.0, speed_mps=speed, time_s=t)], t)
        assert observation.queued_vehicles == 1
    assert observation.max_wait_s == pytest.approx(9.9 + 5.0)  # waiting since it appeared, 5 s before t = 0
    moving = car_in_lane(sample_site, 1, 2.0, speed_mps=5.0, time_s=10.0)
    observation = lane_observation(monitor, [moving], 10.0)
    assert observation.max_wait_s == 0.0
    assert observation.queued_vehicles == 0


def test_pedestrians_in_and_waiting_at_a_crosswalk(sample_site: SiteConfig) -> None:
    (crosswalk,) = [c for c in sample_site.crosswalks if c.id == "cw_south"]
    xs = [p[0] for p in crosswalk.polygon_m]
    ys = [p[1] for p in crosswalk.polygon_m]
    cx, cy = (min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2
    tracks = [
        make_track(1, cx, cy, road_user=PEDESTRIAN, speed_mps=1.3, heading_deg=90.0),
        make_track(2, cx - 3.0, cy + 0.5, road_user=PEDESTRIAN, speed_mps=1.2, heading_deg=270.0),
        make_track(3, cx + 2.0, cy, road_user=RoadUserType.BICYCLE, speed_mps=4.0, heading_deg=90.0),
        make_track(4, cx + 1.0, cy, road_user=PEDESTRIAN, confirmed=False),  # tentative: ignored
        make_track(5, max(xs) + 1.0, cy, road_user=PEDESTRIAN, speed_mps=0.2),  # waiting at the kerb
        make_track(6, max(xs) + 2.5, cy + 1.0, road_user=PEDESTRIAN, speed_mps=0.0),  # waiting
        make_track(7, min(xs) - 1.0, cy, road_user=PEDESTRIAN, speed_mps=1.4, heading_deg=0.0),  # walking by
        make_track(8, max(xs) + 6.0, cy, road_user=PEDESTRIAN),  # too far to be waiting
        make_track(9, cx, cy - 0.5, road_user=RoadUserType.CAR, speed_mps=5.0, heading_deg=0.0),
    ]
    crosswalks = {o.crosswalk_id: o for o in ZoneMonitor(sample_site).update(tracks, 0.0).crosswalks}
    assert set(crosswalks) == {c.id for c in sample_site.crosswalks}
    assert crosswalks["cw_south"].pedestrians == 3
    assert crosswalks["cw_south"].waiting_pedestrians == 2
    assert crosswalks["cw_north"].pedestrians == crosswalks["cw_north"].waiting_pedestrians == 0


def test_time_going_backwards_raises(sample_site: SiteConfig) -> None:
    monitor = ZoneMonitor(sample_site)
    monitor.update([], 5.0)
    with pytest.raises(ValueError, match="back in time"):
        monitor.update([], 4.0)


def test_the_lookahead_gives_each_approaching_vehicles_time_to_the_stop_line(sample_site: SiteConfig) -> None:
    tracks = [
        car_in_lane(sample_site, 1, 3.0),  # standing at the line: in the queue, not arriving
        car_in_lane(sample_site, 2, 60.0, speed_mps=12.0),  # 5 s away
        car_in_lane(sample_site, 3, 30.0, speed_mps=10.0),  # 3 s away
        car_in_lane(sample_site, 4, 120.0, speed_mps=6.0),  # 20 s away: beyond the horizon
        car_in_lane(sample_site, 5, 80.0, speed_mps=1.0),  # creeping: counted as waiting, not arriving
    ]
    observation = lane_observation(ZoneMonitor(sample_site), tracks, 0.0)
    assert observation.arrival_times_s == pytest.approx([3.0, 5.0], abs=0.05)
    assert observation.approaching_vehicles == 3  # the moving ones, the far one included
