"""One software-in-the-loop run: a scenario, a seed and a program, measured the same way for all.

``unit:<strategy>`` runs the unit's SignalController fed only by what the simulated camera sees
through the PerceptionPipeline (in-process, no MQTT); every other program is one of SUMO's own
(rsu_tools.sil.programs). Identical demand file, SUMO options and seed for every program.

Measured from SUMO's trip info (unfinished trips included, so a starved vehicle still counts):
delay per vehicle = timeLoss + departDelay (time lost queued before entering the network
counts too). Throughput = trips completed in the run. Max queue = most halted vehicles in any
one approach lane. Safety from the shown link states (rsu_tools.sil.safety).

libsumo runs one simulation per process: call ``run_one`` in a fresh process per run.
"""

from __future__ import annotations

import gc
import json
import math
import time
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ValidationError

from rsu.samples import SAMPLE_SITE
from rsu_contracts.config import SiteConfig, load_site_config
from rsu_contracts.config.load import describe_validation_error, resolve_relative
from rsu_tools.sil.programs import (
    BUILTIN_PROGRAMS,
    PROGRAM_ID,
    REFERENCE_PROGRAMS,
    signal_heads_for_network,
    write_program,
)
from rsu_tools.sil.safety import ShownStateChecker
from rsu_tools.sil.scenarios import SCENARIOS, write_scenario_demand

UNIT_PREFIX = "unit:"
UNIT_PROGRAMS = ("unit:schedule", "unit:adaptive", "unit:actuated")
# Strategies that run the NEMA dual ring: the site's stages plus the dual-ring stages derived from
# its NEMA phase numbers and conflicts (a ``_sequential`` suffix: the site's stages only).
DUAL_RING_STRATEGIES = ("adaptive", "schedule")
# The signal plans every scenario runs on: the site's own (protected/permissive lefts with a
# flashing yellow arrow where the site says so) and the same junction with every left protected
# only (``permissive_with`` removed), which SUMO's fixed phase sequences cannot be outplayed on
# by passing a protected-left phase over.
PERMISSIVE_PLAN = "permissive"
PROTECTED_ONLY_PLAN = "protected_only"
PLANS = (PERMISSIVE_PLAN, PROTECTED_ONLY_PLAN)
ALL_PROGRAMS = (*UNIT_PROGRAMS, *BUILTIN_PROGRAMS, *REFERENCE_PROGRAMS)
# A vehicle delayed longer than this was starved (several full cycles at the longest greens).
STARVATION_DELAY_S = 300.0
# Halted vehicles are sampled this often for the max-queue figure.
QUEUE_SAMPLE_S = 1.0


@dataclass(frozen=True)
class RunSpec:
    scenario: str
    seed: int
    program: str
    duration_s: float  # demand is generated for this long
    drain_s: float  # then the run goes on this long without new demand
    step_s: float
    out_dir: str
    site_path: str = str(SAMPLE_SITE)
    keep_trip_info: bool = False
    plan: str = PERMISSIVE_PLAN

    @property
    def tag(self) -> str:
        return f"{self.plan}_{self.scenario}_s{self.seed}_{self.program.replace(':', '-')}"


@dataclass
class RunResult:
    scenario: str
    seed: int
    program: str
    vehicles: int
    completed: int
    mean_delay_s: float
    p95_delay_s: float
    max_delay_s: float
    starved: int
    max_queue_vehicles: int
    safety_violations: int
    safety_by_kind: dict[str, int]
    safety_examples: list[str]
    pedestrian_mean_wait_s: float
    wall_s: float
    decision_p50_ms: float = math.nan
    decision_p99_ms: float = math.nan
    decision_max_ms: float = math.nan
    # The same on the process's CPU clock: what the decision costs, without the time the process
    # waited for a core on a loaded machine (the wall-clock figures include that).
    decision_cpu_p99_ms: float = math.nan
    fault: str | None = None
    events_file: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    plan: str = PERMISSIVE_PLAN


def site_for_plan(site: SiteConfig, plan: str) -> SiteConfig:
    """The site on one of the bench's signal plans (``PLANS``): as configured, or with every
    protected/permissive left made protected only."""
    if plan == PERMISSIVE_PLAN:
        return site
    if plan == PROTECTED_ONLY_PLAN:
        groups = [group.model_copy(update={"permissive_with": None}) for group in site.signal_groups]
        return site.model_copy(update={"signal_groups": groups})
    raise ValueError(f"unknown signal plan {plan!r}; known: {', '.join(PLANS)}")


def programs_for_plan(programs: tuple[str, ...], plan: str) -> tuple[str, ...]:
    """The programs that mean something on a plan: the permissive-only reference drops the
    protected-left phases, which on a protected-only plan would never serve the lefts."""
    if plan == PERMISSIVE_PLAN:
        return programs
    return tuple(p for p in programs if p not in REFERENCE_PROGRAMS)


def _site_with_step(site: SiteConfig, step_s: float) -> SiteConfig:
    simulation = site.simulation.model_copy(update={"step_s": step_s})
    return site.model_copy(update={"simulation": simulation})


def sumo_options(spec: RunSpec, tripinfo: Path) -> list[str]:
    """The options every program runs with (beyond network, routes, step length and seed)."""
    return [
        "--tripinfo-output",
        str(tripinfo),
        "--tripinfo-output.write-unfinished",
        "true",
        "--end",
        f"{spec.duration_s + spec.drain_s:g}",
    ]


def _trip_metrics(tripinfo: Path) -> dict[str, Any]:
    delays: list[float] = []
    completed = 0
    ped_waits: list[float] = []
    for element in ET.parse(tripinfo).getroot():
        if element.tag == "tripinfo":
            delays.append(float(element.get("timeLoss", "0")) + float(element.get("departDelay", "0")))
            if float(element.get("arrival", "-1")) >= 0:
                completed += 1
        elif element.tag == "personinfo":
            ped_waits.append(sum(float(walk.get("waitingTime", "0")) for walk in element.iter("walk")))
    values = np.asarray(delays) if delays else np.zeros(1)
    return {
        "vehicles": len(delays),
        "completed": completed,
        "mean_delay_s": float(values.mean()),
        "p95_delay_s": float(np.percentile(values, 95)),
        "max_delay_s": float(values.max()),
        "starved": int((values > STARVATION_DELAY_S).sum()),
        "pedestrian_mean_wait_s": float(np.mean(ped_waits)) if ped_waits else 0.0,
    }


def run_one(spec: RunSpec) -> RunResult:
    """Run one program on one scenario and seed (in this process) and measure it."""
    started = time.perf_counter()
    out_dir = Path(spec.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    site_path = Path(spec.site_path)
    site = site_for_plan(_site_with_step(load_site_config(site_path), spec.step_s), spec.plan)
    scenario = SCENARIOS[spec.scenario]
    routes = write_scenario_demand(
        out_dir / f"{spec.scenario}_s{spec.seed}_{spec.duration_s:g}.rou.xml", scenario, spec.seed, spec.duration_s
    )
    tripinfo = out_dir / f"{spec.tag}.tripinfo.xml"
    net_file = resolve_relative(site_path, site.simulation.network)
    heads = signal_heads_for_network(site, net_file)
    from signal_control.phasing import PhasePlan

    checker = ShownStateChecker(heads.link_groups, PhasePlan.from_site(site), spec.step_s)
    if spec.program.startswith(UNIT_PREFIX):
        extra = _run_unit(spec, site, site_path, routes, tripinfo, checker, out_dir)
    else:
        extra = _run_builtin(spec, site, net_file, routes, tripinfo, checker, out_dir)
    metrics = _trip_metrics(tripinfo)
    if not spec.keep_trip_info:
        tripinfo.unlink(missing_ok=True)
    return RunResult(
        scenario=spec.scenario,
        seed=spec.seed,
        program=spec.program,
        plan=spec.plan,
        safety_violations=checker.total,
        safety_by_kind=dict(checker.counts),
        safety_examples=checker.violations[:5],
        wall_s=time.perf_counter() - started,
        **metrics,
        **extra,
    )


def _unit_program(program: str) -> tuple[str, dict[str, str]]:
    """``unit:schedule[headway_s=2.2;cluster_gap_s=4]`` -> ("schedule", {"headway_s": "2.2", ...}):
    a unit strategy with some parameters set (for tuning runs; the name keeps them apart)."""
    name = program.removeprefix(UNIT_PREFIX)
    if "[" not in name:
        return name, {}
    name, _, rest = name.partition("[")
    if not rest.endswith("]"):
        raise ValueError(f"program {program!r}: parameters go in [name=value;...]")
    overrides: dict[str, str] = {}
    for item in rest[:-1].split(";"):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"program {program!r}: parameter {item!r} is not name=value")
        overrides[key.strip()] = value.strip()
    return name, overrides


def with_strategy_parameters(site: SiteConfig, strategy: str, overrides: dict[str, str]) -> SiteConfig:
    """The site with some of one strategy's parameters (its ``controller.<strategy>`` block) set,
    validated as the site file's are: the run uses the site's block, changed only where named."""
    if not overrides:
        return site
    block = getattr(site.controller, strategy, None)
    if not isinstance(block, BaseModel):
        raise ValueError(f"strategy {strategy!r} has no parameters (controller.{strategy} is not a block)")
    model = type(block)
    unknown = sorted(set(overrides) - set(model.model_fields))
    if unknown:
        raise ValueError(f"unknown {strategy} parameters {unknown}; known: {', '.join(model.model_fields)}")
    try:
        # "none" unsets an optional parameter (e.g. actuated's minimum_gap_s: no gap reduction).
        values = {key: None if value.lower() == "none" else value for key, value in overrides.items()}
        updated = model.model_validate({**block.model_dump(), **values})
    except ValidationError as exc:
        raise ValueError(f"controller.{strategy}:\n{describe_validation_error(exc)}") from None
    return site.model_copy(update={"controller": site.controller.model_copy(update={strategy: updated})})


def _halted(api: Any, lanes: list[str]) -> int:
    return max(int(api.lane.getLastStepHaltingNumber(lane)) for lane in lanes)


def _run_unit(
    spec: RunSpec,
    site: SiteConfig,
    site_path: Path,
    routes: Path,
    tripinfo: Path,
    checker: ShownStateChecker,
    out_dir: Path,
) -> dict[str, Any]:
    from rsu.perception.pipeline import PerceptionPipeline
    from rsu.sensors.sim_camera import SimulatedCamera
    from rsu.sim.world import SumoWorld
    from signal_control import SignalController
    from signal_control.lookahead import arrivals_by_lane
    from signal_control.phasing import with_ring_barrier_stages

    name, overrides = _unit_program(spec.program)
    strategy = name.removesuffix("_nolookahead").removesuffix("_sequential")
    if strategy in DUAL_RING_STRATEGIES and not name.endswith("_sequential"):
        site = with_ring_barrier_stages(site)
    # The strategy runs with the site file's parameter block, changed only where the program says.
    controller = SignalController(with_strategy_parameters(site, strategy, overrides))
    controller.set_strategy(strategy)
    camera_config = site.cameras[0]
    camera = SimulatedCamera(camera_config, seed=spec.seed)
    perception = PerceptionPipeline(site, camera_config.id)
    lookahead = not name.endswith("_nolookahead")
    end_s = spec.duration_s + spec.drain_s
    decision_s: list[float] = []
    decision_cpu_s: list[float] = []
    max_queue = 0
    next_queue_sample_s = 0.0
    events_file = out_dir / f"{spec.tag}.atspm.csv"
    fault: str | None = None
    with (
        SumoWorld(site, site_path, seed=spec.seed, routes=routes, extra_options=sumo_options(spec, tripinfo)) as world,
        events_file.open("w", encoding="utf-8") as events,
    ):
        events.write("time_s,event_code,parameter\n")
        approach_lanes = [lane.sumo_lane for lane in site.lanes if lane.sumo_lane]
        latest = None
        arrivals: dict[str, tuple[float, ...]] = {}
        while world.time_s < end_s - 1e-9:
            now_s = world.step()
            checker.observe(now_s, world.api.trafficlight.getRedYellowGreenState(world.traffic_light_id))
            if now_s >= next_queue_sample_s:
                max_queue = max(max_queue, _halted(world.api, approach_lanes))
                next_queue_sample_s = now_s + QUEUE_SAMPLE_S
            detections = camera.observe(world.ground_truth(), now_s)
            if detections is not None:
                latest = perception.process(detections)
                if lookahead:
                    arrivals = arrivals_by_lane(latest.lanes)
            # The unit runs the controller in its own process; here the camera, perception and SUMO
            # share it, so their garbage is collected outside the timed decision.
            gc.disable()
            tic, cpu_tic = time.perf_counter(), time.process_time()
            if latest is None:
                output = controller.step(now_s, None)
            else:
                output = controller.step(
                    now_s, latest.lanes, latest.crosswalks, observed_at_s=latest.time_s, arrivals_s=arrivals
                )
            decision_s.append(time.perf_counter() - tic)
            decision_cpu_s.append(time.process_time() - cpu_tic)
            gc.enable()
            if output.mode.value == "flash" and fault is None:
                fault = output.reason
            for event in output.events:
                events.write(f"{event.time_s:.1f},{event.code},{event.parameter}\n")
            world.apply_signals(output.groups)
    timings = np.asarray(decision_s) * 1000.0
    return {
        "max_queue_vehicles": max_queue,
        "decision_p50_ms": float(np.percentile(timings, 50)),
        "decision_p99_ms": float(np.percentile(timings, 99)),
        "decision_max_ms": float(timings.max()),
        "decision_cpu_p99_ms": float(np.percentile(np.asarray(decision_cpu_s) * 1000.0, 99)),
        "fault": fault,
        "events_file": str(events_file),
    }


def _run_builtin(
    spec: RunSpec,
    site: SiteConfig,
    net_file: Path,
    routes: Path,
    tripinfo: Path,
    checker: ShownStateChecker,
    out_dir: Path,
) -> dict[str, Any]:
    import libsumo

    from rsu.sim.network import sumo_tool

    scenario = SCENARIOS[spec.scenario]
    program_file = write_program(
        out_dir / f"{spec.tag}.tls.add.xml", spec.program, site, net_file, scenario.lane_flows_pcu_per_hour()
    )
    # The same options as rsu.sim.world.SumoWorld gives the unit's runs.
    command = [
        sumo_tool("sumo"),
        "--net-file", str(net_file),
        "--route-files", str(routes),
        "--additional-files", str(program_file),
        "--step-length", f"{spec.step_s:g}",
        "--seed", str(spec.seed),
        "--scale", f"{site.simulation.demand_scale:g}",
        "--no-step-log", "true",
        "--no-warnings", "true",
        "--collision.check-junctions", "true",
        "--collision.mingap-factor", "0",
        *sumo_options(spec, tripinfo),
    ]  # fmt: skip
    libsumo.start(command)
    traffic_light = site.simulation.traffic_light_id
    try:
        libsumo.trafficlight.setProgram(traffic_light, PROGRAM_ID)
        approach_lanes = [lane.sumo_lane for lane in site.lanes if lane.sumo_lane]
        end_s = spec.duration_s + spec.drain_s
        max_queue = 0
        next_queue_sample_s = 0.0
        now_s = float(libsumo.simulation.getTime())
        while now_s < end_s - 1e-9:
            libsumo.simulationStep()
            now_s = float(libsumo.simulation.getTime())
            checker.observe(now_s, libsumo.trafficlight.getRedYellowGreenState(traffic_light))
            if now_s >= next_queue_sample_s:
                max_queue = max(max_queue, _halted(libsumo, approach_lanes))
                next_queue_sample_s = now_s + QUEUE_SAMPLE_S
    finally:
        libsumo.close()
    program_file.unlink(missing_ok=True)
    return {"max_queue_vehicles": max_queue}


def result_to_json(result: RunResult) -> dict[str, Any]:
    data = asdict(result)
    return {key: (None if isinstance(value, float) and math.isnan(value) else value) for key, value in data.items()}


def main() -> None:  # pragma: no cover - manual check: python -m rsu_tools.sil.runner
    import sys

    scenario, seed, program, duration = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
    spec = RunSpec(scenario, seed, program, duration, 120.0, 0.2, "/tmp/rsu-sil", keep_trip_info=True)
    print(json.dumps(result_to_json(run_one(spec)), indent=1))


if __name__ == "__main__":
    main()
