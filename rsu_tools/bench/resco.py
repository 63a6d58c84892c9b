"""`rsu bench cologne`: the RESCO benchmark's cologne1 junction, run as RESCO runs it.

RESCO (Ault & Sharon, NeurIPS 2021 Datasets and Benchmarks; github.com/Pi-Star-Lab/RESCO at
fc65e91) runs ``cologne1.sumocfg`` from 25200 to 28800 s with ``--time-to-teleport -1
--tripinfo-output.write-unfinished`` and SUMO's default 1 s step, ends exactly at 28800 s (no
run-out), and scores a run by its mean delay: the mean over every tripinfo entry of ``timeLoss +
departDelay`` (unfinished vehicles with their partial time loss; its penalty for vehicles never
inserted only counts ``<vehicle>`` route entries, and cologne1's demand is ``<trip>`` entries, so it
adds nothing). RESCO starts SUMO with ``--random``; here ``--seed N`` instead, so that a run can be
repeated (each seed in a fresh process: libsumo does not repeat a seed within one process).

Programs, each on the same demand, options and seed:

* ``fixed``: the network's own static program (its 5 s yellows, no all-red);
* ``actuated`` / ``delay_based``: SUMO's controllers over the same eight phases (main greens
  10-50 s, lefts 5-20 s, the network's 5 s yellows);
* ``max_pressure`` / ``greedy``: ports of RESCO's MAXPRESSURE and MAXWAVE agents (decision every
  10 s over the program's four green phases, 3 s yellow built as RESCO's ``create_yellows`` does,
  no all-red, RESCO's lane sets and phase pairs for cologne1, its observation ranges 200 m / 50 m);
* ``unit:<strategy>``: the unit's SignalController on the site imported from the network
  (``rsu_tools.site_builders.sumo_net``), with its ITE clearances, fed per site lane what a camera
  sees from SUMO's vehicles (no detectors, see ``camera_view``) and shown on the exact links of its
  signal groups. The site is used as imported: a shared lane's view calls the group of its through
  movement, so the lefts and U-turns of cologne1's shared lanes turn permissively (SUMO's minor
  green) beside their opposing through and their protected groups are never called;
  ``--shared-lane-calls`` gives each shared lane a twin site lane per other group it serves (a
  stop-bar detector on a shared lane calling every phase serving it), which on seed 1 raised the
  delay of ``unit:actuated`` from 23.3 to 70.3 s: through vehicles at the head of the shared lane
  extend the protected left they cannot use.

Per run: the RESCO delay, vehicles, unfinished trips, whether the junction gridlocked, the
clearance used, and conflicts in the box: pairs of vehicles inside the junction at the same time
on foe links (junction foe matrix) neither of which entered on a minor green (giving way) and not
both on yellow (released together, under SUMO's right of way), i.e. mostly a vehicle still
clearing when a conflicting movement is released (or one held in the box by spillback).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

BEGIN_S = 25200.0
END_S = 28800.0
COLOGNE1_TLS = "GS_cluster_357187_359543"
SCENARIO_FOLDER = "scenarios/resco-cologne1"
DEFAULT_SEEDS = tuple(range(1, 11))
# RESCO's MultiSignal for cologne1: a decision every 10 s, 3 s yellow (map_config.py).
DECISION_S = 10
YELLOW_S = 3
# RESCO's agent_config.py: observation range of each agent, metres to the stop line.
MAX_DISTANCE_M = {"max_pressure": 200.0, "greedy": 50.0}
BASELINES = ("fixed", "actuated", "delay_based", "max_pressure", "greedy")
UNIT_PREFIX = "unit:"
DEFAULT_PROGRAMS = (*BASELINES, "unit:actuated", "unit:adaptive")
# SUMO actuated / delay_based bounds over the network's phases (as the scenarios README measured).
MAIN_GREEN_S = (10.0, 50.0)
LEFT_GREEN_S = (5.0, 20.0)
# The unit's view: what a camera on the junction sees of each approach lane.
CAMERA_VIEW_M = 150.0
QUEUE_SPEED_MPS = 1.5
ARRIVAL_HORIZON_S = 15.0
# No vehicle left the junction for this long while vehicles waited: gridlock (teleports are off).
GRIDLOCK_S = 300.0
# Published and measured references (scenarios README): mean delay, seconds.
README_SUMO128 = {"fixed": 42.5, "actuated": 33.2, "delay_based": 43.3, "max_pressure": 23.3, "greedy": 19.6}
RESCO_PUBLISHED_SUMO19 = {"fixed": 56.6, "greedy": 27.8, "max_pressure": 31.1}

# RESCO signal_config.py, cologne1: lane sets per movement (dict order is the observation order)
# and the movement pairs each of the four green phases serves.
COLOGNE1_LANE_SETS: dict[str, tuple[str, ...]] = {
    "S-W": ("27115123#3_0",),
    "S-S": ("27115123#3_1", "27115123#3_0"),
    "S-E": ("27115123#3_1",),
    "W-N": ("-32038056#3_0",),
    "W-W": ("-32038056#3_0", "-32038056#3_1"),
    "W-S": ("-32038056#3_1",),
    "N-E": ("23429231#1_0",),
    "N-N": ("23429231#1_0", "23429231#1_1"),
    "N-W": ("23429231#1_1",),
    "E-S": ("28198821#3_0",),
    "E-E": ("28198821#3_1", "28198821#3_0"),
    "E-N": ("28198821#3_1",),
}
COLOGNE1_PHASE_PAIRS: tuple[tuple[int, int], ...] = ((1, 7), (2, 8), (4, 10), (5, 11))


def scenario_dir() -> Path:
    """``RSU_SCENARIOS_DIR`` (the folder holding cologne1.sumocfg), else the shared folder's copy."""
    explicit = os.environ.get("RSU_SCENARIOS_DIR")
    if explicit:
        return Path(explicit)
    from rsu_tools.site_builders.opentrafficcam import shared_dir

    return shared_dir() / SCENARIO_FOLDER


# --- the metric ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TripDelays:
    mean_delay_s: float
    vehicles: int
    unfinished: int


def resco_delay(tripinfo: str | Path) -> TripDelays:
    """RESCO's delay: the mean of timeLoss + departDelay over every tripinfo entry."""
    total = 0.0
    count = 0
    unfinished = 0
    for element in ET.parse(tripinfo).getroot():
        if element.tag != "tripinfo":
            continue
        total += float(element.get("timeLoss", "0")) + float(element.get("departDelay", "0"))
        count += 1
        if float(element.get("arrival", "-1")) < 0:
            unfinished += 1
    return TripDelays(total / count if count else math.nan, count, unfinished)


# --- the RESCO controllers, pure ---------------------------------------------------------------


def best_pair(values: Sequence[float], phase_pairs: Sequence[tuple[int, int]]) -> int:
    """RESCO's WaveAgent.act without valid_acts: the phase whose two movements sum highest (the
    first on a tie, as numpy's argmax)."""
    return int(np.argmax([values[a] + values[b] for a, b in phase_pairs]))


def wave_state(lane_counts: Mapping[str, tuple[int, int]], lane_sets: Mapping[str, Sequence[str]]) -> list[float]:
    """RESCO states.wave: per movement, queued + approaching vehicles over its lanes."""
    return [float(sum(sum(lane_counts[lane]) for lane in lanes)) for lanes in lane_sets.values()]


def pressure_state(lane_counts: Mapping[str, tuple[int, int]], lane_sets: Mapping[str, Sequence[str]]) -> list[float]:
    """RESCO states.mplight without the phase entry: per movement, queued vehicles over its lanes
    (minus those downstream, and cologne1 has no signal downstream)."""
    return [float(sum(lane_counts[lane][0] for lane in lanes)) for lanes in lane_sets.values()]


def create_yellows(states: Sequence[str]) -> tuple[list[str], dict[tuple[int, int], int]]:
    """RESCO's create_yellows on state strings: after the green phases, one yellow per ordered pair
    of phases where some green link turns red; returns all states and (from, to) -> yellow index."""
    all_states = list(states)
    yellow_of: dict[tuple[int, int], int] = {}
    for i, current in enumerate(states):
        for j, following in enumerate(states):
            if i == j:
                continue
            chars = ["y" if c in "Gg" and n in "rs" else c for c, n in zip(current, following, strict=True)]
            if "y" in chars:
                all_states.append("".join(chars))
                yellow_of[(i, j)] = len(all_states) - 1
    return all_states, yellow_of


class RescoObserver:
    """RESCO's Signal.observe bookkeeping: per lane the queued (waited at some time while in range)
    and approaching vehicles in range; fed plain data, so it runs without SUMO."""

    def __init__(self, lanes: Sequence[str]) -> None:
        self.lanes = tuple(lanes)
        self.waiting_times: dict[str, float] = {}
        self.last_vehicles: set[str] | None = None

    def observe(
        self, seen: Mapping[str, Sequence[tuple[str, float]]], step_length_s: float
    ) -> dict[str, tuple[int, int]]:
        """seen: per lane, (vehicle id, SUMO waiting time) of the vehicles in range.
        Returns per lane (queue, approach)."""
        counts: dict[str, tuple[int, int]] = {}
        everyone: set[str] = set()
        for lane in self.lanes:
            queue = approach = 0
            for vehicle, sumo_wait_s in seen.get(lane, ()):
                everyone.add(vehicle)
                if vehicle in self.waiting_times:
                    self.waiting_times[vehicle] += step_length_s
                elif sumo_wait_s > 0:
                    self.waiting_times[vehicle] = sumo_wait_s
                if self.waiting_times.get(vehicle, 0.0) > 0:
                    queue += 1
                else:
                    approach += 1
            counts[lane] = (queue, approach)
        if self.last_vehicles is not None:
            for vehicle in self.last_vehicles - everyone:
                self.waiting_times.pop(vehicle, None)
        self.last_vehicles = everyone
        return counts


# --- one run ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunSpec:
    program: str
    seed: int
    out_dir: str
    scenario_dir: str
    begin_s: float = BEGIN_S
    end_s: float = END_S
    shared_lane_calls: bool = False


@dataclass
class RunRecord:
    program: str
    seed: int
    mean_delay_s: float
    vehicles: int
    unfinished: int
    gridlocked: bool
    last_exit_s: float
    box_conflicts: int
    yellow_s: list[float]
    all_red_s: list[float]
    wall_s: float
    decision_p99_ms: float | None = None
    notes: list[str] = field(default_factory=list)
    box_conflict_examples: list[str] = field(default_factory=list)


class BoxWatch:
    """Vehicles inside the junction: conflicts between foe links, and when one last left it."""

    def __init__(self, link_of_internal_lane: Mapping[str, int], foes: Mapping[int, frozenset[int]]) -> None:
        self.link_of_lane = dict(link_of_internal_lane)
        self.foes = foes
        self.entered_on: dict[str, str] = {}
        self.link_of_vehicle: dict[str, int] = {}
        self.pairs: set[frozenset[str]] = set()
        self.examples: list[str] = []
        self.last_exit_s = -math.inf

    def observe(self, now_s: float, in_box: Mapping[str, str], state: str) -> None:
        """in_box: vehicle id -> internal lane it is on now; state: the light's state string."""
        for vehicle in list(self.entered_on):
            if vehicle not in in_box:
                del self.entered_on[vehicle]
                del self.link_of_vehicle[vehicle]
                self.last_exit_s = now_s
        for vehicle, lane in in_box.items():
            link = self.link_of_lane.get(lane)
            if link is None:
                continue
            if vehicle not in self.entered_on:
                self.entered_on[vehicle] = state[link]
                self.link_of_vehicle[vehicle] = link
        clearing = [v for v, shown in self.entered_on.items() if shown != "g"]
        for i, a in enumerate(clearing):
            foes_a = self.foes.get(self.link_of_vehicle[a], frozenset())
            for b in clearing[i + 1 :]:
                pair = frozenset((a, b))
                # Both released by the same yellow: they met under SUMO's right of way (a permissive
                # turn and its opposing through), not because one was still clearing.
                same_release = self.entered_on[a] in "yY" and self.entered_on[b] in "yY"
                if self.link_of_vehicle[b] in foes_a and pair not in self.pairs and not same_release:
                    self.pairs.add(pair)
                    if len(self.examples) < 5:
                        self.examples.append(
                            f"{now_s:g} s: {a} (link {self.link_of_vehicle[a]}, entered on {self.entered_on[a]}) and "
                            f"{b} (link {self.link_of_vehicle[b]}, entered on {self.entered_on[b]})"
                        )


def _sumo_command(spec: RunSpec, tripinfo: Path, extra: Sequence[str] = ()) -> list[str]:
    from rsu.sim.network import sumo_tool

    return [
        sumo_tool("sumo"),
        "-c", str(Path(spec.scenario_dir) / "cologne1.sumocfg"),
        "--seed", str(spec.seed),
        "--time-to-teleport", "-1",
        "--tripinfo-output", str(tripinfo),
        "--tripinfo-output.write-unfinished", "true",
        "--begin", f"{spec.begin_s:g}",
        "--end", f"{spec.end_s:g}",
        "--no-step-log", "true",
        "--no-warnings", "true",
        *extra,
    ]  # fmt: skip


def _program_file(path: Path, kind: str, net_file: Path) -> Path:
    """The network's phases as a SUMO ``actuated`` / ``delay_based`` program with min/max greens."""
    root = ET.parse(net_file).getroot()
    logic = next(logic for logic in root.iter("tlLogic") if logic.get("id") == COLOGNE1_TLS)
    out = ET.Element("additional")
    program = ET.SubElement(out, "tlLogic", id=COLOGNE1_TLS, type=kind, programID="bench", offset="0")
    longest = max(float(phase.get("duration", "0")) for phase in logic.iter("phase"))
    for phase in logic.iter("phase"):
        state = phase.get("state", "")
        attributes = {"duration": phase.get("duration", "1"), "state": state}
        if "y" not in state:
            main = float(phase.get("duration", "0")) >= longest
            low, high = MAIN_GREEN_S if main else LEFT_GREEN_S
            attributes.update(minDur=f"{low:g}", maxDur=f"{high:g}")
        ET.SubElement(program, "phase", attributes)
    ET.ElementTree(out).write(path)
    return path


def run_one(spec: RunSpec) -> RunRecord:
    """One program, one seed, in this process (call it in a fresh process per run)."""
    import libsumo

    from rsu_tools.site_builders.sumo_net import read_traffic_light

    started = time.perf_counter()
    out_dir = Path(spec.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tag = f"{spec.program.replace(':', '-')}_s{spec.seed}"
    tripinfo = out_dir / f"{tag}.tripinfo.xml"
    net_file = Path(spec.scenario_dir) / "cologne1.net.xml"
    facts = read_traffic_light(net_file, COLOGNE1_TLS)
    internal = _link_of_internal_lane(net_file, COLOGNE1_TLS)
    box = BoxWatch(internal, facts.foes)
    extra: list[str] = []
    if spec.program in ("actuated", "delay_based"):
        extra = ["--additional-files", str(_program_file(out_dir / f"{tag}.tls.xml", spec.program, net_file))]
    libsumo.start(_sumo_command(spec, tripinfo, extra))
    box_lanes = sorted(internal)
    notes: list[str] = []
    decision_ms: list[float] = []

    def step() -> float:
        libsumo.simulationStep()
        now = float(libsumo.simulation.getTime())
        in_box = {vehicle: lane for lane in box_lanes for vehicle in libsumo.lane.getLastStepVehicleIDs(lane)}
        box.observe(now, in_box, libsumo.trafficlight.getRedYellowGreenState(COLOGNE1_TLS))
        return now

    try:
        if spec.program in ("actuated", "delay_based"):
            libsumo.trafficlight.setProgram(COLOGNE1_TLS, "bench")
        if spec.program in BASELINES[:3]:
            yellow = sorted({p.duration_s for p in facts.phases if "y" in p.state})
            all_red: list[float] = [0.0]
            while float(libsumo.simulation.getTime()) < spec.end_s - 1e-9:
                step()
        elif spec.program in ("max_pressure", "greedy"):
            yellow, all_red = [float(YELLOW_S)], [0.0]
            _run_resco_agent(libsumo, spec, step)
        elif spec.program.startswith(UNIT_PREFIX):
            yellow, all_red = _run_unit(libsumo, spec, facts, step, out_dir, decision_ms, notes)
        else:
            raise ValueError(
                f"unknown program {spec.program!r} (known: {', '.join(DEFAULT_PROGRAMS)}, unit:<strategy>)"
            )
        waiting = sum(libsumo.lane.getLastStepHaltingNumber(lane) for lane in COLOGNE1_INCOMING)
        end_s = float(libsumo.simulation.getTime())
    finally:
        libsumo.close()
    delays = resco_delay(tripinfo)
    tripinfo.unlink(missing_ok=True)
    return RunRecord(
        program=spec.program,
        seed=spec.seed,
        mean_delay_s=delays.mean_delay_s,
        vehicles=delays.vehicles,
        unfinished=delays.unfinished,
        gridlocked=bool(waiting > 0 and end_s - box.last_exit_s >= GRIDLOCK_S),
        last_exit_s=box.last_exit_s,
        box_conflicts=len(box.pairs),
        yellow_s=yellow,
        all_red_s=all_red,
        wall_s=time.perf_counter() - started,
        decision_p99_ms=float(np.percentile(decision_ms, 99)) if decision_ms else None,
        notes=notes,
        box_conflict_examples=box.examples,
    )


COLOGNE1_INCOMING = tuple(dict.fromkeys(lane for lanes in COLOGNE1_LANE_SETS.values() for lane in lanes))


def _link_of_internal_lane(net_file: Path, tls_id: str) -> dict[str, int]:
    """Every internal lane of the junction -> the controlled link it belongs to."""
    root = ET.parse(net_file).getroot()
    continuation: dict[str, str] = {}
    for connection in root.iter("connection"):
        source = f"{connection.get('from')}_{connection.get('fromLane')}"
        if connection.get("via") and source.startswith(":"):
            continuation[source] = connection.get("via", "")
    mapping: dict[str, int] = {}
    for connection in root.iter("connection"):
        if connection.get("tl") != tls_id or not connection.get("via"):
            continue
        lane: str | None = connection.get("via")
        while lane and lane not in mapping:
            mapping[lane] = int(connection.get("linkIndex", "-1"))
            lane = continuation.get(lane)
    return mapping


def _in_range(api: Any, lane: str, max_distance_m: float) -> list[tuple[str, float]]:
    """RESCO's get_vehicles: vehicles on the lane at most max_distance from their next light."""
    seen: list[tuple[str, float]] = []
    for vehicle in api.lane.getLastStepVehicleIDs(lane):
        upcoming = api.vehicle.getNextTLS(vehicle)
        if upcoming and upcoming[0][2] <= max_distance_m:
            seen.append((vehicle, float(api.vehicle.getWaitingTime(vehicle))))
    return seen


def _run_resco_agent(api: Any, spec: RunSpec, step: Any) -> None:
    """RESCO's MultiSignal loop for one light: act, 3 s (yellow if changing), set, 7 s, observe."""
    logic = api.trafficlight.getAllProgramLogics(COLOGNE1_TLS)[0]
    greens = [p for p in logic.getPhases() if "y" not in p.state and "g" in p.state.lower()]
    states, yellow_of = create_yellows([p.state for p in greens])
    phases = [api.trafficlight.Phase(p.duration, p.state) for p in greens]
    phases += [api.trafficlight.Phase(YELLOW_S, state) for state in states[len(greens) :]]
    logic.type = 0
    logic.phases = phases
    api.trafficlight.setProgramLogic(COLOGNE1_TLS, logic)
    max_distance = MAX_DISTANCE_M[spec.program]
    lanes = tuple(dict.fromkeys(lane for lanes in COLOGNE1_LANE_SETS.values() for lane in lanes))
    observer = RescoObserver(lanes)

    def observe() -> dict[str, tuple[int, int]]:
        return observer.observe({lane: _in_range(api, lane, max_distance) for lane in lanes}, DECISION_S)

    counts = observe()
    while float(api.simulation.getTime()) < spec.end_s - 1e-9:
        values = (pressure_state if spec.program == "max_pressure" else wave_state)(counts, COLOGNE1_LANE_SETS)
        action = best_pair(values, COLOGNE1_PHASE_PAIRS)
        current = int(api.trafficlight.getPhase(COLOGNE1_TLS))
        next_phase = current if current == action else action
        if current != action and (current, action) in yellow_of:
            api.trafficlight.setPhase(COLOGNE1_TLS, yellow_of[(current, action)])
        for _ in range(YELLOW_S):
            step()
        api.trafficlight.setPhase(COLOGNE1_TLS, next_phase)
        for _ in range(DECISION_S - YELLOW_S):
            step()
        counts = observe()


# --- the unit's controller on the imported site -------------------------------------------------


def controller_site(site_data: dict[str, Any], link_groups: Mapping[int, str], facts: Any) -> dict[str, Any]:
    """The imported site with a twin site lane per extra group of a shared lane: a stop-bar
    detector on a shared lane calls every phase serving it, so the lane's view goes to each."""
    data = json.loads(json.dumps(site_data))
    for approach in data["approaches"]:
        twins = []
        for lane in approach["lanes"]:
            groups = dict.fromkeys(
                link_groups[link.index] for link in facts.links if link.from_lane == lane["sumo_lane"]
            )
            for group in groups:
                if group != lane["signal_group"]:
                    twin = dict(lane, id=f"{lane['id']}-{group}", signal_group=group)
                    twins.append(twin)
        approach["lanes"].extend(twins)
    return data


def camera_view(api: Any, sumo_lane: str, lane_length_m: float, gap_since_s: float, now_s: float) -> dict[str, Any]:
    """What a camera sees of one lane within CAMERA_VIEW_M of the stop line, as LaneObservation fields."""
    queued = 0
    queue_end_m = 0.0
    approaching_speeds: list[float] = []
    arrivals: list[float] = []
    occupied = False
    max_wait = 0.0
    for vehicle in api.lane.getLastStepVehicleIDs(sumo_lane):
        distance = lane_length_m - float(api.vehicle.getLanePosition(vehicle))
        if distance > CAMERA_VIEW_M:
            continue
        speed = float(api.vehicle.getSpeed(vehicle))
        length = float(api.vehicle.getLength(vehicle))
        if distance <= 8.0:
            occupied = True
        if speed < QUEUE_SPEED_MPS:
            queued += 1
            queue_end_m = max(queue_end_m, distance + length)
            max_wait = max(max_wait, float(api.vehicle.getWaitingTime(vehicle)))
        else:
            approaching_speeds.append(speed)
            eta = distance / speed
            if eta <= ARRIVAL_HORIZON_S:
                arrivals.append(round(eta, 2))
    return {
        "stop_bar_occupied": occupied,
        "queue_length_m": round(min(queue_end_m, 1000.0), 1),
        "queued_vehicles": min(queued, 500),
        "approaching_vehicles": min(len(approaching_speeds), 500),
        "approaching_speed_mean_mps": round(float(np.mean(approaching_speeds)), 2) if approaching_speeds else 0.0,
        "stop_bar_gap_s": 0.0 if occupied else max(0.0, now_s - gap_since_s),
        "max_wait_s": max_wait,
        "arrival_times_s": sorted(arrivals)[:32],
    }


def _run_unit(
    api: Any, spec: RunSpec, facts: Any, step: Any, out_dir: Path, decision_ms: list[float], notes: list[str]
) -> tuple[list[float], list[float]]:
    from rsu_contracts.config.model import SiteConfig
    from rsu_contracts.messages.perception import LaneObservation
    from rsu_tools.site_builders.sumo_net import import_site
    from signal_control import SignalController
    from signal_control.backends.sumo import ControlledLink, SumoSignalHeads, read_link_facts
    from signal_control.lookahead import arrivals_by_lane
    from signal_control.phasing import PhasePlan, with_ring_barrier_stages

    strategy = spec.program.removeprefix(UNIT_PREFIX)
    net_file = Path(spec.scenario_dir) / "cologne1.net.xml"
    imported = import_site(net_file, COLOGNE1_TLS, out_dir / "cologne1.site.yaml")
    # As imported: a shared lane calls only the group of its through movement; with
    # shared_lane_calls its view also calls (and extends) the other groups it serves.
    site_data = controller_site(imported.site, imported.link_groups, facts) if spec.shared_lane_calls else imported.site
    site = SiteConfig.model_validate(site_data)
    if strategy == "adaptive":
        site = with_ring_barrier_stages(site)
    link_groups = imported.link_groups

    class ImportedHeads(SumoSignalHeads):
        """The heads on the importer's exact link map (a shared lane's links keep their own groups)."""

        def _map_links(self) -> list[ControlledLink]:
            links = self._api.getControlledLinks(self.traffic_light_id)
            return [
                ControlledLink(
                    index,
                    from_lane=str(connections[0][0]),
                    to_lane=str(connections[0][1]),
                    via_lane=str(connections[0][2]),
                    signal_group=link_groups[index],
                    is_crossing=False,
                )
                for index, connections in enumerate(links)
            ]

    heads = ImportedHeads(COLOGNE1_TLS, site, api.trafficlight, read_link_facts(net_file, COLOGNE1_TLS, site))
    plan = PhasePlan.from_site(site)
    vehicle_groups = [timing for timing in plan.groups.values() if not timing.is_pedestrian]
    controller = SignalController(site)
    controller.set_strategy(strategy)
    lane_length = {lane.sumo_lane: float(api.lane.getLength(lane.sumo_lane)) for lane in site.lanes if lane.sumo_lane}
    gap_since = {lane.id: spec.begin_s for lane in site.lanes}
    was_occupied = {lane.id: False for lane in site.lanes}
    now_s = float(api.simulation.getTime())
    while now_s < spec.end_s - 1e-9:
        observations = []
        for lane in site.lanes:
            assert lane.sumo_lane is not None
            view = camera_view(api, lane.sumo_lane, lane_length[lane.sumo_lane], gap_since[lane.id], now_s)
            if was_occupied[lane.id] and not view["stop_bar_occupied"]:
                gap_since[lane.id] = now_s
                view["stop_bar_gap_s"] = 0.0
            was_occupied[lane.id] = view["stop_bar_occupied"]
            observations.append(LaneObservation(lane_id=lane.id, **view))
        tic = time.perf_counter()
        output = controller.step(now_s, observations, arrivals_s=arrivals_by_lane(observations))
        decision_ms.append((time.perf_counter() - tic) * 1000.0)
        if output.mode.value == "flash" and not notes:
            notes.append(f"flash at {now_s:.0f} s: {output.reason}")
        heads.apply(output.groups)
        now_s = step()
    return (
        sorted({round(t.change_interval_s, 2) for t in vehicle_groups}),
        sorted({round(t.all_red_s, 2) for t in vehicle_groups}),
    )


# --- the bench -------------------------------------------------------------------------------


def run_in_subprocess(spec: RunSpec) -> RunRecord:
    """One run in a fresh Python process (libsumo repeats a seed only in a fresh process)."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    completed = subprocess.run(
        [sys.executable, "-m", "rsu_tools.bench.resco", "--one", json.dumps(asdict(spec))],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"{spec.program} seed {spec.seed} failed: {completed.stderr.strip()[-2000:]}")
    return RunRecord(**json.loads(completed.stdout.strip().splitlines()[-1]))


def summarise(records: Sequence[RunRecord]) -> dict[str, dict[str, Any]]:
    summary: dict[str, dict[str, Any]] = {}
    for program in dict.fromkeys(record.program for record in records):
        runs = [record for record in records if record.program == program]
        free = [record for record in runs if not record.gridlocked]
        summary[program] = {
            "seeds": len(runs),
            "mean_delay_s": float(np.mean([record.mean_delay_s for record in runs])),
            "mean_delay_without_gridlock_s": float(np.mean([r.mean_delay_s for r in free])) if free else None,
            "gridlocked_seeds": [record.seed for record in runs if record.gridlocked],
            "box_conflicts": int(sum(record.box_conflicts for record in runs)),
            "yellow_s": sorted({y for record in runs for y in record.yellow_s}),
            "all_red_s": sorted({r for record in runs for r in record.all_red_s}),
            "unfinished_mean": float(np.mean([record.unfinished for record in runs])),
            "vehicles_mean": float(np.mean([record.vehicles for record in runs])),
            "decision_p99_ms": max((r.decision_p99_ms for r in runs if r.decision_p99_ms is not None), default=None),
        }
    return summary


def render_table(summary: Mapping[str, Mapping[str, Any]]) -> str:
    baselines = [p for p in summary if not p.startswith(UNIT_PREFIX) and summary[p]["mean_delay_without_gridlock_s"]]
    best = min(baselines, key=lambda p: summary[p]["mean_delay_without_gridlock_s"], default=None)
    header = (
        f"{'program':<16}{'seeds':>6}{'delay s':>9}{'w/o gridlock':>14}{'vs best':>9}{'gridlocked':>12}"
        f"{'box conflicts':>15}{'yellow s':>10}  {'all-red s':<18}{'README 1.28':>12}{'RESCO 1.9':>10}"
    )
    lines = [header]
    for program, row in summary.items():
        free = row["mean_delay_without_gridlock_s"]
        ratio = f"{free / summary[best]['mean_delay_without_gridlock_s']:.2f}x" if best is not None and free else "-"
        locked = ",".join(map(str, row["gridlocked_seeds"])) or "none"
        lines.append(
            f"{program:<16}{row['seeds']:>6}{row['mean_delay_s']:>9.1f}"
            f"{(f'{free:.1f}' if free is not None else '-'):>14}{ratio:>9}{locked:>12}{row['box_conflicts']:>15}"
            f"{'/'.join(f'{v:g}' for v in row['yellow_s']):>10}  {'/'.join(f'{v:g}' for v in row['all_red_s']):<18}"
            f"{_figure(README_SUMO128.get(program)):>12}{_figure(RESCO_PUBLISHED_SUMO19.get(program)):>10}"
        )
    if best is not None:
        lines.append(f"best baseline (without gridlocked seeds): {best}")
    return "\n".join(lines)


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def run_bench(
    programs: Sequence[str],
    seeds: Sequence[int],
    out: Path,
    scenarios: Path,
    end_s: float = END_S,
    shared_lane_calls: bool = False,
) -> dict[str, Any]:
    runs_dir = Path(tempfile.mkdtemp(prefix="rsu-cologne-"))
    records: list[RunRecord] = []
    for seed in seeds:
        for program in programs:
            spec = RunSpec(program, seed, str(runs_dir), str(scenarios), BEGIN_S, end_s, shared_lane_calls)
            record = run_in_subprocess(spec)
            records.append(record)
            print(
                f"  {program:<16} seed {seed:>3}: {record.mean_delay_s:7.1f} s, {record.vehicles} vehicles, "
                f"gridlocked {record.gridlocked}, box conflicts {record.box_conflicts}, {record.wall_s:.0f} s wall",
                flush=True,
            )
    summary = summarise(records)
    result = {
        "network": "cologne1",
        "begin_s": BEGIN_S,
        "end_s": end_s,
        "seeds": list(seeds),
        "shared_lane_calls": shared_lane_calls,
        "summary": summary,
        "runs": [asdict(record) for record in records],
        "references": {"readme_sumo_1_28": README_SUMO128, "resco_published_sumo_1_9": RESCO_PUBLISHED_SUMO19},
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=_json_default), encoding="utf-8")
    return result


def _json_default(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    raise TypeError(type(value))


def _bench(args: argparse.Namespace) -> int:
    scenarios = Path(args.scenario_dir) if args.scenario_dir else scenario_dir()
    if not (scenarios / "cologne1.sumocfg").exists():
        print(
            f"rsu: error: cologne1.sumocfg not found in {scenarios} (set RSU_SCENARIOS_DIR or RSU_SHARED_DIR, "
            "or give --scenario-dir)",
            file=sys.stderr,
        )
        return 2
    seeds = tuple(range(1, args.seeds + 1)) if args.seed_list is None else tuple(args.seed_list)
    if len(seeds) < len(DEFAULT_SEEDS) and not args.quick:
        print(f"rsu: error: at least {len(DEFAULT_SEEDS)} seeds (or --quick for fewer)", file=sys.stderr)
        return 2
    programs = tuple(args.programs.split(",")) if args.programs else DEFAULT_PROGRAMS
    end_s = BEGIN_S + args.duration_s if args.duration_s else END_S
    print(f"rsu bench cologne: {len(programs)} programs x {len(seeds)} seeds, {BEGIN_S:g}-{end_s:g} s")
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="rsu-bench-cologne-")) / "cologne1.json"
    result = run_bench(programs, seeds, out, scenarios, end_s, args.shared_lane_calls)
    print(render_table(result["summary"]))
    print(f"wrote {out}")
    return 0


def add_bench_cologne_parser(benches: Any) -> None:
    parser = benches.add_parser(
        "cologne",
        help="the RESCO cologne1 junction: its program, SUMO actuated / delay_based, RESCO max-pressure and "
        "greedy, and the unit's controller, as RESCO runs it",
    )
    parser.add_argument("--seeds", type=int, default=len(DEFAULT_SEEDS), help="seeds 1..N (default 10)")
    parser.add_argument("--seed-list", type=int, nargs="+", help="these seeds instead of 1..N")
    parser.add_argument("--quick", action="store_true", help="allow fewer than 10 seeds")
    parser.add_argument("--programs", help=f"comma-separated (default {','.join(DEFAULT_PROGRAMS)})")
    parser.add_argument("--duration-s", type=float, help="shorter runs from 25200 s (default: to 28800 s)")
    parser.add_argument("--scenario-dir", help="folder with cologne1.sumocfg (default: RSU_SCENARIOS_DIR or shared)")
    parser.add_argument(
        "--shared-lane-calls",
        action="store_true",
        help="unit: a shared lane's view also calls the groups of its turns (default: as imported, its through group)",
    )
    parser.add_argument("--out", default=None, help="JSON to write (default: cologne1.json in a new temp folder)")
    parser.set_defaults(handler=_bench)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rsu_tools.bench.resco")
    parser.add_argument("--one", required=True, help="a RunSpec as JSON: run it here and print the record")
    args = parser.parse_args(argv)
    record = run_one(RunSpec(**json.loads(args.one)))
    print(json.dumps(asdict(record), default=_json_default))
    return 0


if __name__ == "__main__":
    sys.exit(main())
