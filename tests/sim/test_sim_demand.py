"""The demand generator: deterministic, scalable, with the mix of road users the world needs."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import pytest

from rsu.sim import demand

pytestmark = pytest.mark.sumo


def _read(path: Path) -> tuple[list[ET.Element], list[ET.Element], dict[str, ET.Element]]:
    root = ET.parse(path).getroot()
    types = {v.get("id", ""): v for v in root.iter("vType")}
    return list(root.iter("vehicle")), list(root.iter("person")), types


@pytest.fixture(scope="module")
def hour_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demand.write_demand(tmp_path_factory.mktemp("demand") / "hour.rou.xml", seed=7, duration_s=3600)


def test_the_same_seed_writes_the_same_file_and_another_seed_does_not(tmp_path: Path) -> None:
    a = demand.write_demand(tmp_path / "a.rou.xml", seed=3, duration_s=600).read_bytes()
    b = demand.write_demand(tmp_path / "b.rou.xml", seed=3, duration_s=600).read_bytes()
    c = demand.write_demand(tmp_path / "c.rou.xml", seed=4, duration_s=600).read_bytes()
    assert a == b
    assert a != c


def test_the_committed_default_demand_is_seed_42_for_one_hour(tmp_path: Path) -> None:
    fresh = demand.write_demand(tmp_path / "default.rou.xml", seed=42, duration_s=3600, scale=1.0)
    assert fresh.read_text() == demand.DEFAULT_ROUTES.read_text()


def test_departures_are_sorted_and_within_the_duration(hour_file: Path) -> None:
    times = [float(t) for t in re.findall(r'depart="([0-9.]+)"', hour_file.read_text())]
    assert times == sorted(times)
    assert times[0] >= 0 and times[-1] < 3600


def test_mix_of_road_users_turns_and_approaches(hour_file: Path) -> None:
    vehicles, persons, types = _read(hour_file)
    vehicle_types = Counter(v.get("type") for v in vehicles)
    for name in ("car", "car_red_runner", "truck", "bus", "motorcycle", "bicycle"):
        assert vehicle_types[name] > 0, name
    assert {types[str(name)].get("vClass") for name in vehicle_types} == {
        "passenger", "truck", "bus", "motorcycle", "bicycle"
    }  # fmt: skip
    # Red-light runners are a few percent of the cars.
    runner_share = vehicle_types["car_red_runner"] / (vehicle_types["car"] + vehicle_types["car_red_runner"])
    assert 0.01 < runner_share < 0.08
    assert float(types["car_red_runner"].get("jmDriveAfterRedTime", "0")) > 0
    # Main street heavier than the side street.
    approaches = Counter(v.get("route", "")[0] for v in vehicles)
    assert approaches["N"] + approaches["S"] > 1.5 * (approaches["E"] + approaches["W"])
    # About 20 % left and 15 % right (buses only go straight).
    turns = Counter(v.get("route", "").split("_")[1] for v in vehicles)
    total = sum(turns.values())
    assert turns["left"] / total == pytest.approx(0.20, abs=0.04)
    assert turns["right"] / total == pytest.approx(0.15, abs=0.04)
    # Pedestrians walk between corner footways; some of them are jaywalkers.
    person_types = Counter(p.get("type") for p in persons)
    assert person_types["pedestrian"] > 100
    assert person_types[demand.JAYWALKER_TYPE] > 0
    assert demand.CROSSING_ON_RED_TYPE in types
    for person in persons:
        (walk,) = person.iter("walk")
        assert walk.get("from", "").startswith("footway_") and walk.get("to", "").startswith("footway_")
        assert walk.get("from") != walk.get("to")


def test_demand_scales(tmp_path: Path) -> None:
    one = _read(demand.write_demand(tmp_path / "one.rou.xml", seed=11, duration_s=3600, scale=1.0))
    two = _read(demand.write_demand(tmp_path / "two.rou.xml", seed=11, duration_s=3600, scale=2.0))
    assert len(two[0]) == pytest.approx(2 * len(one[0]), rel=0.1)
    assert len(two[1]) == pytest.approx(2 * len(one[1]), rel=0.2)
