"""The report: the table printed after a run, and the JSON file written with every figure."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def render_table(report: dict[str, Any]) -> str:
    stream = "x".join(str(v) for v in report["stream_size"])
    lines = [
        f"perception bench: {len(report['clips'])} clip(s), stream {stream}, {report['mode']}, "
        f"{report['machine']['cpus']} CPUs, load {report['machine']['load_average_at_start'][0]:.2f} at start",
        "",
    ]
    header = (
        f"{'variant':<14} {'fps':>6} {'decode':>11} {'motion':>11} {'detect':>11} {'track':>11} {'zones':>11} "
        f"{'drop':>5} {'cpu':>5} {'peakMB':>7}"
    )
    lines.append(header + "   (stage latency p50/p99 ms)")
    for variant in report["variants"]:
        stages = variant["stages"]

        def cell(stage: str, stages: dict[str, Any] = stages) -> str:
            s = stages.get(stage)
            return f"{s['p50_ms']:.1f}/{s['p99_ms']:.1f}" if s else "-"

        fps = variant.get("fps")
        lines.append(
            f"{variant['name']:<14} {fps if fps is not None else '-':>6} {cell('decode'):>11} {cell('motion'):>11} "
            f"{cell('detect'):>11} {cell('track'):>11} {cell('zones'):>11} {variant['dropped_frames']:>5} "
            f"{variant['cpu_use'] if variant['cpu_use'] is not None else '-':>5} {variant['peak_rss_mb']:>7.0f}"
        )
    lines.append("")
    for variant in report["variants"]:
        lines.append(f"{variant['name']}: {variant['detector']}")
        if variant.get("detail_region_runs"):
            lines.append(
                f"  detail regions ran {variant['detail_region_runs']} times in {variant['frames_processed']} frames"
            )
        gate = variant.get("motion_gate")
        if gate:
            lines.append(f"  motion gate: detector ran on {gate['detector_runs']}/{gate['frames']} frames")
        if report.get("loop_minutes"):
            lines.append(
                f"  RSS MB start {variant['rss_mb_start']} end {variant['rss_mb_end']} ({variant['loops']} loops)"
            )
        accuracy = variant.get("accuracy", {})
        counting = accuracy.get("counting")
        if counting:
            per_line = ", ".join(
                f"{s['line_id']} {s['matched_right_class']}/{s['truth']} (+{s['phantom']})" for s in counting["lines"]
            )
            movements = ", ".join(
                f"{m['from_line']}->{m['to_line']} {m['found_right_class']}/{m['truth']} pred {m['predicted']}"
                for m in counting["movements"]
            )
            lines.append(
                f"  counting: {counting['matched_right_class_total']}/{counting['truth_total']} crossings with the "
                f"right line and class, {counting['phantom_total']} phantom, {counting['unscored_total']} unscored; "
                f"per line {per_line}"
            )
            for unscored in counting["unscored_events"]:
                lines.append(
                    f"    unscored: {unscored['class']} over {unscored['line_id']} at {unscored['time_s']} s "
                    f"(track {unscored['track_id']}): {unscored['reason']}"
                )
            lines.append(f"  movements (found/truth): {movements}")
        detection = accuracy.get("detection")
        if detection:
            per_class = ", ".join(
                f"{name} {c['recall']}" + (f" ({c['recall_right_class']} right class)" if c["truth"] else "")
                for name, c in detection["per_class"].items()
            )
            lines.append(
                f"  detection @IoU {detection['iou_threshold']}: vehicle recall {detection['recall']}, precision "
                f"{detection['precision']}; per class {per_class}"
            )
        tracking = accuracy.get("tracking")
        if tracking:
            hota = "" if tracking.get("hota") is None else f", HOTA {tracking['hota']:.3f}"
            lines.append(
                f"  tracking: MOTA {tracking['mota']}, IDF1 {tracking['idf1']}{hota}, ID switches "
                f"{tracking['id_switches']}, distinct tracks {tracking.get('distinct_tracks')} "
                f"(ground truth {tracking.get('truth_tracks')})"
            )
            if tracking.get("box_f1") and tracking.get("idf1") is not None:
                lines.append(
                    f"  identity vs boxes: IDF1 / F1 of the tracked boxes {tracking['box_f1']:.3f} = "
                    f"{tracking['idf1'] / tracking['box_f1']:.2f} (1.0: identity lossless given the boxes; below 0.9 "
                    "identity limits IDF1, above it the boxes do)"
                )
    ratios = report.get("speed_ratio_to_baseline")
    if ratios:
        lines.append("")
        capped = " (realtime: capped by the source's frame rate, compare drops)" if report["mode"] == "realtime" else ""
        lines.append("speed vs baseline: " + ", ".join(f"{name} {ratio}x" for name, ratio in ratios.items()) + capped)
    return "\n".join(lines)


def write_report(report: dict[str, Any], output: Path) -> Path:
    """The report as indented JSON at `output` (its folder made if missing); the path written."""
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2), encoding="utf-8")
    return output
