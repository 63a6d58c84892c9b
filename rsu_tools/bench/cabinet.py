"""`rsu bench cabinet`: the demo scenario on one seed, the unit driving SUMO's lamps directly against
the unit driving them through the virtual NEMA cabinet over NTCIP 1202 (`rsu demo --cabinet ntcip`).

Both runs are the whole unit in real time (a cabinet keeps wall-clock time, so the direct run does
too), each on its own private secured Mosquitto and its own unit id, one after the other. Per run:

* mean delay of the served vehicles (SUMO's time loss), and the ratio through-cabinet / direct
  (target: within 5 %, issue 18);
* safety violations in the shown-state check: the conflict monitor fed every change of the lamps
  SUMO showed (rsu_tools.cabinet.shown_check; interval minima less ``tolerance`` = two simulation
  steps, the lamps being sampled once per step);
* SPaT against the lamps SUMO showed, on 100 ms samples, excluding one poll period (the
  controller's decision period) around each lamp change.

Prints a table and writes the figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rsu.demo import DemoSummary, run_demo
from rsu.samples import SAMPLE_SITE
from rsu.sim.lamps import read_lamp_log
from rsu_contracts.config import SiteConfig, load_site_config
from rsu_tools.cabinet.demo import virtual_cabinet_site
from rsu_tools.cabinet.shown_check import LampRecord, shown_state_violations, spat_agreement
from rsu_tools.secured_broker import SecuredMosquitto
from signal_control.phasing import PhasePlan

DEFAULT_DURATION_S = 600.0
DEFAULT_SEED = 42
TARGET_DELAY_RATIO_TOLERANCE = 0.05
SAMPLE_PERIOD_S = 0.1
# The first seconds are the unit starting (the controller's first decisions, the first SPaT).
WARM_UP_S = 5.0
MODES = ("direct", "cabinet")


@dataclass
class ModeResult:
    mode: str
    vehicles_served: int
    vehicles_departed: int
    mean_delay_s: float | None
    shown_state_violations: int
    violations: list[str]
    lamp_changes: int
    spat_samples: int
    spat_agreeing: int
    spat_excluded: int
    spat_agreement: float
    spat_disagreements: list[str]
    wall_time_s: float
    invalid_messages: int
    stage_restarts: int
    cabinet: dict[str, Any] | None = None


@dataclass
class CabinetBenchResult:
    site: str
    seed: int
    duration_s: float
    tolerance_s: float
    exclude_s: float
    runs: list[ModeResult] = field(default_factory=list)
    delay_ratio: float | None = None
    delay_within_target: bool | None = None


def _private_copy(site_path: Path, folder: Path, mode: str) -> Path:
    """The site with its own unit id (topics, Redis outbox), every path in it absolute."""
    site = load_site_config(site_path)
    raw: dict[str, Any] = site.model_dump(mode="json", exclude_defaults=True)
    raw["unit_id"] = f"{site.unit_id}-bench-{mode}-{os.getpid()}"[:64]
    target = folder / "site.yaml"
    target.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return target


def _on_private_broker(site_path: Path, folder: Path, duration_s: float, seed: int, lamp_log: Path) -> DemoSummary:
    broker_folder = folder / "broker-site"
    broker_folder.mkdir()
    with SecuredMosquitto(load_site_config(site_path), name=f"bench-{folder.name}") as broker:
        return run_demo(
            broker.site_file(broker_folder),
            duration_s=duration_s,
            realtime=True,
            seed=seed,
            progress=sys.stderr,
            wall_timeout_s=duration_s * 2 + 120,
            lamp_log=lamp_log,
        )


def run_mode(mode: str, site_path: Path, folder: Path, duration_s: float, seed: int) -> ModeResult:
    folder.mkdir(parents=True, exist_ok=True)
    private = _private_copy(site_path, folder, mode)
    lamp_log = folder / "lamps.jsonl"
    if mode == "cabinet":
        cabinet_folder = folder / "cabinet"
        cabinet_folder.mkdir()
        with virtual_cabinet_site(private, cabinet_folder) as (cabinet_site, _agent):
            summary = _on_private_broker(cabinet_site, folder, duration_s, seed, lamp_log)
        checked_site = load_site_config(cabinet_site)
    else:
        summary = _on_private_broker(private, folder, duration_s, seed, lamp_log)
        checked_site = load_site_config(private)
    return evaluate(mode, summary, read_lamp_log(lamp_log) if lamp_log.exists() else [], checked_site)


def evaluate(mode: str, summary: DemoSummary, lamps: LampRecord, site: SiteConfig) -> ModeResult:
    tolerance_s = 2 * site.simulation.step_s
    exclude_s = 1.0 / site.controller.decision_rate_hz
    violations = shown_state_violations(lamps, PhasePlan.from_site(site), tolerance_s)
    if summary.first_capture_s is not None and summary.last_capture_s is not None:
        agreement = spat_agreement(
            lamps,
            summary.spat_changes,
            summary.first_capture_s + WARM_UP_S,
            summary.last_capture_s,
            period_s=SAMPLE_PERIOD_S,
            exclude_s=exclude_s,
        )
        samples, agreeing, excluded, fraction = (
            agreement.samples,
            agreement.agreeing,
            agreement.excluded,
            agreement.fraction,
        )
        wrong = list(agreement.disagreements)
    else:
        samples = agreeing = excluded = 0
        fraction = float("nan")
        wrong = []
    return ModeResult(
        mode=mode,
        vehicles_served=summary.vehicles_served,
        vehicles_departed=summary.vehicles_departed,
        mean_delay_s=summary.mean_delay_s,
        shown_state_violations=len(violations),
        violations=violations[:10],
        lamp_changes=len(lamps),
        spat_samples=samples,
        spat_agreeing=agreeing,
        spat_excluded=excluded,
        spat_agreement=fraction,
        spat_disagreements=wrong,
        wall_time_s=summary.wall_time_s,
        invalid_messages=len(summary.invalid_messages),
        stage_restarts=sum(summary.stage_restarts.values()),
        cabinet=None if summary.cabinet is None else summary.cabinet.model_dump(mode="json"),
    )


def run_bench(site_path: Path, duration_s: float, seed: int, workdir: Path) -> CabinetBenchResult:
    site = load_site_config(site_path)
    result = CabinetBenchResult(
        site=str(site_path),
        seed=seed,
        duration_s=duration_s,
        tolerance_s=2 * site.simulation.step_s,
        exclude_s=1.0 / site.controller.decision_rate_hz,
    )
    for mode in MODES:
        result.runs.append(run_mode(mode, site_path, workdir / mode, duration_s, seed))
    direct, cabinet = (next(r for r in result.runs if r.mode == mode) for mode in MODES)
    if direct.mean_delay_s and cabinet.mean_delay_s is not None:
        result.delay_ratio = cabinet.mean_delay_s / direct.mean_delay_s
        result.delay_within_target = abs(result.delay_ratio - 1.0) <= TARGET_DELAY_RATIO_TOLERANCE
    return result


def _number(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def render_table(result: CabinetBenchResult) -> str:
    lines = [
        f"rsu bench cabinet: {result.site}, seed {result.seed}, {result.duration_s:.0f} s in real time per run",
        f"{'backend':<10} {'served':>7} {'mean delay s':>13} {'violations':>11} {'SPaT = lamps':>13} "
        f"{'samples':>8} {'excluded':>9} {'SNMP errors':>12}",
    ]
    for run in result.runs:
        errors = "-" if run.cabinet is None else str(run.cabinet.get("snmp_errors", 0))
        agreement = "n/a" if math.isnan(run.spat_agreement) else f"{100 * run.spat_agreement:.2f} %"
        lines.append(
            f"{run.mode:<10} {run.vehicles_served:>7} {_number(run.mean_delay_s):>13} "
            f"{run.shown_state_violations:>11} {agreement:>13} {run.spat_samples:>8} {run.spat_excluded:>9} "
            f"{errors:>12}"
        )
    verdict = (
        "n/a"
        if result.delay_within_target is None
        else ("within" if result.delay_within_target else "NOT within")
        + f" the {100 * TARGET_DELAY_RATIO_TOLERANCE:.0f} % target"
    )
    lines.append(f"mean delay through the cabinet / direct: {_number(result.delay_ratio, 3)} ({verdict})")
    lines.append(
        f"shown-state check: conflict monitor on every lamp change, interval minima less {result.tolerance_s:.2f} s; "
        f"SPaT on {1000 * SAMPLE_PERIOD_S:.0f} ms samples, {1000 * result.exclude_s:.0f} ms around changes excluded"
    )
    for run in result.runs:
        for violation in run.violations[:3]:
            lines.append(f"  {run.mode} violation: {violation}")
        for wrong in run.spat_disagreements[:3]:
            lines.append(f"  {run.mode} SPaT differs: {wrong}")
    return "\n".join(lines)


def run_bench_cabinet_command(args: argparse.Namespace) -> int:
    site_path = Path(args.site) if args.site else SAMPLE_SITE
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="rsu-bench-cabinet-") as workdir:
        result = run_bench(site_path, args.duration_s, args.seed, Path(workdir))
    print(render_table(result))
    out = Path(args.out) if args.out else Path(tempfile.gettempdir()) / "rsu-bench-cabinet.json"
    out.write_text(json.dumps(asdict(result), indent=2, allow_nan=True) + "\n")
    print(f"figures written to {out} ({time.monotonic() - started:.0f} s)")
    return 0


def add_bench_cabinet_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser], name: str = "cabinet"
) -> argparse.ArgumentParser:
    """Add the cabinet bench (`rsu bench cabinet`)."""
    parser = subparsers.add_parser(
        name,
        help="the demo scenario, direct SUMO backend against the virtual NTCIP cabinet: delay, safety, SPaT",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument("--site", default=None, help="site file with a simulated camera (default: the sample)")
    parser.add_argument(
        "--duration-s",
        type=float,
        default=DEFAULT_DURATION_S,
        help="simulated (= wall-clock) seconds per run (default %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="demand seed (default %(default)s)")
    parser.add_argument("--out", default=None, help="write the figures here (default: a file in the temp folder)")
    parser.set_defaults(handler=run_bench_cabinet_command)
    return parser


def main(argv: list[str] | None = None) -> int:
    """`python -m rsu_tools.bench.cabinet [options]`: the same as `rsu bench cabinet [options]`."""
    parser = argparse.ArgumentParser(prog="rsu")
    subparsers = parser.add_subparsers(dest="bench", required=True)
    add_bench_cabinet_parser(subparsers)
    args = parser.parse_args(["cabinet", *(sys.argv[1:] if argv is None else argv)])
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
