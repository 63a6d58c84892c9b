"""The simulated world: SUMO in-process (libsumo) or over TraCI, lit only by our signal heads.

``SumoWorld`` loads the site's network and demand, advances in ``simulation.step_s`` steps and
gives the ground truth of every road user. SUMO's own traffic-light program never drives the
lights: the heads start all red and the world re-shows the last applied signal-group states every
step. Statistics (served vehicles, delay, collisions, red-light runners, jaywalkers) are counted
as the simulation runs.

libsumo runs one simulation per process: close a world (or use it as a context manager) before
opening the next one.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import traci.constants as tc

from rsu.sim.demand import CROSSING_ON_RED_TYPE, JAYWALKER_TYPE
from rsu.sim.network import sumo_tool
from rsu.sim.truth import TruthObject
from rsu_contracts.config.load import resolve_relative
from rsu_contracts.config.model import SiteConfig
from rsu_contracts.enums import RoadUserType
from rsu_contracts.messages.signal import SignalGroupState
from signal_control.backends.sumo import SumoSignalHeads

# SUMO vehicle classes -> the road-user classes the unit reports.
ROAD_USER_OF_VCLASS: dict[str, RoadUserType] = {
    "passenger": RoadUserType.CAR,
    "private": RoadUserType.CAR,
    "taxi": RoadUserType.CAR,
    "evehicle": RoadUserType.CAR,
    "emergency": RoadUserType.CAR,
    "delivery": RoadUserType.CAR,
    "truck": RoadUserType.TRUCK,
    "trailer": RoadUserType.TRUCK,
    "bus": RoadUserType.BUS,
    "coach": RoadUserType.BUS,
    "bicycle": RoadUserType.BICYCLE,
    "motorcycle": RoadUserType.MOTORCYCLE,
    "moped": RoadUserType.MOTORCYCLE,
    "pedestrian": RoadUserType.PEDESTRIAN,
}

_VEHICLE_VARIABLES = (
    tc.VAR_POSITION,
    tc.VAR_SPEED,
    tc.VAR_ANGLE,
    tc.VAR_LANE_ID,
    tc.VAR_LANEPOSITION,
    tc.VAR_TIMELOSS,
)
_PERSON_VARIABLES = (tc.VAR_POSITION, tc.VAR_SPEED, tc.VAR_ANGLE, tc.VAR_ROAD_ID)
# Link states in which entering the junction is a red-light violation.
_RED_STATES = frozenset("ru")
_OPEN_STATES = frozenset("GgyoO")
_MAX_KEPT_CROSSINGS = 100_000
# Jaywalkers: after standing this long at a red crossing they look for a gap in the conflicting
# traffic; a gap is no vehicle on a conflicting, non-red link within this time or distance.
JAYWALKER_PATIENCE_S = 4.0
JAYWALKER_GAP_S = 8.0
JAYWALKER_GAP_M = 15.0
_next_traci_label = itertools.count()


def _edge_of(lane_id: str) -> str:
    return lane_id.rsplit("_", 1)[0]


@dataclass(frozen=True)
class StopLineCrossing:
    """A vehicle leaving a signalised lane into the junction, with the light it had."""

    time_s: float
    vehicle_id: str
    type_id: str
    from_lane: str
    link_index: int
    signal_state: str  # SUMO link state while it crossed ('G', 'g', 'y', 'r', ...)

    @property
    def on_red(self) -> bool:
        return self.signal_state in _RED_STATES


@dataclass(frozen=True)
class WorldStatistics:
    time_s: float
    vehicles_departed: int
    vehicles_arrived: int  # served: left the network at the end of an exit leg
    vehicles_running: int
    mean_delay_s: float  # mean SUMO timeLoss of the arrived vehicles
    persons_departed: int
    persons_arrived: int
    collisions: int  # SUMO's collision count: no safety measure, see GUIDE
    teleports: int  # SUMO moved a vehicle stuck for --time-to-teleport (300 s): a sign of gridlock
    red_light_runners: int  # vehicles that entered the junction on red or red-yellow
    jaywalkers: int  # pedestrians that stepped onto a crossing showing red


@dataclass
class _Tracked:
    type_id: str
    road_user: RoadUserType
    length_m: float
    width_m: float
    lane_id: str = ""
    time_loss_s: float = 0.0


class SumoWorld:
    _libsumo_open = False

    def __init__(
        self,
        site: SiteConfig,
        site_path: str | Path,
        seed: int = 42,
        use_traci: bool = False,
        *,
        routes: str | Path | None = None,
        extra_options: Sequence[str] = (),
    ) -> None:
        """Start SUMO on the site's network and routes.

        ``routes`` replaces the site's route file; ``extra_options`` are SUMO options given as
        separate items (``["--no-warnings", "false"]``) and replace the world's defaults.
        """
        self.site = site
        simulation = site.simulation
        self.step_s = simulation.step_s
        self.traffic_light_id = simulation.traffic_light_id
        self.network_file = resolve_relative(site_path, simulation.network)
        self.routes_file = Path(routes) if routes is not None else resolve_relative(site_path, simulation.routes)
        for path in (self.network_file, self.routes_file):
            if not path.is_file():
                raise FileNotFoundError(f"simulation file not found: {path}")
        options = {
            "--net-file": str(self.network_file),
            "--route-files": str(self.routes_file),
            "--step-length": f"{self.step_s:g}",
            "--seed": str(seed),
            "--scale": f"{simulation.demand_scale:g}",
            "--no-step-log": "true",
            "--no-warnings": "true",
            "--collision.check-junctions": "true",
            # A collision is a physical overlap, not a gap below minGap.
            "--collision.mingap-factor": "0",
        }
        # SUMO refuses an option given twice: extra options replace the defaults.
        overridden = set(extra_options)
        command = [sumo_tool("sumo")]
        for name, value in options.items():
            if name not in overridden:
                command += [name, value]
        command += list(extra_options)
        self._use_traci = use_traci
        self._api: Any
        if use_traci:
            import traci

            label = f"rsu-world-{next(_next_traci_label)}"
            traci.start(command, label=label)
            self._api = traci.getConnection(label)
        else:
            if SumoWorld._libsumo_open:
                raise RuntimeError("libsumo runs one simulation per process: close the other SumoWorld first")
            import libsumo

            libsumo.start(command)
            SumoWorld._libsumo_open = True
            self._api = libsumo
        self._closed = False
        try:
            self.signal_heads = SumoSignalHeads.from_network(
                self.traffic_light_id, site, self._api.trafficlight, self.network_file
            )
            self.signal_heads.all_red()
        except Exception:
            self.close()
            raise
        self._index_links()
        self._vehicles: dict[str, _Tracked] = {}
        self._persons: dict[str, _Tracked] = {}
        self._person_roads: dict[str, str] = {}
        self._vehicle_results: dict[str, dict[int, Any]] = {}
        self._person_results: dict[str, dict[int, Any]] = {}
        self._crossings: deque[StopLineCrossing] = deque(maxlen=_MAX_KEPT_CROSSINGS)
        self._departed = 0
        self._arrived = 0
        self._time_loss_sum_s = 0.0
        self._persons_departed = 0
        self._persons_arrived = 0
        self._collision_pairs: set[tuple[str, str]] = set()
        self._teleports = 0
        self._jaywalk_enabled = CROSSING_ON_RED_TYPE in self._api.vehicletype.getIDList()
        self._crossing_on_red: set[str] = set()
        self._red_runners: set[str] = set()
        self._jaywalkers: set[str] = set()
        self._lane_lengths: dict[str, float] = {}
        self._time_s = float(self._api.simulation.getTime())

    def _index_links(self) -> None:
        """Lookups from what a road user is on to the controlled link it uses."""
        facts = self.signal_heads.link_facts
        self._link_of_via = dict(facts.link_of_internal_lane)
        self._link_of_turn: dict[tuple[str, str], int] = {}
        self._link_of_crossing_edge: dict[str, int] = {}
        vehicle_links = {link.index: link for link in self.signal_heads.links if not link.is_crossing}
        for link in self.signal_heads.links:
            if link.is_crossing:
                self._link_of_crossing_edge[_edge_of(link.to_lane)] = link.index
            else:
                self._link_of_turn[(link.from_lane, _edge_of(link.to_lane))] = link.index
        self._controlled_lanes = {from_lane for from_lane, _ in self._link_of_turn}
        # Crossing edge -> the vehicle links that cross it: what a jaywalker looks out for.
        self._crossing_foes = {
            edge: [vehicle_links[foe] for foe in sorted(facts.foes.get(index, ())) if foe in vehicle_links]
            for edge, index in self._link_of_crossing_edge.items()
        }
        self._internal_lanes_of_link: dict[int, list[str]] = {}
        for lane, index in facts.link_of_internal_lane.items():
            self._internal_lanes_of_link.setdefault(index, []).append(lane)

    # --- running ------------------------------------------------------------------------------

    @property
    def api(self) -> Any:
        """The libsumo module (or TraCI connection) driving this world, for read-only inspection."""
        return self._api

    @property
    def time_s(self) -> float:
        return self._time_s

    def apply_signals(self, groups: Sequence[SignalGroupState]) -> None:
        """Show these signal-group states from now on (ConflictingGreensError: all red, raised)."""
        self.signal_heads.apply(groups)

    def step(self) -> float:
        """Advance one step of ``simulation.step_s``; returns the simulation time in seconds."""
        self.signal_heads.reassert()
        state_while_moving = self.signal_heads.state
        self._api.simulationStep()
        self._time_s = float(self._api.simulation.getTime())
        simulation = self._api.simulation
        for collision in simulation.getCollisions():
            # A collision between pedestrians and vehicles persists over steps: count it once.
            self._collision_pairs.add((collision.collider, collision.victim))
        self._track_vehicles(state_while_moving)
        self._track_persons(state_while_moving)
        if self._jaywalk_enabled:
            self._let_jaywalkers_cross()
        return self._time_s

    def run_until(self, time_s: float) -> float:
        while self._time_s < time_s - 1e-9:
            self.step()
        return self._time_s

    def _track_vehicles(self, state: str) -> None:
        vehicle = self._api.vehicle
        for vehicle_id in self._api.simulation.getArrivedIDList():
            tracked = self._vehicles.pop(vehicle_id, None)
            if tracked is not None:
                self._arrived += 1
                self._time_loss_sum_s += tracked.time_loss_s
        for vehicle_id in self._api.simulation.getDepartedIDList():
            vehicle.subscribe(vehicle_id, _VEHICLE_VARIABLES)
            vehicle_class = vehicle.getVehicleClass(vehicle_id)
            self._vehicles[vehicle_id] = _Tracked(
                type_id=vehicle.getTypeID(vehicle_id),
                road_user=ROAD_USER_OF_VCLASS.get(vehicle_class, RoadUserType.CAR),
                length_m=vehicle.getLength(vehicle_id),
                width_m=vehicle.getWidth(vehicle_id),
            )
            self._departed += 1
        for vehicle_id in self._api.simulation.getStartingTeleportIDList():
            self._teleports += 1
            tracked = self._vehicles.get(vehicle_id)
            if tracked is not None:
                tracked.lane_id = ""  # reappearing further on is no stop-line crossing
        self._vehicle_results = vehicle.getAllSubscriptionResults()
        for vehicle_id, values in self._vehicle_results.items():
            tracked = self._vehicles.get(vehicle_id)
            if tracked is None:
                continue
            lane = values[tc.VAR_LANE_ID]
            tracked.time_loss_s = values[tc.VAR_TIMELOSS]
            previous = tracked.lane_id
            tracked.lane_id = lane
            if lane != previous and previous in self._controlled_lanes:
                self._record_stop_line_crossing(vehicle_id, tracked, previous, lane, state)

    def _record_stop_line_crossing(
        self, vehicle_id: str, tracked: _Tracked, from_lane: str, lane: str, state: str
    ) -> None:
        link_index = self._link_of_via.get(lane)
        if link_index is None:
            link_index = self._link_of_turn.get((from_lane, _edge_of(lane)))
        if link_index is None:
            return  # a lane change on the approach, not a crossing
        crossing = StopLineCrossing(self._time_s, vehicle_id, tracked.type_id, from_lane, link_index, state[link_index])
        self._crossings.append(crossing)
        if crossing.on_red:
            self._red_runners.add(vehicle_id)

    def _track_persons(self, state: str) -> None:
        person = self._api.person
        simulation = self._api.simulation
        for person_id in simulation.getArrivedPersonIDList():
            if self._persons.pop(person_id, None) is not None:
                self._persons_arrived += 1
            self._person_roads.pop(person_id, None)
            self._crossing_on_red.discard(person_id)
        for person_id in simulation.getDepartedPersonIDList():
            person.subscribe(person_id, _PERSON_VARIABLES)
            self._persons[person_id] = _Tracked(
                type_id=person.getTypeID(person_id),
                road_user=RoadUserType.PEDESTRIAN,
                length_m=person.getLength(person_id),
                width_m=person.getWidth(person_id),
            )
            self._persons_departed += 1
        self._person_results = person.getAllSubscriptionResults()
        for person_id, values in self._person_results.items():
            road = values[tc.VAR_ROAD_ID]
            previous = self._person_roads.get(person_id)
            self._person_roads[person_id] = road
            if road != previous and road in self._link_of_crossing_edge:
                if state[self._link_of_crossing_edge[road]] in _RED_STATES:
                    self._jaywalkers.add(person_id)
                if person_id in self._crossing_on_red:
                    # On the crossing now: obey the next red again until the next gap.
                    self._crossing_on_red.discard(person_id)
                    person.setType(person_id, JAYWALKER_TYPE)

    def _let_jaywalkers_cross(self) -> None:
        """Jaywalkers waiting at a red crossing step out when the conflicting traffic leaves a gap.

        SUMO lets a pedestrian with a large jmDriveAfterRedTime walk against red, but without
        looking at the traffic (a signalised crossing has no foes to yield to). So jaywalkers wait
        as ordinary pedestrians and the world switches one to the red-ignoring type only while
        the conflicting links are red or free.
        """
        person = self._api.person
        state = self.signal_heads.state
        vehicles_on_lane: dict[str, list[tuple[float, float]]] | None = None
        for person_id, values in self._person_results.items():
            tracked = self._persons.get(person_id)
            if tracked is None or tracked.type_id != JAYWALKER_TYPE:
                continue
            road = values[tc.VAR_ROAD_ID]
            if not road.startswith(":") or values[tc.VAR_SPEED] > 0.1:
                self._stop_crossing_on_red(person_id)
                continue
            crossing = person.getNextEdge(person_id)
            link_index = self._link_of_crossing_edge.get(crossing)
            if link_index is None or state[link_index] not in _RED_STATES:
                self._stop_crossing_on_red(person_id)
                continue
            if person.getWaitingTime(person_id) < JAYWALKER_PATIENCE_S:
                continue
            if vehicles_on_lane is None:
                vehicles_on_lane = self._vehicles_by_lane()
            if self._gap_at(crossing, state, vehicles_on_lane):
                if person_id not in self._crossing_on_red:
                    self._crossing_on_red.add(person_id)
                    person.setType(person_id, CROSSING_ON_RED_TYPE)
            else:
                self._stop_crossing_on_red(person_id)

    def _stop_crossing_on_red(self, person_id: str) -> None:
        if person_id in self._crossing_on_red:
            self._crossing_on_red.discard(person_id)
            self._api.person.setType(person_id, JAYWALKER_TYPE)

    def _vehicles_by_lane(self) -> dict[str, list[tuple[float, float]]]:
        """Lane -> (distance to the lane end, speed) of every vehicle on it."""
        by_lane: dict[str, list[tuple[float, float]]] = {}
        for values in self._vehicle_results.values():
            lane = values[tc.VAR_LANE_ID]
            length = self._lane_lengths.get(lane)
            if length is None:
                length = self._lane_lengths[lane] = float(self._api.lane.getLength(lane))
            by_lane.setdefault(lane, []).append((length - values[tc.VAR_LANEPOSITION], values[tc.VAR_SPEED]))
        return by_lane

    def _gap_at(self, crossing: str, state: str, vehicles_on_lane: dict[str, list[tuple[float, float]]]) -> bool:
        for link in self._crossing_foes.get(crossing, ()):
            if any(vehicles_on_lane.get(lane) for lane in self._internal_lanes_of_link.get(link.index, ())):
                return False  # a vehicle is already in the junction on this path
            if state[link.index] not in _OPEN_STATES:
                continue
            for distance, speed in vehicles_on_lane.get(link.from_lane, ()):
                if distance < JAYWALKER_GAP_M or distance < speed * JAYWALKER_GAP_S:
                    return False
        return True

    # --- reading ------------------------------------------------------------------------------

    def ground_truth(self) -> list[TruthObject]:
        """Every vehicle and pedestrian in the network at the current time."""
        objects: list[TruthObject] = []
        for results, tracked_by_id, lane_key in (
            (self._vehicle_results, self._vehicles, tc.VAR_LANE_ID),
            (self._person_results, self._persons, tc.VAR_ROAD_ID),
        ):
            for object_id, values in results.items():
                tracked = tracked_by_id.get(object_id)
                if tracked is None or not values[lane_key]:
                    continue  # unknown, or teleporting (off the network for now)
                x, y = values[tc.VAR_POSITION]
                objects.append(
                    TruthObject(
                        object_id=object_id,
                        road_user=tracked.road_user,
                        x_m=x,
                        y_m=y,
                        speed_mps=values[tc.VAR_SPEED],
                        heading_deg=values[tc.VAR_ANGLE],
                        length_m=tracked.length_m,
                        width_m=tracked.width_m,
                        type_id=tracked.type_id,
                        lane_id=values[lane_key],
                    )
                )
        return objects

    def drain_stop_line_crossings(self) -> list[StopLineCrossing]:
        """Stop-line crossings since the last call (oldest first)."""
        crossings = list(self._crossings)
        self._crossings.clear()
        return crossings

    def statistics(self) -> WorldStatistics:
        return WorldStatistics(
            time_s=self._time_s,
            vehicles_departed=self._departed,
            vehicles_arrived=self._arrived,
            vehicles_running=len(self._vehicles),
            mean_delay_s=self._time_loss_sum_s / self._arrived if self._arrived else 0.0,
            persons_departed=self._persons_departed,
            persons_arrived=self._persons_arrived,
            collisions=len(self._collision_pairs),
            teleports=self._teleports,
            red_light_runners=len(self._red_runners),
            jaywalkers=len(self._jaywalkers),
        )

    # --- lifetime -----------------------------------------------------------------------------

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._api.close()
        finally:
            if not self._use_traci:
                SumoWorld._libsumo_open = False

    def __enter__(self) -> SumoWorld:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
