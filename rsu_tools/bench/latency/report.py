"""The report: the table printed after a run, and the JSON file of every figure."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from rsu_tools.bench.latency.statistics import LatencyResult


def render_table(result: LatencyResult) -> str:
    lines = [
        "",
        f"rsu bench latency: broker {result.broker}, {result.cpu_count} CPUs, load average "
        f"{' '.join(f'{v:.2f}' for v in result.load_average_start)} at start, "
        f"{' '.join(f'{v:.2f}' for v in result.load_average_end)} at end",
    ]
    path = result.path
    if path is not None:
        detector = path.detector
        lines += [
            "",
            f"(a) camera to vehicle: {path.clip}",
            f"    detector {detector['type']} {Path(str(detector['weights'])).name} imgsz {detector['imgsz']} "
            f"threads {detector['threads']}; {path.fps:g} fps, {path.frames_released} frames, "
            f"{path.frames_dropped} dropped, {path.warnings_timed} warnings timed, {path.warnings_lost} lost",
            f"    measured: {path.measured}",
            "",
            f"    {'stage':<16}{'p50 ms':>10}{'p99 ms':>10}{'share':>9}",
        ]
        for stage in path.stages:
            lines.append(f"    {stage.stage:<16}{stage.p50_ms:>10.2f}{stage.p99_ms:>10.2f}{stage.share_of_mean:>9.0%}")
        e2e, after = path.end_to_end, path.after_detector
        lines += [
            f"    {'end to end':<16}{e2e.p50_ms:>10.2f}{e2e.p99_ms:>10.2f}"
            f"   target p50 < {path.targets_ms['end_to_end_p50']:g}, p99 < {path.targets_ms['end_to_end_p99']:g}: "
            f"{_verdict(path.passed['end_to_end_p50'] and path.passed['end_to_end_p99'])}",
            f"    {'after detector':<16}{after.p50_ms:>10.2f}{after.p99_ms:>10.2f}"
            f"   target p99 < {path.targets_ms['after_detector_p99']:g}: {_verdict(path.passed['after_detector_p99'])}",
        ]
    fanout = result.fanout
    if fanout is not None:
        lines += [
            "",
            f"(b) fan-out: {fanout.clients} clients in {fanout.client_processes} processes, "
            f"{fanout.messages} warnings, {fanout.deliveries} of {fanout.deliveries_expected} deliveries",
            f"    measured: {fanout.measured}",
            f"    delivery from publish: p50 {fanout.delivery.p50_ms:.2f} ms, p99 {fanout.delivery.p99_ms:.2f} ms, "
            f"max {fanout.delivery.max_ms:.2f} ms   target p99 < {fanout.target_p99_ms:g}: {_verdict(fanout.passed)}",
        ]
    lines += [f"  note: {note}" for note in result.notes]
    return "\n".join(lines)


def _verdict(passed: bool) -> str:
    return "met" if passed else "NOT met"


def write_json(result: LatencyResult, path: Path) -> Path:
    """Every figure of the run as indented JSON at `path`; the path written."""
    path.write_text(json.dumps(asdict(result), indent=2) + "\n")
    return path
