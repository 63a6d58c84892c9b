"""`rsu bench perception` on the command line: its options, turned into a plan and variants."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from rsu_contracts.config import load_site_config
from rsu_contracts.enums import RoadUserType
from rsu_tools.bench.perception.library_trackers import LIBRARY_TRACKERS
from rsu_tools.bench.perception.plan import BenchError, BenchPlan, VariantSpec
from rsu_tools.bench.perception.report import render_table, write_report
from rsu_tools.bench.perception.runner import run_bench

DEFAULT_BASELINE_TRACKERS = ("bytetrack.yaml", "botsort.yaml")
DEFAULT_LIBRARY_TRACKERS = ("bytetrack",)


def parse_variant(text: str) -> VariantSpec:
    """`name=int8,type=openvino,weights=PATH[,precision=bf16][,threads=2][,motion=on][,imgsz=384x640][,conf=0.25]`.

    `detail=x1:y1:x2:y2[,detail_weights=PATH][,detail_imgsz=HxW][,detail_interval_s=S]`: one detail region
    (DetectorConfig.detail_regions) instead of the site's; its box in the clip's own pixels.
    """
    fields: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep:
            raise BenchError(f"--variant {text!r}: expected key=value pairs, got {part!r}")
        fields[key.strip()] = value.strip()
    name = fields.pop("name", None)
    if not name:
        raise BenchError(f"--variant {text!r} needs name=...")
    config: dict[str, Any] = {}
    motion: dict[str, Any] = {}
    detail: dict[str, Any] = {}
    for key, value in fields.items():
        if key in ("type", "weights"):
            config[key] = value
        elif key == "precision":
            config["inference_precision"] = value
        elif key in ("threads",):
            config[key] = int(value)
        elif key in ("conf", "confidence"):
            config["confidence"] = float(value)
        elif key == "imgsz":
            h, w = (int(v) for v in value.lower().split("x"))
            config["imgsz"] = (h, w)
        elif key == "detail":
            # x1:y1:x2:y2 in the clip's own pixels (scaled with --resize); replaces the site's detail regions
            detail["box_px"] = tuple(float(v) for v in value.split(":"))
        elif key == "detail_weights":
            detail["weights"] = value
        elif key == "detail_interval_s":
            detail["interval_s"] = float(value)
        elif key == "detail_imgsz":
            h, w = (int(v) for v in value.lower().split("x"))
            detail["imgsz"] = (h, w)
        elif key == "motion":
            motion["enabled"] = value.lower() in ("on", "true", "1", "yes")
        elif key == "motion_max_skip_s":
            motion["max_skip_s"] = float(value)
        elif key == "motion_ignore":
            # x1:y1:x2:y2[;x1:y1:x2:y2...] in frame pixels (a clock overlay)
            motion["ignore_boxes_px"] = [tuple(float(v) for v in box.split(":")) for box in value.split(";") if box]
        else:
            raise BenchError(f"--variant {text!r}: unknown key {key!r}")
    if detail:
        if "box_px" not in detail:
            raise BenchError(f"--variant {text!r}: detail_* keys need detail=x1:y1:x2:y2")
        config["detail_regions"] = [detail]
    return VariantSpec(name=name, kind="rsu", detector_fields=config, motion_fields=motion)


def _parse_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError as exc:
        raise BenchError(f"--resize {text!r}: expected WIDTHxHEIGHT, e.g. 1280x720") from exc
    if width <= 0 or height <= 0:
        raise BenchError(f"--resize {text!r}: sizes must be positive")
    return width, height


def plan_from_args(args: argparse.Namespace) -> tuple[BenchPlan, list[VariantSpec]]:
    from rsu.sensors.video import expand_uri

    site_path = Path(args.site).resolve()
    site = load_site_config(site_path)
    video_cameras = [c for c in site.cameras if c.uri]
    if args.camera:
        matches = [c for c in site.cameras if c.id == args.camera]
        if not matches:
            raise BenchError(f"{site_path}: no camera {args.camera!r} (cameras: {[c.id for c in site.cameras]})")
        camera = matches[0]
    elif video_cameras:
        camera = video_cameras[0]
    else:
        raise BenchError(f"{site_path} has no video camera")
    if args.clip:
        clips = tuple(Path(c).resolve() for c in args.clip)
    elif camera.uri:
        clips = (Path(expand_uri(camera.uri, site_path.parent)),)
    else:
        raise BenchError(f"camera {camera.id} has no uri; give --clip")
    for clip in clips:
        if not clip.is_file():
            raise BenchError(f"clip not found: {clip}")
    plan = BenchPlan(
        site_path=site_path,
        camera_id=camera.id,
        clips=clips,
        resize_wh=_parse_size(args.resize) if args.resize else None,
        max_frames=args.max_frames,
        loop_minutes=args.loop_minutes,
        realtime=args.realtime,
        threads=args.threads,
        otc_events=Path(args.otc_events).resolve() if args.otc_events else None,
        mot_ground_truth=tuple(Path(p).resolve() for p in args.mot_gt),
        time_tolerance_s=args.time_tolerance_s,
        unscored_classes=tuple(RoadUserType(c) for c in args.unscored_class),
    )
    specs = [parse_variant(text) for text in args.variant] or [VariantSpec(name="rsu", kind="rsu")]
    for spec in specs:
        try:
            spec.detector_config(camera.detector)  # a bad --variant fails here, not in a child process
        except ValueError as exc:
            raise BenchError(f"--variant {spec.name}: {exc}") from exc
    if not args.no_baseline:
        weights = args.baseline_weights
        if weights is None and camera.detector.type == "ultralytics":
            weights = expand_uri(camera.detector.weights, site_path.parent)
        if weights is None:
            raise BenchError("the site's detector is not a .pt: give --baseline-weights (or --no-baseline)")
        # The ByteTrack-configured loop first (the reference of the speed ratios), then the naive one.
        trackers = args.baseline_tracker or list(DEFAULT_BASELINE_TRACKERS)
        for position, tracker in enumerate(trackers):
            name = "baseline" if position == 0 else f"baseline_{Path(tracker).stem}"
            specs.insert(
                position,
                VariantSpec(name=name, kind="baseline", baseline_weights=str(weights), baseline_tracker=tracker),
            )
    if not args.no_library_trackers:
        # Fed the first rsu variant's detector: the same detections, so only the tracker differs.
        detector_source = next(spec for spec in specs if spec.kind == "rsu")
        for name in args.library_tracker or list(DEFAULT_LIBRARY_TRACKERS):
            if name not in LIBRARY_TRACKERS:
                raise BenchError(f"--library-tracker {name!r}: choose from {', '.join(LIBRARY_TRACKERS)}")
            specs.append(
                VariantSpec(
                    name=f"lib_{name}",
                    kind="library",
                    detector_fields=detector_source.detector_fields,
                    motion_fields=detector_source.motion_fields,
                    library_tracker=name,
                )
            )
    return plan, specs


def _bench_command(args: argparse.Namespace) -> int:
    try:
        plan, specs = plan_from_args(args)
        report = run_bench(plan, specs)
    except BenchError as exc:
        print(f"rsu bench perception: error: {exc}", file=sys.stderr)
        return 2
    print(render_table(report))
    output = write_report(report, Path(args.json))
    print(f"\nwrote {output}")
    return 0


def add_bench_perception_parser(subparsers: Any, name: str = "perception") -> argparse.ArgumentParser:
    """`rsu bench perception`: registered on the `bench` group's subparsers."""
    import rsu_tools.bench.perception as package  # its docstring describes the command

    parser: argparse.ArgumentParser = subparsers.add_parser(
        name,
        help="camera pipeline fps, stage latency, CPU, memory and accuracy vs Ultralytics' track() loop",
        description=package.__doc__.split("\n\n")[0] if package.__doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--site", required=True, help="site config with the camera (calibration, counting lines)")
    parser.add_argument("--camera", help="camera id (default: the first video camera)")
    parser.add_argument(
        "--clip", action="append", default=[], help="clip to play (repeat: back to back); default: the camera uri"
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        help="an rsu variant: name=N[,type=openvino|onnx|ultralytics,weights=P,precision=f32|bf16,threads=T,"
        "motion=on,motion_ignore=x1:y1:x2:y2,imgsz=HxW,conf=C,detail=x1:y1:x2:y2,detail_weights=P,detail_imgsz=HxW,"
        "detail_interval_s=S] (repeat; default: the site's detector)",
    )
    parser.add_argument(
        "--baseline-weights", help="the .pt for the Ultralytics baseline (default: the site's, if a .pt)"
    )
    parser.add_argument(
        "--baseline-tracker",
        action="append",
        default=[],
        help="Ultralytics tracker config of a baseline (default: bytetrack.yaml, then botsort.yaml, the naive "
        "loop's tracker before ultralytics 8.4 made tracktrack.yaml its default); repeat to run several baselines",
    )
    parser.add_argument(
        "--library-tracker",
        action="append",
        default=[],
        choices=list(LIBRARY_TRACKERS),
        help="a tracker of the `trackers` library (Roboflow; supervision's ByteTrack moved there) fed the first rsu "
        "variant's detections (default: bytetrack); repeatable",
    )
    parser.add_argument("--no-library-trackers", action="store_true", help="run no library tracker")
    parser.add_argument("--no-baseline", action="store_true", help="run only the rsu variants")
    parser.add_argument("--resize", help="resize frames to WIDTHxHEIGHT in the reader (e.g. 1280x720)")
    parser.add_argument("--max-frames", type=int, help="stop after this many frames")
    parser.add_argument("--loop-minutes", type=float, help="soak: loop the clips this long and report memory")
    parser.add_argument("--realtime", action="store_true", help="release frames at the clip's rate; count drops")
    parser.add_argument("--threads", type=int, default=2, help="threads of the baseline's torch (rsu: from the config)")
    parser.add_argument("--otc-events", help="OpenTrafficCam *.otgtevents.json: counting accuracy")
    parser.add_argument("--mot-gt", action="append", default=[], help="MOTChallenge gt.txt per clip: detection and MOT")
    parser.add_argument("--time-tolerance-s", type=float, default=2.0, help="crossing match tolerance (default 2 s)")
    parser.add_argument(
        "--unscored-class",
        action="append",
        default=[],
        choices=[user.value for user in RoadUserType],
        help="a class the counting ground truth does not label (OTC's test file: pedestrian); repeatable",
    )
    parser.add_argument("--json", default="bench-perception.json", help="where to write the JSON report")
    parser.set_defaults(handler=_bench_command)
    return parser
