"""From timestamps to figures: percentiles, each stage's share of the end-to-end time, and pass or fail
against the latency targets."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rsu_contracts.config.model import CameraConfig
from rsu_tools.bench.latency.plan import WARMUP_FRAMES, LatencyOptions

TARGET_END_TO_END_P50_MS = 60.0
TARGET_END_TO_END_P99_MS = 100.0
TARGET_AFTER_DETECTOR_P99_MS = 10.0
TARGET_FANOUT_P99_MS = 50.0
# (source, capture time, first time, second time) noted by a worker.
Record = tuple[str, float, float, float]
STAGES = ("detect", "track", "tracks hop", "warning logic", "sign", "delivery")


@dataclass
class Figure:
    p50_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    samples: int


@dataclass
class StageFigure:
    stage: str
    p50_ms: float
    p99_ms: float
    share_of_mean: float  # this stage's mean over the end-to-end mean


@dataclass
class PathResult:
    measured: str
    clip: str
    detector: dict[str, Any]
    fps: float
    frames_released: int
    frames_dropped: int
    warnings_timed: int
    warnings_lost: int
    end_to_end: Figure
    after_detector: Figure
    stages: list[StageFigure]
    targets_ms: dict[str, float]
    passed: dict[str, bool]


@dataclass
class FanoutResult:
    measured: str
    clients: int
    client_kind: str
    client_processes: int
    messages: int
    deliveries_expected: int
    deliveries: int
    delivery: Figure
    target_p99_ms: float
    passed: bool


@dataclass
class LatencyResult:
    broker: str
    cpu_count: int
    load_average_start: list[float]
    load_average_end: list[float]
    path: PathResult | None = None
    fanout: FanoutResult | None = None
    notes: list[str] = field(default_factory=list)


def figure(values_s: Sequence[float]) -> Figure:
    values = np.asarray(values_s, dtype=float) * 1000.0
    if len(values) == 0:
        return Figure(math.nan, math.nan, math.nan, math.nan, 0)
    return Figure(
        p50_ms=float(np.percentile(values, 50)),
        p99_ms=float(np.percentile(values, 99)),
        max_ms=float(values.max()),
        mean_ms=float(values.mean()),
        samples=len(values),
    )


@dataclass
class _FrameTimes:
    capture_s: float
    detected_s: float
    tracked_s: float


def _path_result(
    options: LatencyOptions,
    camera: CameraConfig,
    frames: dict[float, _FrameTimes],
    collected: dict[str, dict[float, tuple[float, float]]],
    released: int,
    dropped: int,
    notes: list[str],
) -> PathResult:
    stage_values: dict[str, list[float]] = {name: [] for name in STAGES}
    end_to_end: list[float] = []
    after_detector: list[float] = []
    timed = lost = 0
    for n, capture_s in enumerate(sorted(frames)):
        times = frames[capture_s]
        received_in = collected["v2x-in"].get(capture_s)
        published = collected["v2x"].get(capture_s)
        at_vehicle = collected["vehicle"].get(capture_s)
        if received_in is None or published is None or at_vehicle is None:
            lost += 1
            continue
        if n < WARMUP_FRAMES:
            continue
        timed += 1
        in_s = received_in[0]
        logic_done_s, signed_s = published
        vehicle_s = at_vehicle[1]
        parts = {
            "detect": times.detected_s - capture_s,
            "track": times.tracked_s - times.detected_s,
            "tracks hop": in_s - times.tracked_s,
            "warning logic": logic_done_s - in_s,
            "sign": signed_s - logic_done_s,
            "delivery": vehicle_s - signed_s,
        }
        for name, value in parts.items():
            stage_values[name].append(value)
        end_to_end.append(vehicle_s - capture_s)
        after_detector.append(vehicle_s - times.detected_s)
    total = figure(end_to_end)
    stages = []
    for name in STAGES:
        stage = figure(stage_values[name])
        share = stage.mean_ms / total.mean_ms if total.samples and total.mean_ms > 0 else math.nan
        stages.append(StageFigure(name, stage.p50_ms, stage.p99_ms, share))
    after = figure(after_detector)
    if lost:
        notes.append(f"{lost} of {len(frames)} timed warnings did not reach the vehicle within the run")
    detector = camera.detector
    return PathResult(
        measured=(
            "per frame: the NEW warning of a synthetic critical rear-end pair injected into that frame's "
            "track list, from the frame's release (capture) to the vehicle process having verified and "
            f"decoded it; first {WARMUP_FRAMES} frames excluded"
        ),
        clip=str(camera.uri),
        detector={
            "type": detector.type,
            "weights": detector.weights,
            "imgsz": detector.imgsz,
            "threads": detector.threads,
        },
        fps=options.fps,
        frames_released=released,
        frames_dropped=dropped,
        warnings_timed=timed,
        warnings_lost=lost,
        end_to_end=total,
        after_detector=after,
        stages=stages,
        targets_ms={
            "end_to_end_p50": TARGET_END_TO_END_P50_MS,
            "end_to_end_p99": TARGET_END_TO_END_P99_MS,
            "after_detector_p99": TARGET_AFTER_DETECTOR_P99_MS,
        },
        passed={
            "end_to_end_p50": total.p50_ms < TARGET_END_TO_END_P50_MS,
            "end_to_end_p99": total.p99_ms < TARGET_END_TO_END_P99_MS,
            "after_detector_p99": after.p99_ms < TARGET_AFTER_DETECTOR_P99_MS,
        },
    )


def _fanout_result(
    options: LatencyOptions, published: dict[int, float], received: list[tuple[int, float]]
) -> FanoutResult:
    """The fan-out figures from the publish time of each seq and the (seq, arrival time) of each delivery."""
    latencies = [at - published[seq] for seq, at in received if seq in published]
    delivery = figure(latencies)
    clients = (
        "raw MQTT v5 subscribers (QoS 1 with PUBACK; time taken when the bytes arrive)"
        if options.client_kind == "raw"
        else "paho clients (time taken in on_message)"
    )
    return FanoutResult(
        measured=(
            f"signed CollisionWarning JSON (QoS 1) from the publish call to each client: {clients}, "
            f"{options.client_processes} processes with one network loop each, no signature check"
        ),
        clients=options.clients,
        client_kind=options.client_kind,
        client_processes=options.client_processes,
        messages=options.fanout_messages,
        deliveries_expected=options.fanout_messages * options.clients,
        deliveries=len(latencies),
        delivery=delivery,
        target_p99_ms=TARGET_FANOUT_P99_MS,
        passed=len(latencies) == options.fanout_messages * options.clients and delivery.p99_ms < TARGET_FANOUT_P99_MS,
    )
