"""`rsu bench signal`: the unit's signal controller against SUMO's own programs, software in the loop.

For every scenario (rsu_tools.sil.scenarios) and seed, every program runs on the identical demand file
with identical SUMO options: the unit's controller (``unit:adaptive``, ``unit:actuated``) fed only
by the simulated camera through the perception pipeline, and SUMO's ``fixed_webster``,
``actuated`` (defaults), ``actuated_tuned`` and ``delay_based`` (rsu_tools.sil.programs). One run per
process (libsumo holds one simulation per process), ``--workers`` at a time.

Prints a table (means over seeds), writes the per-run and summary figures as JSON and a Markdown
table for the README, and keeps the unit's ATSPM event log of every run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import multiprocessing
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rsu_tools.sil.programs import BUILTIN_PROGRAMS, REFERENCE_PROGRAMS
from rsu_tools.sil.runner import ALL_PROGRAMS, RunResult, RunSpec, result_to_json, run_one
from rsu_tools.sil.scenarios import DEFAULT_SCENARIOS, SCENARIOS

DEFAULT_SEEDS = (1, 2, 3, 4, 5)
# 30 min of demand + 3 min to drain: the whole default bench (4 x 5 x 6 runs) takes about
# 10-15 min on 2 cores; see the README table for the measured time.
DEFAULT_DURATION_S = 1800.0
DEFAULT_DRAIN_S = 180.0
QUICK_DURATION_S = 180.0
QUICK_DRAIN_S = 60.0
DEFAULT_STEP_S = 0.2
# Targets from issue 4: the unit's adaptive strategy against each scenario's best SUMO program.
TARGET_DELAY_RATIO = 0.85
TARGET_DECISION_P99_MS = 5.0
ADAPTIVE = "unit:adaptive"
# The programs compared against; reference programs run on another signal plan and are shown only.
SUMO_PROGRAMS = BUILTIN_PROGRAMS


@dataclass(frozen=True)
class SignalBenchOptions:
    scenarios: tuple[str, ...] = DEFAULT_SCENARIOS
    seeds: tuple[int, ...] = DEFAULT_SEEDS
    programs: tuple[str, ...] = ALL_PROGRAMS
    duration_s: float = DEFAULT_DURATION_S
    drain_s: float = DEFAULT_DRAIN_S
    step_s: float = DEFAULT_STEP_S
    workers: int = 2
    out_dir: str | None = None
    # Folder of cached SUMO baseline results (None: no cache). SUMO's own programs are
    # deterministic for a (scenario, seed, program, durations, step) on the same code and site, so
    # their figures are reused instead of rerun; the unit's runs are never cached.
    cache_dir: str | None = None


def _summarise(results: Sequence[RunResult], options: SignalBenchOptions) -> dict[str, Any]:
    """Means over seeds per (scenario, program), and the targets per scenario."""
    table: dict[str, dict[str, dict[str, float]]] = {}
    for scenario in options.scenarios:
        table[scenario] = {}
        for program in options.programs:
            runs = [r for r in results if r.scenario == scenario and r.program == program]
            if not runs:
                continue
            row = {
                "mean_delay_s": float(np.mean([r.mean_delay_s for r in runs])),
                "p95_delay_s": float(np.mean([r.p95_delay_s for r in runs])),
                "max_delay_s": float(max(r.max_delay_s for r in runs)),
                "throughput_veh_per_h": float(
                    np.mean([r.completed for r in runs]) * 3600.0 / (options.duration_s + options.drain_s)
                ),
                "completed": float(np.mean([r.completed for r in runs])),
                "vehicles": float(np.mean([r.vehicles for r in runs])),
                "max_queue_vehicles": float(max(r.max_queue_vehicles for r in runs)),
                "safety_violations": float(sum(r.safety_violations for r in runs)),
                "starved": float(sum(r.starved for r in runs)),
                "pedestrian_mean_wait_s": float(np.mean([r.pedestrian_mean_wait_s for r in runs])),
                "runs": float(len(runs)),
            }
            decisions = [r.decision_p99_ms for r in runs if not math.isnan(r.decision_p99_ms)]
            if decisions:
                row["decision_p99_ms"] = float(max(decisions))
            table[scenario][program] = row
    targets: dict[str, Any] = {}
    for scenario, rows in table.items():
        sumo = {p: rows[p] for p in SUMO_PROGRAMS if p in rows}
        if ADAPTIVE not in rows or not sumo:
            continue
        best = min(sumo, key=lambda p: sumo[p]["mean_delay_s"])
        ours = rows[ADAPTIVE]
        ratio = ours["mean_delay_s"] / sumo[best]["mean_delay_s"] if sumo[best]["mean_delay_s"] > 0 else math.inf
        targets[scenario] = {
            "best_sumo_program": best,
            "delay_ratio": ratio,
            "delay_target_met": ratio <= TARGET_DELAY_RATIO,
            "p95_no_worse": ours["p95_delay_s"] <= sumo[best]["p95_delay_s"],
            "zero_violations": ours["safety_violations"] == 0,
            "none_starved": ours["starved"] == 0,
            "decision_p99_ms": ours.get("decision_p99_ms", math.nan),
            "decision_target_met": ours.get("decision_p99_ms", math.inf) < TARGET_DECISION_P99_MS,
        }
    return {"table": table, "targets": targets}


_COLUMNS = (
    ("mean delay s", "mean_delay_s", "{:.1f}"),
    ("p95 delay s", "p95_delay_s", "{:.1f}"),
    ("throughput veh/h", "throughput_veh_per_h", "{:.0f}"),
    ("max queue veh", "max_queue_vehicles", "{:.0f}"),
    ("safety violations", "safety_violations", "{:.0f}"),
    ("starved", "starved", "{:.0f}"),
    ("ped wait s", "pedestrian_mean_wait_s", "{:.1f}"),
)


def _versus_best(summary: dict[str, Any], scenario: str, program: str, row: dict[str, float]) -> str:
    """A program's mean delay against the scenario's best SUMO program, marked (best) or
    (reference: another signal plan, not compared)."""
    target = summary["targets"].get(scenario)
    if target is None:
        return ""
    best = summary["table"][scenario][target["best_sumo_program"]]["mean_delay_s"]
    versus = f"{row['mean_delay_s'] / best:.2f}x" if best > 0 else ""
    if program == target["best_sumo_program"]:
        versus += " (best)"
    elif program in REFERENCE_PROGRAMS:
        versus += " (reference)"
    return versus


def render_markdown(summary: dict[str, Any]) -> str:
    header = "| scenario | program | " + " | ".join(name for name, _, _ in _COLUMNS) + " | vs best SUMO |"
    lines = [header, "|" + "---|" * (len(_COLUMNS) + 3)]
    for scenario, rows in summary["table"].items():
        for program, row in rows.items():
            cells = [fmt.format(row[key]) for _, key, fmt in _COLUMNS]
            versus = _versus_best(summary, scenario, program, row)
            lines.append(f"| {scenario} | {program} | " + " | ".join(cells) + f" | {versus} |")
    return "\n".join(lines) + "\n"


def render_table(summary: dict[str, Any]) -> str:
    names = ["scenario", "program", *(name for name, _, _ in _COLUMNS), "vs best"]
    rows: list[list[str]] = []
    for scenario, programs in summary["table"].items():
        for program, row in programs.items():
            versus = _versus_best(summary, scenario, program, row)
            rows.append([scenario, program, *(fmt.format(row[key]) for _, key, fmt in _COLUMNS), versus])
    widths = [max(len(names[i]), *(len(r[i]) for r in rows)) if rows else len(names[i]) for i in range(len(names))]
    out = ["  ".join(n.ljust(w) for n, w in zip(names, widths, strict=True))]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(out)


def _baseline_key(spec: RunSpec) -> str:
    """What a SUMO program's result depends on: the spec and the code and data that build the run."""
    import rsu_tools.sil.programs
    import rsu_tools.sil.runner
    import rsu_tools.sil.safety
    import rsu_tools.sil.scenarios

    digest = hashlib.sha256()
    for module in (rsu_tools.sil.programs, rsu_tools.sil.runner, rsu_tools.sil.safety, rsu_tools.sil.scenarios):
        digest.update(Path(str(module.__file__)).read_bytes())
    digest.update(Path(spec.site_path).read_bytes())
    spec_key = (spec.scenario, spec.seed, spec.program, spec.duration_s, spec.drain_s, spec.step_s)
    digest.update(repr(spec_key).encode())
    return f"{spec.tag}_{digest.hexdigest()[:16]}"


def _cached(cache_dir: Path | None, spec: RunSpec) -> RunResult | None:
    if cache_dir is None or spec.program.startswith("unit:"):
        return None
    path = cache_dir / f"{_baseline_key(spec)}.json"
    if not path.exists():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    data = {key: (math.nan if value is None and key.startswith("decision_") else value) for key, value in data.items()}
    return RunResult(**data)


def _store(cache_dir: Path | None, spec: RunSpec, result: RunResult) -> None:
    if cache_dir is None or spec.program.startswith("unit:"):
        return
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"{_baseline_key(spec)}.json"
    path.write_text(json.dumps(result_to_json(result)), encoding="utf-8")


def run_signal_bench(
    options: SignalBenchOptions, progress: Callable[[RunResult], None] | None = None
) -> tuple[list[RunResult], dict[str, Any], Path]:
    unknown = sorted(set(options.scenarios) - set(SCENARIOS))
    if unknown:
        raise ValueError(f"unknown scenarios {unknown}; known: {', '.join(SCENARIOS)}")
    out_dir = Path(options.out_dir) if options.out_dir else Path(tempfile.mkdtemp(prefix="rsu-bench-signal-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    specs = [
        RunSpec(scenario, seed, program, options.duration_s, options.drain_s, options.step_s, str(out_dir / "runs"))
        for scenario in options.scenarios
        for seed in options.seeds
        for program in options.programs
    ]
    # The slow runs (the unit's: camera + perception in the loop) first, so the pool ends evenly.
    specs.sort(key=lambda spec: not spec.program.startswith("unit:"))
    results: list[RunResult] = []
    cache_dir = Path(options.cache_dir) if options.cache_dir else None
    to_run: list[RunSpec] = []
    for spec in specs:
        cached = _cached(cache_dir, spec)
        if cached is None:
            to_run.append(spec)
            continue
        results.append(cached)
        if progress is not None:
            progress(cached)
    # A fresh process per run: libsumo keeps one simulation per process and its state leaks.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=max(1, options.workers), mp_context=context, max_tasks_per_child=1) as pool:
        futures = {pool.submit(_run_in_worker, spec): spec for spec in to_run}
        for future in as_completed(futures):
            result = future.result()
            _store(cache_dir, futures[future], result)
            results.append(result)
            if progress is not None:
                progress(result)
    order = {(s.scenario, s.seed, s.program): i for i, s in enumerate(specs)}
    results.sort(key=lambda r: order[(r.scenario, r.seed, r.program)])
    return results, _summarise(results, options), out_dir


def _run_in_worker(spec: RunSpec) -> RunResult:
    """``run_one`` in a pool worker. SUMO's exceptions cannot be pickled back to the parent (they
    hold a SWIG object), so a failed run is reported as a plain error naming the run."""
    try:
        return run_one(spec)
    except Exception as error:
        raise RuntimeError(f"run {spec.tag} failed: {type(error).__name__}: {error}") from None


def add_bench_signal_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser], name: str = "signal"
) -> argparse.ArgumentParser:
    """Add `rsu bench signal`."""
    defaults = SignalBenchOptions()
    parser = subparsers.add_parser(
        name,
        help="software in the loop: the unit's signal controller vs SUMO's programs on 4 scenarios",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument(
        "--scenarios",
        default=",".join(defaults.scenarios),
        help=f"comma-separated scenario names (known: {', '.join(SCENARIOS)})",
    )
    parser.add_argument("--seeds", type=int, default=len(defaults.seeds), help="seeds per scenario (1..N)")
    parser.add_argument("--programs", default=",".join(defaults.programs), help="comma-separated programs")
    parser.add_argument("--duration-s", type=float, default=defaults.duration_s, help="simulated demand per run")
    parser.add_argument("--drain-s", type=float, default=defaults.drain_s, help="run on without new demand")
    parser.add_argument("--step-s", type=float, default=defaults.step_s, help="SUMO step = camera frame period")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="parallel runs")
    parser.add_argument(
        "--quick", action="store_true", help="one scenario (balanced), one seed, 3 min: a smoke test of everything"
    )
    parser.add_argument("--out", default=None, help="output folder (default: a new folder in the temp folder)")
    parser.add_argument(
        "--cache",
        default=None,
        help="folder to reuse SUMO baseline results from (and store them in); keyed by the run and the code",
    )
    parser.set_defaults(handler=run_bench_signal_command)
    return parser


def options_from_args(args: argparse.Namespace) -> SignalBenchOptions:
    if args.quick:
        return SignalBenchOptions(
            scenarios=("balanced",),
            seeds=(1,),
            programs=tuple(p.strip() for p in args.programs.split(",") if p.strip()),
            duration_s=QUICK_DURATION_S,
            drain_s=QUICK_DRAIN_S,
            step_s=args.step_s,
            workers=args.workers,
            out_dir=args.out,
            cache_dir=args.cache,
        )
    return SignalBenchOptions(
        scenarios=tuple(s.strip() for s in args.scenarios.split(",") if s.strip()),
        seeds=tuple(range(1, args.seeds + 1)),
        programs=tuple(p.strip() for p in args.programs.split(",") if p.strip()),
        duration_s=args.duration_s,
        drain_s=args.drain_s,
        step_s=args.step_s,
        workers=args.workers,
        out_dir=args.out,
        cache_dir=args.cache,
    )


def run_bench_signal_command(args: argparse.Namespace) -> int:
    options = options_from_args(args)
    started = time.perf_counter()
    total = len(options.scenarios) * len(options.seeds) * len(options.programs)
    done = 0

    def progress(result: RunResult) -> None:
        nonlocal done
        done += 1
        print(
            f"[{done}/{total}] {result.scenario} seed {result.seed} {result.program}: "
            f"mean delay {result.mean_delay_s:.1f} s, violations {result.safety_violations} ({result.wall_s:.0f} s)",
            file=sys.stderr,
            flush=True,
        )

    results, summary, out_dir = run_signal_bench(options, progress)
    wall_s = time.perf_counter() - started
    load = os.getloadavg()
    summary["meta"] = {
        "scenarios": {name: SCENARIOS[name].description for name in options.scenarios},
        "seeds": list(options.seeds),
        "duration_s": options.duration_s,
        "drain_s": options.drain_s,
        "step_s": options.step_s,
        "workers": options.workers,
        "wall_s": wall_s,
        "load_average_at_end": list(load),
    }
    (out_dir / "signal_bench.json").write_text(
        json.dumps({"summary": summary, "runs": [result_to_json(r) for r in results]}, indent=1), encoding="utf-8"
    )
    markdown = render_markdown(summary)
    (out_dir / "signal_bench.md").write_text(markdown, encoding="utf-8")
    print(render_table(summary))
    for scenario, target in summary["targets"].items():
        print(
            f"{scenario}: unit:adaptive / best SUMO ({target['best_sumo_program']}) = {target['delay_ratio']:.2f}x "
            f"(target <= {TARGET_DELAY_RATIO}: {'met' if target['delay_target_met'] else 'NOT met'}); "
            f"p95 no worse: {target['p95_no_worse']}; violations 0: {target['zero_violations']}; "
            f"decision p99 {target['decision_p99_ms']:.2f} ms"
        )
    print(f"{len(results)} runs in {wall_s:.0f} s, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"wrote {out_dir / 'signal_bench.json'}, {out_dir / 'signal_bench.md'} and ATSPM logs in {out_dir / 'runs'}")
    return 0
