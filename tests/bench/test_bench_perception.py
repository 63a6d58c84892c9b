"""`rsu bench perception`: its parts on synthetic data, and short runs on the real clips."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rsu.detectors.export import ExportResult
from rsu.samples import JAMCAM_SITE as JAMCAM_SITE
from rsu.samples import OPENTRAFFICCAM_SITE as OTC_SITE
from rsu_contracts.config import load_site_config
from rsu_contracts.config.model import DetectorConfig
from rsu_contracts.enums import RoadUserType
from rsu_tools.bench.perception import (
    BenchError,
    BenchPlan,
    GroundLineCrossings,
    Reservoir,
    VariantSpec,
    _scaled_camera,
    add_bench_perception_parser,
    parse_variant,
    plan_from_args,
    render_table,
    run_bench,
)

STAGES = ("decode", "detect", "track", "zones")


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="rsu")
    add_bench_perception_parser(parser.add_subparsers())
    return parser.parse_args(["perception", *argv])


def test_a_variant_is_detector_settings_over_the_site_camera() -> None:
    spec = parse_variant("name=int8,type=openvino,weights=/m/int8.xml,precision=bf16,motion=on,motion_ignore=0:0:10:5")
    base = DetectorConfig(type="ultralytics", weights="yolo11n.pt", imgsz=640, threads=2)
    config = spec.detector_config(base)
    assert (config.type, config.weights, config.inference_precision, config.threads) == (
        "openvino",
        "/m/int8.xml",
        "bf16",
        2,
    )
    assert "imgsz" not in config.model_fields_set  # an exported model brings its own input size
    assert config.motion.enabled and config.motion.ignore_boxes_px == [(0.0, 0.0, 10.0, 5.0)]
    assert parse_variant("name=plain").detector_config(base) is base
    with pytest.raises(BenchError, match="unknown key"):
        parse_variant("name=x,colour=red")
    with pytest.raises(BenchError, match="needs name"):
        parse_variant("type=onnx")


def test_a_variant_can_add_a_detail_region_scaled_with_the_stream() -> None:
    spec = parse_variant(
        "name=d,type=openvino,weights=/m/a.xml,detail=400:30:800:160,detail_weights=/m/d.xml,detail_interval_s=0.1"
    )
    config = spec.detector_config(DetectorConfig(type="ultralytics", weights="yolo11n.pt"))
    (region,) = config.detail_regions
    assert (region.box_px, region.weights, region.interval_s) == ((400.0, 30.0, 800.0, 160.0), "/m/d.xml", 0.1)
    camera = load_site_config(OTC_SITE).cameras[0]
    camera = camera.model_copy(update={"detector": config})
    scaled = _scaled_camera(camera, (800, 600), (1280, 720))
    assert scaled.detector.detail_regions[0].box_px == pytest.approx((640.0, 36.0, 1280.0, 192.0))
    with pytest.raises(BenchError, match="detail="):
        parse_variant("name=d,detail_weights=/m/d.xml")


def test_baseline_counting_counts_each_track_once_per_line_at_the_crossing_time() -> None:
    site = load_site_config(OTC_SITE)
    counter = GroundLineCrossings(site)
    east = next(line for line in site.counting_lines if line.id == "east")
    (ax, ay), (bx, by) = east.line_m
    mid = np.array([(ax + bx) / 2, (ay + by) / 2])
    across = np.array([by - ay, ax - bx]) / np.hypot(bx - ax, by - ay)  # unit normal
    path = [mid - across, mid + across, mid - 0.5 * across, mid + across]  # crosses, jitters back over
    for step, xy in enumerate(path):
        counter.update([7], xy[None, :], [RoadUserType.CAR], step * 1.0)
    crossings = [c for c in counter.crossings if c.line_id == "east"]
    assert len(crossings) == 1
    assert crossings[0].time_s == pytest.approx(0.5) and crossings[0].track_id == 7


def test_latency_samples_stay_bounded_over_a_long_run() -> None:
    reservoir = Reservoir(capacity=1000)
    for value in range(100_000):
        reservoir.add(float(value))
    assert reservoir.count == 100_000 and len(reservoir.values) == 1000
    assert reservoir.total / reservoir.count == pytest.approx(49_999.5)
    # A uniform sample of 0..99999: its median is near the true one.
    assert float(np.median(reservoir.values)) == pytest.approx(50_000, rel=0.1)


def test_the_command_line_names_its_errors(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match="no camera"):
        plan_from_args(parse(["--site", str(JAMCAM_SITE), "--camera", "nope", "--clip", str(tmp_path)]))
    with pytest.raises(BenchError, match="clip not found"):
        plan_from_args(parse(["--site", str(JAMCAM_SITE), "--clip", str(tmp_path / "missing.mp4")]))


def check_report(report: dict[str, Any], names: list[str]) -> None:
    json.dumps(report)  # plain JSON all the way down
    assert report["schema"] == "rsu_tools.bench.perception/1"
    assert [v["name"] for v in report["variants"]] == names
    for variant in report["variants"]:
        for key in ("fps", "frames_measured", "dropped_frames", "cpu_use", "peak_rss_mb", "rss_mb_start", "detector"):
            assert variant[key] is not None, key
        for stage in STAGES:
            assert variant["stages"][stage]["p99_ms"] >= variant["stages"][stage]["p50_ms"] >= 0.0
        assert variant["peak_rss_mb"] > 50


@pytest.mark.footage
def test_bench_on_a_short_slice_of_the_otc_clips_writes_every_field(
    otc_clips: tuple[Path, Path], weights: Path, openvino_fp32: ExportResult, footage_dir: Path
) -> None:
    plan = BenchPlan(
        site_path=OTC_SITE,
        camera_id="otc_pole",
        clips=otc_clips,
        resize_wh=None,
        max_frames=14,
        loop_minutes=None,
        realtime=False,
        threads=2,
        otc_events=footage_dir / "opentrafficcam" / "Testvideo.otgtevents.json",
        mot_ground_truth=(),
        time_tolerance_s=2.0,
        unscored_classes=(RoadUserType.PEDESTRIAN,),
    )
    model = {"type": "openvino", "weights": str(openvino_fp32.model_path)}
    variants = [
        VariantSpec("baseline", "baseline", baseline_weights=str(weights)),
        VariantSpec("fp32", "rsu", detector_fields=model),
        VariantSpec("fp32_motion", "rsu", detector_fields=model, motion_fields={"enabled": True}),
    ]
    report = run_bench(plan, variants, isolated=False)
    check_report(report, ["baseline", "fp32", "fp32_motion"])
    assert set(report["speed_ratio_to_baseline"]) == {"fp32", "fp32_motion"}
    fp32, gated = report["variants"][1], report["variants"][2]
    assert fp32["frames_processed"] == 14 and fp32["frames_measured"] == 9
    assert "openvino fp32" in fp32["detector"]
    counting = fp32["accuracy"]["counting"]
    assert [line["line_id"] for line in counting["lines"]] == ["south", "west", "north", "east"]
    assert counting["truth_total"] == 0  # no ground-truth crossing in the first 0.7 s
    assert gated["motion_gate"]["frames"] == 14 and "motion" in gated["stages"]
    table = render_table(report)
    assert "speed vs baseline" in table and "fp32_motion" in table


@pytest.mark.footage
def test_bench_in_its_own_process_in_realtime_with_mot_ground_truth(
    footage_dir: Path, openvino_fp32: ExportResult
) -> None:
    folder = footage_dir / "jamcam"
    clip = folder / "2019-06-28_13-02-35.503167_00001.03601.mp4"
    plan = BenchPlan(
        site_path=JAMCAM_SITE,
        camera_id="jamcam_20190628",
        clips=(clip,),
        resize_wh=(704, 576),
        max_frames=40,
        loop_minutes=None,
        realtime=True,
        threads=2,
        otc_events=None,
        mot_ground_truth=(folder / "2019-06-28_13-02-35.503167_00001.03601.gt.txt",),
        time_tolerance_s=2.0,
    )
    spec = VariantSpec("fp32", "rsu", detector_fields={"type": "openvino", "weights": str(openvino_fp32.model_path)})
    report = run_bench(plan, [spec])
    check_report(report, ["fp32"])
    variant = report["variants"][0]
    assert report["stream_size"] == [704, 576] and report["source_size"] == [352, 288]
    assert variant["frames_released"] == 40
    assert variant["frames_processed"] + variant["dropped_frames"] == 40
    assert variant["frame_latency_ms"]["p99"] >= variant["frame_latency_ms"]["p50"] > 0
    detection = variant["accuracy"]["detection"]
    # Scored in the clip's own pixels although the frames were doubled: the vehicles are found.
    assert detection["recall"] > 0.3 and detection["precision"] > 0.5
    assert {"mota", "idf1", "id_switches"} <= set(variant["accuracy"]["tracking"])


def test_by_default_the_bench_runs_both_ultralytics_loops_and_a_library_tracker(weights: Path) -> None:
    clip = Path(__file__)  # any existing file: the plan does not open it
    _, specs = plan_from_args(
        parse(["--site", str(JAMCAM_SITE), "--clip", str(clip), "--baseline-weights", str(weights)])
    )
    assert [(s.name, s.kind) for s in specs] == [
        ("baseline", "baseline"),
        ("baseline_botsort", "baseline"),
        ("rsu", "rsu"),
        ("lib_bytetrack", "library"),
    ]
    assert specs[0].baseline_tracker == "bytetrack.yaml" and specs[1].baseline_tracker == "botsort.yaml"
    _, only_ours = plan_from_args(
        parse(["--site", str(JAMCAM_SITE), "--clip", str(clip), "--no-baseline", "--no-library-trackers"])
    )
    assert [s.name for s in only_ours] == ["rsu"]


@pytest.mark.footage
def test_a_library_tracker_gets_the_rsu_detections_and_is_scored_the_same_way(
    footage_dir: Path, openvino_fp32: ExportResult
) -> None:
    pytest.importorskip("trackers")
    folder = footage_dir / "jamcam"
    clip = folder / "2019-06-28_13-02-35.503167_00001.03601.mp4"
    plan = BenchPlan(
        site_path=JAMCAM_SITE,
        camera_id="jamcam_20190628",
        clips=(clip,),
        resize_wh=None,
        max_frames=60,
        loop_minutes=None,
        realtime=False,
        threads=2,
        otc_events=None,
        mot_ground_truth=(folder / "2019-06-28_13-02-35.503167_00001.03601.gt.txt",),
        time_tolerance_s=2.0,
    )
    model = {"type": "openvino", "weights": str(openvino_fp32.model_path)}
    variants = [
        VariantSpec("fp32", "rsu", detector_fields=model),
        VariantSpec("lib_bytetrack", "library", detector_fields=model, library_tracker="bytetrack"),
    ]
    report = run_bench(plan, variants, isolated=False)
    check_report(report, ["fp32", "lib_bytetrack"])
    ours, library = report["variants"]
    # The same detector on the same frames: the same detections, so only the tracking differs.
    assert library["accuracy"]["detection"] == ours["accuracy"]["detection"]
    tracking = library["accuracy"]["tracking"]
    assert tracking["frames"] == 60 and tracking["distinct_tracks"] > 0
    assert 0.0 < tracking["hota"] <= 1.0
    assert "trackers bytetrack" in library["tracker"]
    assert "HOTA" in render_table(report) and "distinct tracks" in render_table(report)
