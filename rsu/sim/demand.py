"""Traffic demand for the sample junction: a deterministic SUMO route file from a seed.

Vehicles arrive per approach as Poisson streams (main street N-S heavier than the side street),
turn left / right / through with fixed shares and are cars, trucks, motorcycles or bicycles
(riding on the road); buses go straight through on a timetable. Pedestrians walk from one
corner footway to another over one or two crosswalks. A few cars run red lights and a few
pedestrians cross against the red:

* red-light runners: vType ``car_red_runner`` with ``jmDriveAfterYellowTime`` (keeps going through
  the whole yellow instead of stopping) and ``jmDriveAfterRedTime`` (still enters during the first
  seconds of red). SUMO applies both per link, so they only violate around the onset of red.
* jaywalkers: vType ``pedestrian_jaywalker``. SUMO's striping model walks a pedestrian against a
  red younger than its ``jmDriveAfterRedTime``, but without looking at the traffic (a signalised
  crossing has no foes to yield to). So jaywalkers wait like everyone else and the world
  (rsu.sim.world) switches one to ``pedestrian_crossing_on_red`` (jmDriveAfterRedTime=3600) only
  after some patience and while the conflicting traffic leaves a gap.

    python -m rsu.sim.demand [--seed 42] [--duration 3600] [--scale 1.0] [OUTPUT]
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rsu.samples import SAMPLE_SITE

DEFAULT_ROUTES = SAMPLE_SITE.parent / "sumo" / "demand.rou.xml"

# Vehicles per hour entering on each approach at scale 1 (moderate: about half of capacity).
APPROACH_VEHICLES_PER_HOUR = {"N": 420.0, "S": 420.0, "E": 220.0, "W": 220.0}
TURN_SHARES = {"left": 0.20, "through": 0.65, "right": 0.15}
# Share of each vehicle type among the road vehicles that arrive at random.
VEHICLE_TYPE_SHARES = {
    "car": 0.82,
    "car_red_runner": 0.05,
    "truck": 0.05,
    "motorcycle": 0.03,
    "bicycle": 0.05,
}
# Buses run straight through on a timetable: headway per approach at scale 1, and the first bus
# of each line comes within this time, so a few minutes of simulation always show one.
BUS_HEADWAY_S = {"N": 480.0, "S": 480.0, "E": 900.0, "W": 900.0}
FIRST_BUS_WITHIN_S = 240.0
# Pedestrians per hour walking between two corners (both directions together) at scale 1.
CORNER_PAIR_PEDESTRIANS_PER_HOUR = {
    ("nw", "ne"): 60.0,  # over the north leg (main street)
    ("sw", "se"): 60.0,  # over the south leg (main street)
    ("ne", "se"): 40.0,  # over the east leg (side street)
    ("nw", "sw"): 40.0,  # over the west leg (side street)
    ("ne", "sw"): 10.0,  # diagonal: two crosswalks
    ("nw", "se"): 10.0,
}
JAYWALKER_SHARE = 0.08
# Jaywalkers obey the red until the world sees a gap in the traffic, then switch them to the
# red-ignoring type for the moment they step out (see rsu.sim.world).
JAYWALKER_TYPE = "pedestrian_jaywalker"
CROSSING_ON_RED_TYPE = "pedestrian_crossing_on_red"

# Exit edge per approach and movement (right-hand traffic).
_DESTINATIONS = {
    "N": {"left": "C2E", "through": "C2S", "right": "C2W"},
    "S": {"left": "C2W", "through": "C2N", "right": "C2E"},
    "E": {"left": "C2S", "through": "C2W", "right": "C2N"},
    "W": {"left": "C2N", "through": "C2E", "right": "C2S"},
}

VEHICLE_TYPES_XML = """\
    <!-- vClass decides the road-user class seen by the world: passenger=car, truck, bus, motorcycle, bicycle. -->
    <vType id="car" vClass="passenger" length="4.60" width="1.80" minGap="2.50" accel="2.6" decel="4.5"
           sigma="0.5" speedDev="0.1"/>
    <vType id="car_red_runner" vClass="passenger" length="4.60" width="1.80" minGap="2.00" accel="3.0"
           decel="4.5" sigma="0.5" speedFactor="1.1" speedDev="0.1"
           jmDriveAfterYellowTime="10" jmDriveAfterRedTime="3"/>
    <vType id="truck" vClass="truck" length="10.00" width="2.50" minGap="3.00" accel="1.3" decel="4.0"
           sigma="0.5" speedDev="0.05"/>
    <vType id="bus" vClass="bus" length="12.00" width="2.55" minGap="3.00" accel="1.2" decel="4.0"
           sigma="0.5" speedDev="0.05"/>
    <vType id="motorcycle" vClass="motorcycle" length="2.20" width="0.90" minGap="2.00" accel="4.0"
           decel="7.0" sigma="0.5" speedDev="0.1"/>
    <vType id="bicycle" vClass="bicycle" length="1.80" width="0.65" minGap="1.00" maxSpeed="6.0"
           accel="1.2" decel="3.0" sigma="0.5" speedDev="0.2"/>
    <vType id="pedestrian" vClass="pedestrian" width="0.50" length="0.30" speedDev="0.15"/>
    <vType id="pedestrian_jaywalker" vClass="pedestrian" width="0.50" length="0.30" speedDev="0.15"/>
    <!-- Walks against any red younger than an hour: set by the world only while there is a gap. -->
    <vType id="pedestrian_crossing_on_red" vClass="pedestrian" width="0.50" length="0.30" speedDev="0.15"
           jmDriveAfterRedTime="3600"/>
"""


@dataclass(frozen=True)
class _Departure:
    time_s: float
    xml: str


def _poisson_times(rng: np.random.Generator, rate_per_hour: float, duration_s: float) -> list[float]:
    """Arrival times of a Poisson process (exponential headways) in [0, duration_s)."""
    if rate_per_hour <= 0:
        return []
    mean_headway_s = 3600.0 / rate_per_hour
    times: list[float] = []
    t = float(rng.exponential(mean_headway_s))
    while t < duration_s:
        times.append(t)
        t += float(rng.exponential(mean_headway_s))
    return times


def _vehicle_departures(rng: np.random.Generator, duration_s: float, scale: float) -> list[_Departure]:
    movements = list(TURN_SHARES)
    turn_p = np.array(list(TURN_SHARES.values()))
    types = list(VEHICLE_TYPE_SHARES)
    type_p = np.array(list(VEHICLE_TYPE_SHARES.values()))
    departures: list[_Departure] = []
    for approach, rate in APPROACH_VEHICLES_PER_HOUR.items():
        for index, time_s in enumerate(_poisson_times(rng, rate * scale, duration_s)):
            movement = movements[int(rng.choice(len(movements), p=turn_p / turn_p.sum()))]
            vehicle_type = types[int(rng.choice(len(types), p=type_p / type_p.sum()))]
            vehicle_id = f"{approach}_{movement}_{vehicle_type}_{index}"
            xml = (
                f'    <vehicle id="{vehicle_id}" type="{vehicle_type}" route="{approach}_{movement}" '
                f'depart="{time_s:.2f}" departLane="best" departPos="base" departSpeed="max"/>\n'
            )
            departures.append(_Departure(time_s, xml))
    for approach, headway_s in BUS_HEADWAY_S.items():
        headway_s /= scale
        time_s = float(rng.uniform(0.0, min(headway_s, FIRST_BUS_WITHIN_S)))
        index = 0
        while time_s < duration_s:
            xml = (
                f'    <vehicle id="{approach}_through_bus_{index}" type="bus" route="{approach}_through" '
                f'depart="{time_s:.2f}" departLane="best" departPos="base" departSpeed="max"/>\n'
            )
            departures.append(_Departure(time_s, xml))
            time_s += headway_s
            index += 1
    return departures


def _pedestrian_departures(rng: np.random.Generator, duration_s: float, scale: float) -> list[_Departure]:
    departures: list[_Departure] = []
    for (a, b), rate in CORNER_PAIR_PEDESTRIANS_PER_HOUR.items():
        for index, time_s in enumerate(_poisson_times(rng, rate * scale, duration_s)):
            origin, destination = (a, b) if rng.random() < 0.5 else (b, a)
            person_type = JAYWALKER_TYPE if rng.random() < JAYWALKER_SHARE else "pedestrian"
            person_id = f"ped_{origin}_{destination}_{index}"
            # Footways run from their far corner towards C: position 0 is the far end.
            xml = (
                f'    <person id="{person_id}" type="{person_type}" depart="{time_s:.2f}" departPos="0">\n'
                f'        <walk from="footway_{origin}" to="footway_{destination}" arrivalPos="0"/>\n'
                f"    </person>\n"
            )
            departures.append(_Departure(time_s, xml))
    return departures


def write_demand(path: str | Path, seed: int = 42, duration_s: float = 3600.0, scale: float = 1.0) -> Path:
    """Write a SUMO route file with vehicles and pedestrians; the same seed gives the same file."""
    if duration_s <= 0 or scale <= 0:
        raise ValueError("duration_s and scale must be positive")
    path = Path(path)
    rng = np.random.default_rng(seed)
    departures = _vehicle_departures(rng, duration_s, scale) + _pedestrian_departures(rng, duration_s, scale)
    # SUMO reads departures in file order; a stable sort keeps equal times deterministic.
    departures.sort(key=lambda departure: departure.time_s)
    routes = "".join(
        f'    <route id="{approach}_{movement}" edges="{approach}2C {exit_edge}"/>\n'
        for approach, exits in _DESTINATIONS.items()
        for movement, exit_edge in exits.items()
    )
    header = f"seed={seed} duration_s={duration_s:g} scale={scale:g}; written by rsu.sim.demand"
    text = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<!-- {header} -->\n"
        f"<routes>\n{VEHICLE_TYPES_XML}{routes}" + "".join(departure.xml for departure in departures) + "</routes>\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the deterministic SUMO demand of the sample junction.")
    parser.add_argument("output", nargs="?", type=Path, default=DEFAULT_ROUTES)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--duration", type=float, default=3600.0, help="seconds of demand")
    parser.add_argument("--scale", type=float, default=1.0, help="demand multiplier")
    args = parser.parse_args(argv)
    written = write_demand(args.output, args.seed, args.duration, args.scale)
    print(f"wrote {written}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
