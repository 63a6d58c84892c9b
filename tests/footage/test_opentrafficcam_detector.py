"""The real-camera path on the OpenTrafficCam clip: video timing, YOLO detections placed on the
ground inside the junction, and no network access at any point."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rsu.detectors.base import Detector
from rsu.detectors.factory import build_detector
from rsu.detectors.ultralytics_backend import UltralyticsDetector
from rsu.perception.detections import Detections
from rsu.samples import OPENTRAFFICCAM_SITE as SITE_FILE
from rsu.sensors.video import Frame, VideoSource
from rsu_contracts.config import SiteConfig, load_site_config
from rsu_contracts.config.model import DetailRegionConfig
from rsu_contracts.enums import RoadUserType

from .test_opentrafficcam_site import inside, junction_polygon

pytestmark = pytest.mark.footage

REPO_ROOT = Path(__file__).resolve().parents[2]
# The clip's first frame was taken at 2020-02-20 13:11:00 CET (file name; OTC's ground-truth times agree).
CLIP_START_S = 1582200660.0
FRAME_STRIDE = 10  # 20 of the clip's 200 frames, 0.5 s apart
TWO_WHEELERS = (RoadUserType.BICYCLE, RoadUserType.MOTORCYCLE)


@pytest.fixture(scope="module")
def shared_env(footage_dir: Path, models_dir: Path) -> Iterator[None]:
    """The site file finds clip and weights through RSU_SHARED_DIR."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RSU_SHARED_DIR", str(footage_dir.parent))
        yield


@pytest.fixture(scope="module")
def site() -> SiteConfig:
    return load_site_config(SITE_FILE)


@pytest.fixture(scope="module")
def detector(site: SiteConfig, shared_env: None) -> Detector:
    return build_detector(site.cameras[0], config_dir=SITE_FILE.parent)


@pytest.fixture(scope="module")
def frames(site: SiteConfig, shared_env: None) -> list[Frame]:
    camera = site.cameras[0].model_copy(update={"frame_stride": FRAME_STRIDE})
    with VideoSource.from_camera(camera, SITE_FILE.parent, start_time_s=CLIP_START_S) as source:
        return list(source)


@pytest.fixture(scope="module")
def detections(detector: Detector, frames: list[Frame]) -> list[Detections]:
    return [detector.detect(frame.image, frame.capture_time_s) for frame in frames]


def test_the_clip_is_read_at_its_20_fps_with_times_from_the_frame_number(frames: list[Frame]) -> None:
    assert len(frames) == 20
    assert frames[0].image.shape == (600, 800, 3)
    assert [f.index for f in frames] == list(range(0, 200, FRAME_STRIDE))
    assert [f.capture_time_s for f in frames] == pytest.approx([CLIP_START_S + i / 20.0 for i in range(0, 200, 10)])


def test_cars_are_found_on_the_ground_inside_the_junction(site: SiteConfig, detections: list[Detections]) -> None:
    polygon = junction_polygon(site)
    frames_with_cars = 0
    cars_inside = 0
    for frame_detections in detections:
        cars = [
            xy
            for xy, user, confidence in zip(
                frame_detections.ground_xy_m, frame_detections.road_user, frame_detections.confidence, strict=True
            )
            if user is RoadUserType.CAR and confidence >= 0.4
        ]
        frames_with_cars += bool(cars)
        cars_inside += sum(inside(polygon, float(x), float(y)) for x, y in cars)
    # The clip has queued and passing cars throughout; several cross the junction box in these 10 s.
    assert frames_with_cars >= 18
    assert cars_inside >= 10


def test_classes_are_mapped_and_boxes_kept(detections: list[Detections]) -> None:
    users = {user for frame_detections in detections for user in frame_detections.road_user}
    assert RoadUserType.CAR in users
    assert users <= set(RoadUserType)
    for frame_detections in detections:
        assert frame_detections.camera_id == "otc_pole"
        assert frame_detections.boxes_px is not None
        boxes = frame_detections.boxes_px
        assert np.all((boxes[:, 0] >= 0) & (boxes[:, 2] <= 800) & (boxes[:, 1] >= 0) & (boxes[:, 3] <= 600))


def test_the_cyclist_near_the_camera_is_placed_on_the_westbound_lane(detections: list[Detections]) -> None:
    """OTC ground truth: a bicyclist enters across the East section at frame 104 (t = 5.2 s)."""
    frame_detections = detections[10]  # frame 100, t = 5.0 s
    cyclists = [
        xy
        for xy, user in zip(frame_detections.ground_xy_m, frame_detections.road_user, strict=True)
        if user is RoadUserType.BICYCLE
    ]
    assert cyclists, "the bicyclist close to the camera should be detected"
    x, y = cyclists[0]
    assert 10.0 < x < 20.0 and 0.0 < y < 6.0  # just east of the East section, on the north half of the road


def test_detection_time_per_frame(detector: Detector, frames: list[Frame]) -> None:
    assert isinstance(detector, UltralyticsDetector)
    durations = []
    for frame in frames[:5]:
        started = time.perf_counter()
        detector.detect(frame.image, frame.capture_time_s)
        durations.append(time.perf_counter() - started)
    median_ms = 1000 * float(np.median(durations))
    print(f"detect at imgsz {detector.imgsz}: median {median_ms:.0f} ms per 800x600 frame")
    assert median_ms < 2000  # a sanity bound, not a benchmark


def test_building_and_detecting_never_touches_the_network(
    site: SiteConfig, frames: list[Frame], shared_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempts: list[str] = []

    def refuse_connect(self: socket.socket, address: Any) -> None:
        attempts.append(f"connect {address}")
        raise OSError("network disabled by the test")

    def refuse_dns(host: Any, *args: Any, **kwargs: Any) -> Any:
        attempts.append(f"resolve {host}")
        raise socket.gaierror("name resolution disabled by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse_connect)
    monkeypatch.setattr(socket, "getaddrinfo", refuse_dns)
    detector = build_detector(site.cameras[0], config_dir=SITE_FILE.parent)
    found = detector.detect(frames[5].image, frames[5].capture_time_s)
    assert len(found) > 0
    assert attempts == []


OFFLINE_SCRIPT = """
import json, socket, sys
from pathlib import Path

attempts = []

def refuse_connect(self, address):
    attempts.append(f"connect {address}")
    raise OSError("network disabled by the test")

def refuse_dns(host, *args, **kwargs):
    attempts.append(f"resolve {host}")
    raise socket.gaierror("name resolution disabled by the test")

socket.socket.connect = refuse_connect
socket.socket.connect_ex = refuse_connect
socket.getaddrinfo = refuse_dns

from rsu_contracts.config import load_site_config
from rsu.sensors.video import VideoSource
from rsu.detectors.factory import build_detector

site_path = Path(sys.argv[1])
camera = load_site_config(site_path).cameras[0]
detector = build_detector(camera, config_dir=site_path.parent)
with VideoSource.from_camera(camera, site_path.parent, start_time_s=0.0) as source:
    frame = source.read()
detections = detector.detect(frame.image, frame.capture_time_s)
print(json.dumps({"attempts": attempts, "detections": len(detections)}))
"""


def test_a_fresh_process_never_touches_the_network_from_import_to_detection(
    footage_dir: Path, models_dir: Path, tmp_path: Path
) -> None:
    """Import-time checks included: sockets are refused before anything is imported."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("YOLO_")}
    env["RSU_SHARED_DIR"] = str(footage_dir.parent)
    env["PYTHONPATH"] = str(REPO_ROOT)
    # A fresh Ultralytics config folder: first-run code paths (creating settings) run too.
    env["YOLO_CONFIG_DIR"] = str(tmp_path / "ultralytics")
    result = subprocess.run(
        [sys.executable, "-c", OFFLINE_SCRIPT, str(SITE_FILE)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["attempts"] == []
    assert report["detections"] > 0


def test_a_detail_region_finds_the_far_cyclist_the_full_frame_misses(site: SiteConfig, shared_env: None) -> None:
    """At 9.0 s the cyclist rides away at the far edge (about 20x45 px of the 800x600 frame); the full
    frame at imgsz 320 misses it, a 192x640 pass over the far road finds a two-wheeler there."""
    camera = site.cameras[0]
    with VideoSource.from_camera(camera, SITE_FILE.parent, start_time_s=0.0) as source:
        frame = next(f for f in source if f.index == 180)
    far_road = DetailRegionConfig(box_px=(400, 30, 800, 160), imgsz=(192, 640))
    plain = camera.detector.model_copy(update={"imgsz": 320})
    detailed = plain.model_copy(update={"detail_regions": [far_road]})
    found = {}
    for name, config in (("plain", plain), ("detailed", detailed)):
        detector = build_detector(camera.model_copy(update={"detector": config}), config_dir=SITE_FILE.parent)
        detections = detector.detect(frame.image, 9.0)
        assert detections.boxes_px is not None
        found[name] = [
            box
            for box, user in zip(detections.boxes_px, detections.road_user, strict=True)
            if user in TWO_WHEELERS and 620 <= (box[0] + box[2]) / 2 <= 680 and 90 <= box[3] <= 140
        ]
    assert found["plain"] == []
    assert len(found["detailed"]) == 1


def test_real_footage_stays_within_the_message_bounds(site: SiteConfig, detections: list[Detections]) -> None:
    """Every confirmed track of the real clip fits its message (speeds, positions, sizes), and every
    track list and detector state decodes at its readers: the stages' input checks never refuse it."""
    from rsu.perception.pipeline import PerceptionPipeline
    from rsu_contracts.messages import DetectorStates, TrackList, decode

    pipeline = PerceptionPipeline(site, site.cameras[0].id)
    shared = 0
    for seq, frame_detections in enumerate(detections):
        output = pipeline.process(frame_detections)
        header = {"unit_id": site.unit_id, "seq": seq, "capture_time_s": output.time_s, "publish_time_s": output.time_s}
        tracks = TrackList(**header, camera_id=site.cameras[0].id, objects=output.tracks)
        states = DetectorStates(
            **header, camera_id=site.cameras[0].id, valid=True, lanes=output.lanes, crosswalks=output.crosswalks,
            crossings=output.crossings, movements=output.movements,
        )  # fmt: skip
        assert decode(TrackList, tracks.to_json()) == tracks
        assert decode(DetectorStates, states.to_json()) == states
        shared += len(output.tracks)
    assert shared > 0
    assert pipeline.implausible_tracks == 0
