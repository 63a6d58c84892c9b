"""The run: each variant in its own fresh process, one after the other, and the report they make up."""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import time
import traceback
from collections.abc import Sequence
from typing import Any

from rsu_tools.bench.perception.baselines import _run_baseline
from rsu_tools.bench.perception.library_trackers import _run_library_tracker
from rsu_tools.bench.perception.plan import BenchError, BenchPlan, VariantSpec, _clip_fps, _clip_size
from rsu_tools.bench.perception.playback import ClipPlayer, _run_rsu
from rsu_tools.bench.perception.statistics import _accuracy

SCHEMA = "rsu_tools.bench.perception/1"


def run_variant(plan: BenchPlan, spec: VariantSpec) -> dict[str, Any]:
    """One variant over the clips, in this process; the result dict of the JSON report."""
    source_sizes = {_clip_size(clip) for clip in plan.clips}
    if len(source_sizes) != 1:
        raise BenchError(f"the clips have different frame sizes {sorted(source_sizes)}; bench them separately")
    source_wh = source_sizes.pop()
    collect = plan.loop_minutes is None and (plan.otc_events is not None or bool(plan.mot_ground_truth))
    loop_until = time.perf_counter() + 60.0 * plan.loop_minutes if plan.loop_minutes else None
    player = ClipPlayer(
        plan.clips, plan.resize_wh, max_frames=plan.max_frames, loop_until=loop_until, realtime=plan.realtime
    )
    load_before = os.getloadavg()
    runners = {"rsu": _run_rsu, "baseline": _run_baseline, "library": _run_library_tracker}
    runner = runners[spec.kind]
    _, collected, info, speed = runner(plan, spec, player, source_wh, collect)
    result: dict[str, Any] = {"name": spec.name, "kind": spec.kind, **info, **speed}
    result["load_average_before"] = [round(x, 2) for x in load_before]
    result["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    if collect:
        result["accuracy"] = _accuracy(plan, collected)
    return result


def _variant_process(plan: BenchPlan, spec: VariantSpec, results: Any) -> None:
    logging.basicConfig(level=logging.WARNING)
    try:
        results.put(("ok", run_variant(plan, spec)))
    except BaseException as exc:  # the parent reports it; a child must not die silently
        results.put(("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))


def run_bench(plan: BenchPlan, variants: Sequence[VariantSpec], *, isolated: bool = True) -> dict[str, Any]:
    """All variants one after the other, each in a fresh process unless isolated=False (tests)."""
    report: dict[str, Any] = {
        "schema": SCHEMA,
        "site": str(plan.site_path),
        "camera_id": plan.camera_id,
        "clips": [str(c) for c in plan.clips],
        "source_size": list(_clip_size(plan.clips[0])),
        "stream_size": list(plan.resize_wh) if plan.resize_wh else list(_clip_size(plan.clips[0])),
        "source_fps": _clip_fps(plan.clips[0]),
        "mode": "realtime" if plan.realtime else "as fast as possible",
        "loop_minutes": plan.loop_minutes,
        "max_frames": plan.max_frames,
        "threads": plan.threads,
        "machine": {"cpus": os.cpu_count(), "cpu": _cpu_model(), "load_average_at_start": list(os.getloadavg())},
        "variants": [],
    }
    context = multiprocessing.get_context("spawn")
    for spec in variants:
        if not isolated:
            report["variants"].append(run_variant(plan, spec))
            continue
        results = context.Queue()
        child = context.Process(target=_variant_process, args=(plan, spec, results), name=f"bench {spec.name}")
        child.start()
        status, payload = _wait_for_result(child, results)
        if status != "ok":
            raise BenchError(f"variant {spec.name} failed: {payload}")
        report["variants"].append(payload)
    baseline = next((v for v in report["variants"] if v["kind"] == "baseline"), None)
    if baseline is not None and baseline.get("fps"):
        report["speed_ratio_to_baseline"] = {
            v["name"]: round(v["fps"] / baseline["fps"], 2)
            for v in report["variants"]
            if v["kind"] == "rsu" and v.get("fps")
        }
    report["machine"]["load_average_at_end"] = list(os.getloadavg())
    return report


def _wait_for_result(child: Any, results: Any) -> tuple[str, Any]:
    """The child's (status, payload); an error if it dies without one (killed, crashed in native code)."""
    while True:
        try:
            outcome: tuple[str, Any] = results.get(timeout=1.0)
        except queue.Empty:
            if not child.is_alive():
                return "error", f"the process ended without a result (exit code {child.exitcode})"
            continue
        child.join()
        return outcome


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"
