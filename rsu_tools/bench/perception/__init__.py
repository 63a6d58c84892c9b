"""`rsu bench perception`: speed and accuracy of the camera pipeline on a clip, against Ultralytics' own loop.

    rsu bench perception --site datasets/opentrafficcam/site.yaml --clip A.mp4 --clip B.mp4 \\
        --otc-events Testvideo.otgtevents.json --variant name=int8,type=openvino,weights=m_int8.xml

Every variant runs in its own fresh process, one after the other, on the same frames:
- `rsu` variants: the site camera's detector (or one given by --variant) -> PerceptionPipeline
  (ground tracker, zones, line counter), optionally behind the motion gate;
- `baseline`: Ultralytics' `model.track(frame, persist=True)` on the .pt at imgsz 640 with its
  default settings, except: the tracker is ByteTrack unless --baseline-tracker says otherwise
  (Ultralytics 8.4 made TrackTrack its default), verbose is off, and torch gets --threads threads
  instead of Ultralytics' cpu_count - 1. Its tracks are counted on the site's counting lines: the
  box bottom centre projected to the ground, a crossing when its path between two frames cuts a
  line, once per track and line (what Ultralytics' ObjectCounter does with box centres in the image).

Clips play back to back (capture time continuous from 0 s), decoded in a reader thread that runs
ahead by a few frames. `--resize WxH` resizes every frame in the reader (its cost is part of
"decode") and scales the calibration to match, for a throughput figure at a given stream size;
accuracy is still scored in the clip's own pixels. `--realtime` releases frames at the clip's
frame rate and the pipeline takes the newest one (as a live camera), so frames it cannot keep up
with are dropped and counted; otherwise every frame is processed as fast as possible.
`--loop-minutes N` loops the clips for N minutes and reports the resident memory over time.

A variant may add a detail region (DetectorConfig.detail_regions: a second, higher-resolution pass
over the far road, rsu.detectors.detail) with `detail=x1:y1:x2:y2,detail_weights=...,detail_interval_s=...`.

Reported per variant: sustained fps (frames after the warm-up over their wall time), per-stage
latency p50/p99 in ms (decode, motion, detect, track, zones; the baseline's detect is Ultralytics'
preprocess + inference + postprocess and its track the rest of the track() call), dropped frames,
CPU use (process CPU seconds per wall second: 2.0 = both cores busy), peak RSS, and accuracy
where ground truth is given (rsu_tools.evaluation).

The package, one job per module: `plan` (what to run), `playback` (clips through a variant, the
measured loop), `baselines` (Ultralytics' own loop), `statistics` (latency samples, CPU, memory,
accuracy), `runner` (each variant in its own process, the report dict), `report` (table and
JSON), `cli` (the command line). Every public name is importable from here.
"""

from __future__ import annotations

# The bench's own copy of the COCO table is gone; the old name stays importable.
from rsu.detectors.classes import COCO_NAME_TO_ROAD_USER as COCO_ROAD_USERS
from rsu_tools.bench.perception.baselines import BASELINE_IMGSZ, GroundLineCrossings
from rsu_tools.bench.perception.cli import add_bench_perception_parser, parse_variant, plan_from_args
from rsu_tools.bench.perception.plan import BenchError, BenchPlan, FloatArray, ImageArray, VariantSpec
from rsu_tools.bench.perception.playback import (
    PREFETCH_FRAMES,
    RSS_SAMPLE_EVERY_S,
    TRACK_BOX_GATE_M,
    WARMUP_FRAMES,
    AttributingLineCounter,
    ClipPlayer,
    PlayedFrame,
    _scaled_camera,
)
from rsu_tools.bench.perception.report import render_table, write_report
from rsu_tools.bench.perception.runner import SCHEMA, run_bench, run_variant
from rsu_tools.bench.perception.statistics import (
    CLIP_TRACK_ID_STRIDE,
    RESERVOIR_SIZE,
    TRUNCATION_WINDOW_S,
    Collected,
    Reservoir,
    StageTimes,
    peak_rss_mb,
    rss_mb,
)

__all__ = [
    "BASELINE_IMGSZ",
    "CLIP_TRACK_ID_STRIDE",
    "COCO_ROAD_USERS",
    "PREFETCH_FRAMES",
    "RESERVOIR_SIZE",
    "RSS_SAMPLE_EVERY_S",
    "SCHEMA",
    "TRACK_BOX_GATE_M",
    "TRUNCATION_WINDOW_S",
    "WARMUP_FRAMES",
    "AttributingLineCounter",
    "BenchError",
    "BenchPlan",
    "ClipPlayer",
    "Collected",
    "FloatArray",
    "GroundLineCrossings",
    "ImageArray",
    "PlayedFrame",
    "Reservoir",
    "StageTimes",
    "VariantSpec",
    "_scaled_camera",
    "add_bench_perception_parser",
    "parse_variant",
    "peak_rss_mb",
    "plan_from_args",
    "render_table",
    "rss_mb",
    "run_bench",
    "run_variant",
    "write_report",
]
