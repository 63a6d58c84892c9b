"""`rsu bench signal`: the unit's signal controller against SUMO's own programs, software in the loop.

For every signal plan (the site's protected/permissive lefts, and the same junction with protected-only
lefts: rsu_tools.sil.runner.PLANS), scenario (rsu_tools.sil.scenarios) and seed, every program runs on
the identical demand file with identical SUMO options and the same plan: the unit's controller
(``unit:schedule``, ``unit:adaptive``, ``unit:actuated``) fed only by the simulated camera through the
perception pipeline, and SUMO's ``fixed_webster``, ``actuated`` (defaults), ``actuated_tuned`` and
``delay_based`` (rsu_tools.sil.programs). One run per process (libsumo holds one simulation per
process), ``--workers`` at a time. Seeds may be named (``--seeds 101-105``) so that tuning and
reporting use different demand.

Prints a table grouped by plan (means over seeds, and per unit program the seeds it won against the
best SUMO program), writes the per-run and summary figures as JSON and a Markdown
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
from rsu_tools.sil.runner import (
    ALL_PROGRAMS,
    PLANS,
    UNIT_PREFIX,
    RunResult,
    RunSpec,
    programs_for_plan,
    result_to_json,
    run_one,
)
from rsu_tools.sil.scenarios import DEFAULT_SCENARIOS, SCENARIOS, STRESS_SCENARIOS, UNSEEN_SCENARIOS

# Names --scenarios accepts for groups of scenarios.
SCENARIO_GROUPS = {
    "default": DEFAULT_SCENARIOS,
    "stress": STRESS_SCENARIOS,
    "unseen": UNSEEN_SCENARIOS,
    "all": (*DEFAULT_SCENARIOS, *STRESS_SCENARIOS, *UNSEEN_SCENARIOS),
}

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
    # The signal plans every scenario runs on (rsu_tools.sil.runner.PLANS).
    plans: tuple[str, ...] = PLANS


def _row(runs: Sequence[RunResult], options: SignalBenchOptions) -> dict[str, float]:
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
    cpu = [r.decision_cpu_p99_ms for r in runs if not math.isnan(r.decision_cpu_p99_ms)]
    if cpu:
        row["decision_cpu_p99_ms"] = float(max(cpu))
    return row


def _summarise(results: Sequence[RunResult], options: SignalBenchOptions) -> dict[str, Any]:
    """Means over seeds per (plan, scenario, program), and per plan and scenario each of the unit's
    programs against the best SUMO program (by mean delay over the seeds) with the targets."""
    table: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    targets: dict[str, dict[str, dict[str, Any]]] = {}
    for plan in options.plans:
        table[plan] = {}
        targets[plan] = {}
        for scenario in options.scenarios:
            rows: dict[str, dict[str, float]] = {}
            for program in options.programs:
                runs = [r for r in results if (r.plan, r.scenario, r.program) == (plan, scenario, program)]
                if runs:
                    rows[program] = _row(runs, options)
            if not rows:
                continue
            table[plan][scenario] = rows
            sumo = {p: rows[p] for p in SUMO_PROGRAMS if p in rows}
            if not sumo:
                continue
            best = min(sumo, key=lambda p: sumo[p]["mean_delay_s"])
            best_by_seed = {
                r.seed: r.mean_delay_s for r in results if (r.plan, r.scenario, r.program) == (plan, scenario, best)
            }
            per_unit: dict[str, Any] = {}
            for program, ours in rows.items():
                if not program.startswith(UNIT_PREFIX):
                    continue
                best_delay = sumo[best]["mean_delay_s"]
                ratio = ours["mean_delay_s"] / best_delay if best_delay > 0 else math.inf
                own = [r for r in results if (r.plan, r.scenario, r.program) == (plan, scenario, program)]
                won = sum(1 for r in own if r.seed in best_by_seed and r.mean_delay_s < best_by_seed[r.seed])
                per_unit[program] = {
                    "best_sumo_program": best,
                    "delay_ratio": ratio,
                    "delay_target_met": ratio <= TARGET_DELAY_RATIO,
                    "p95_no_worse": ours["p95_delay_s"] <= sumo[best]["p95_delay_s"],
                    "zero_violations": ours["safety_violations"] == 0,
                    "none_starved": ours["starved"] == 0,
                    "seeds_won": won,
                    "seeds": len(own),
                    "decision_p99_ms": ours.get("decision_p99_ms", math.nan),
                    # On the CPU clock where measured: a loaded machine's waits are not the decision's.
                    "decision_cpu_p99_ms": ours.get("decision_cpu_p99_ms", math.nan),
                    "decision_target_met": ours.get("decision_cpu_p99_ms", ours.get("decision_p99_ms", math.inf))
                    < TARGET_DECISION_P99_MS,
                }
            targets[plan][scenario] = per_unit
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


def _versus_best(summary: dict[str, Any], plan: str, scenario: str, program: str, row: dict[str, float]) -> str:
    """A program's mean delay against the scenario's best SUMO program on the same plan, marked
    (best) or (reference: another signal plan, not compared), and a unit program's seeds won."""
    targets = summary["targets"].get(plan, {}).get(scenario)
    if not targets:
        return ""
    best_program = next(iter(targets.values()))["best_sumo_program"]
    best = summary["table"][plan][scenario][best_program]["mean_delay_s"]
    versus = f"{row['mean_delay_s'] / best:.2f}x" if best > 0 else ""
    if program == best_program:
        versus += " (best)"
    elif program in REFERENCE_PROGRAMS:
        versus += " (reference)"
    elif program in targets:
        versus += f" ({targets[program]['seeds_won']}/{targets[program]['seeds']} seeds won)"
    return versus


def _rows(summary: dict[str, Any]) -> list[list[str]]:
    rows: list[list[str]] = []
    for plan, scenarios in summary["table"].items():
        for scenario, programs in scenarios.items():
            for program, row in programs.items():
                versus = _versus_best(summary, plan, scenario, program, row)
                rows.append([plan, scenario, program, *(fmt.format(row[key]) for _, key, fmt in _COLUMNS), versus])
    return rows


def render_markdown(summary: dict[str, Any]) -> str:
    header = "| plan | scenario | program | " + " | ".join(name for name, _, _ in _COLUMNS) + " | vs best SUMO |"
    lines = [header, "|" + "---|" * (len(_COLUMNS) + 4)]
    lines += ["| " + " | ".join(cells) + " |" for cells in _rows(summary)]
    return "\n".join(lines) + "\n"


def render_table(summary: dict[str, Any]) -> str:
    names = ["plan", "scenario", "program", *(name for name, _, _ in _COLUMNS), "vs best"]
    rows = _rows(summary)
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
    spec_key = (spec.plan, spec.scenario, spec.seed, spec.program, spec.duration_s, spec.drain_s, spec.step_s)
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
    unknown_plans = sorted(set(options.plans) - set(PLANS))
    if unknown_plans:
        raise ValueError(f"unknown signal plans {unknown_plans}; known: {', '.join(PLANS)}")
    runs_dir = str(out_dir / "runs")
    specs = [
        RunSpec(scenario, seed, program, options.duration_s, options.drain_s, options.step_s, runs_dir, plan=plan)
        for plan in options.plans
        for scenario in options.scenarios
        for seed in options.seeds
        for program in programs_for_plan(options.programs, plan)
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
    order = {(s.plan, s.scenario, s.seed, s.program): i for i, s in enumerate(specs)}
    results.sort(key=lambda r: order[(r.plan, r.scenario, r.seed, r.program)])
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
        help=f"comma-separated scenario names (known: {', '.join(SCENARIOS)}) or groups ({', '.join(SCENARIO_GROUPS)})",
    )
    parser.add_argument(
        "--seeds",
        default=str(len(defaults.seeds)),
        help="seeds per scenario: N for 1..N, a range A-B or a comma-separated list (tune on some, report on others)",
    )
    parser.add_argument(
        "--plan",
        default="both",
        choices=("both", *PLANS),
        help="signal plan(s): the site's protected/permissive lefts, protected-only lefts, or both (default)",
    )
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


def parse_scenarios(text: str) -> tuple[str, ...]:
    """Comma-separated scenario names or group names (``SCENARIO_GROUPS``), in order, each once."""
    names: list[str] = []
    for part in (p.strip() for p in text.split(",")):
        for name in SCENARIO_GROUPS.get(part, (part,) if part else ()):
            if name not in names:
                names.append(name)
    return tuple(names)


def parse_seeds(text: str) -> tuple[int, ...]:
    """``5`` -> 1..5; ``101-105`` -> 101..105; ``1,3,7`` -> those. Raises naming --seeds otherwise."""
    text = text.strip()
    try:
        if "," in text:
            seeds = tuple(int(part) for part in text.split(",") if part.strip())
        elif "-" in text:
            first, last = (int(part) for part in text.split("-", 1))
            seeds = tuple(range(first, last + 1))
        else:
            seeds = tuple(range(1, int(text) + 1))
    except ValueError:
        raise ValueError(f"--seeds: expected N, A-B or a comma-separated list of integers, got {text!r}") from None
    if not seeds or any(seed < 0 for seed in seeds):
        raise ValueError(f"--seeds: expected at least one non-negative seed, got {text!r}")
    return seeds


def options_from_args(args: argparse.Namespace) -> SignalBenchOptions:
    plans = PLANS if args.plan == "both" else (args.plan,)
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
            plans=plans,
        )
    return SignalBenchOptions(
        plans=plans,
        scenarios=parse_scenarios(args.scenarios),
        seeds=parse_seeds(args.seeds),
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
    total = sum(
        len(options.scenarios) * len(options.seeds) * len(programs_for_plan(options.programs, plan))
        for plan in options.plans
    )
    done = 0

    def progress(result: RunResult) -> None:
        nonlocal done
        done += 1
        print(
            f"[{done}/{total}] {result.plan} {result.scenario} seed {result.seed} {result.program}: "
            f"mean delay {result.mean_delay_s:.1f} s, violations {result.safety_violations} ({result.wall_s:.0f} s)",
            file=sys.stderr,
            flush=True,
        )

    results, summary, out_dir = run_signal_bench(options, progress)
    wall_s = time.perf_counter() - started
    load = os.getloadavg()
    summary["meta"] = {
        "plans": list(options.plans),
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
    for plan, scenarios in summary["targets"].items():
        for scenario, per_unit in scenarios.items():
            for program, target in per_unit.items():
                print(
                    f"{plan} {scenario}: {program} / best SUMO ({target['best_sumo_program']}) = "
                    f"{target['delay_ratio']:.2f}x (target <= {TARGET_DELAY_RATIO}: "
                    f"{'met' if target['delay_target_met'] else 'NOT met'}); seeds won {target['seeds_won']}/"
                    f"{target['seeds']}; p95 no worse: {target['p95_no_worse']}; violations 0: "
                    f"{target['zero_violations']}; none starved: {target['none_starved']}; "
                    f"decision p99 {target['decision_p99_ms']:.2f} ms wall, "
                    f"{target['decision_cpu_p99_ms']:.2f} ms CPU"
                )
    print(f"{len(results)} runs in {wall_s:.0f} s, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"wrote {out_dir / 'signal_bench.json'}, {out_dir / 'signal_bench.md'} and ATSPM logs in {out_dir / 'runs'}")
    return 0
