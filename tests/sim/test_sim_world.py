"""The simulated world: ground truth, obedience to the applied signals, statistics."""

from __future__ import annotations

import pytest

from rsu.samples import SAMPLE_SITE
from rsu.sim.world import SumoWorld
from rsu_contracts.config import SiteConfig
from rsu_contracts.enums import RoadUserType
from tests.sim.conftest import WorldFactory
from tests.sim.sim_helpers import FixedTimeDriver, group_states

pytestmark = pytest.mark.sumo

NORTH_SOUTH_LANES = {"N2C_0", "N2C_1", "S2C_0", "S2C_1"}
EAST_WEST_LANES = {"E2C_0", "E2C_1", "W2C_0", "W2C_1"}
RED_RUNNER_TYPE = "car_red_runner"
ALL_RED = "r" * 16


def _with_demand_scale(site: SiteConfig, scale: float) -> SiteConfig:
    return site.model_copy(update={"simulation": site.simulation.model_copy(update={"demand_scale": scale})})


def test_the_world_steps_by_the_configured_step(open_world: WorldFactory, sample_site: SiteConfig) -> None:
    world = open_world()
    assert world.step() == pytest.approx(sample_site.simulation.step_s)
    assert world.step() == pytest.approx(2 * sample_site.simulation.step_s)


def test_300_s_bring_every_kind_of_road_user_with_sane_truth(open_world: WorldFactory) -> None:
    world = open_world()
    driver = FixedTimeDriver(world.site)
    seen: set[RoadUserType] = set()
    for second in range(1, 301):
        driver.run_until(world, float(second))
        for obj in world.ground_truth():
            seen.add(obj.road_user)
            assert 0.0 <= obj.heading_deg < 360.0
            assert obj.length_m > 0 and obj.width_m > 0 and obj.speed_mps >= 0
            assert abs(obj.x_m) <= 151 and abs(obj.y_m) <= 151
    expected = {RoadUserType.CAR, RoadUserType.TRUCK, RoadUserType.BUS, RoadUserType.BICYCLE, RoadUserType.PEDESTRIAN}
    assert expected <= seen


def test_ground_centre_is_half_a_length_behind_the_front_bumper(open_world: WorldFactory) -> None:
    world = open_world()
    world.run_until(30.0)  # all red: vehicles queue on the approaches, heading straight in
    trucks_and_cars = [o for o in world.ground_truth() if o.lane_id in NORTH_SOUTH_LANES | EAST_WEST_LANES]
    assert trucks_and_cars
    for obj in trucks_and_cars:
        cx, cy = obj.ground_center_m
        if obj.lane_id.startswith("N2C"):  # heading south: the centre lies north of the front
            assert (cx, cy) == pytest.approx((obj.x_m, obj.y_m + obj.length_m / 2), abs=0.05)
        if obj.lane_id.startswith("E2C"):  # heading west: the centre lies east of the front
            assert (cx, cy) == pytest.approx((obj.x_m + obj.length_m / 2, obj.y_m), abs=0.05)


def test_sumos_own_program_never_drives_the_lights(open_world: WorldFactory) -> None:
    world = open_world()
    assert world.api.trafficlight.getRedYellowGreenState("C") == ALL_RED
    world.run_until(60.0)  # SUMO's built-in program would have switched several times by now
    assert world.api.trafficlight.getRedYellowGreenState("C") == ALL_RED
    assert all(not crossing.signal_state.isupper() for crossing in world.drain_stop_line_crossings())


def test_holding_north_south_red_lets_only_red_light_runners_cross(
    open_world: WorldFactory, sample_site: SiteConfig
) -> None:
    world = open_world()
    # The side street's through stage with its pedestrians, the main street red, for 120 s.
    world.apply_signals(group_states(sample_site, green=["4", "8", "p_north", "p_south"]))
    world.run_until(120.0)
    crossings = world.drain_stop_line_crossings()
    north_south = [c for c in crossings if c.from_lane in NORTH_SOUTH_LANES]
    assert all(c.type_id == RED_RUNNER_TYPE and c.on_red for c in north_south)
    assert sum(c.from_lane in EAST_WEST_LANES for c in crossings) > 5  # the side street moved
    waiting = [o for o in world.ground_truth() if o.lane_id in NORTH_SOUTH_LANES and o.speed_mps < 0.1]
    assert len(waiting) > 10  # the main street queued at its red


def test_a_simple_alternating_plan_serves_traffic_with_sane_statistics(open_world: WorldFactory) -> None:
    world = open_world()
    FixedTimeDriver(world.site).run_until(world, 600.0)
    stats = world.statistics()
    assert stats.time_s == pytest.approx(600.0)
    assert stats.vehicles_departed > 150
    assert stats.vehicles_arrived > 0.8 * stats.vehicles_departed
    assert stats.vehicles_running == stats.vehicles_departed - stats.vehicles_arrived
    assert 5.0 < stats.mean_delay_s < 90.0
    assert stats.persons_departed > 20 and stats.persons_arrived > 10
    assert stats.collisions == 0
    assert stats.teleports == 0
    assert stats.red_light_runners <= 5
    crossings = world.drain_stop_line_crossings()
    # Right turns enter on 'g' beside a walking crosswalk; nobody but runners enters on red.
    assert {c.signal_state for c in crossings} <= {"G", "g", "y", "r"}
    assert any(c.signal_state == "g" for c in crossings)
    assert all(c.type_id == RED_RUNNER_TYPE for c in crossings if c.on_red)


def test_demand_scale_scales_the_traffic(open_world: WorldFactory, sample_site: SiteConfig) -> None:
    departed = {}
    for scale in (0.5, 2.0):
        world = open_world(site=_with_demand_scale(sample_site, scale))
        FixedTimeDriver(world.site).run_until(world, 300.0)
        departed[scale] = world.statistics().vehicles_departed + world.statistics().persons_departed
        world.close()
    assert departed[2.0] > 2.5 * departed[0.5]


def test_the_same_seed_replays_the_same_world(open_world: WorldFactory) -> None:
    snapshots = []
    for _ in range(2):
        world = open_world(seed=5)
        FixedTimeDriver(world.site).run_until(world, 120.0)
        snapshots.append(sorted((o.object_id, round(o.x_m, 6), round(o.y_m, 6)) for o in world.ground_truth()))
        world.close()
    assert snapshots[0] == snapshots[1]


def test_traci_gives_the_same_world_as_libsumo(open_world: WorldFactory) -> None:
    snapshots = []
    for use_traci in (False, True):
        world = open_world(use_traci=use_traci)
        FixedTimeDriver(world.site).run_until(world, 60.0)
        snapshots.append(sorted((o.object_id, round(o.x_m, 3), round(o.y_m, 3)) for o in world.ground_truth()))
        world.close()
    assert snapshots[0] == snapshots[1]
    assert snapshots[0]


def test_only_one_libsumo_world_at_a_time(open_world: WorldFactory) -> None:
    world = open_world()
    with pytest.raises(RuntimeError, match="one simulation per process"):
        SumoWorld(world.site, SAMPLE_SITE)
    world.close()
    open_world().close()  # a closed world frees the process for the next one
