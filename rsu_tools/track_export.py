"""`rsu track`: a clip through the camera's detector and perception pipeline, the tracks as MOTChallenge rows.

Every row is a track the unit publishes (a confirmed track of the track list, with its image box)
at one frame, in the clip's own pixels, so an operator can score the unit against their own ground
truth with any MOTChallenge tool. Columns:

    frame, id, x, y, w, h, conf, class, predicted, early

frame is 1-based; x y w h the box's top-left corner and size in pixels; conf the confidence of the
detection that updated the track at that frame (-1 for a predicted box); class the MOT class id of
the project's JamCam ground truth (1 car, 2 truck, 3 bus, 4 motorbike) extended with 6 bicycle and
7 pedestrian; predicted 1 when the track was not detected at that frame (the tracker's predicted box
while it coasts), else 0; early 1 for a track's first hits, before it was confirmed (the unit did
not publish those live; they are written so a track's box covers its whole life), else 0.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import cv2
import numpy as np

from rsu.perception.pipeline import PerceptionOutput, PerceptionPipeline
from rsu_contracts.config import load_site_config
from rsu_contracts.config.model import CameraConfig, SiteConfig
from rsu_contracts.enums import RoadUserType

MOT_CLASS_IDS: dict[RoadUserType, int] = {
    RoadUserType.CAR: 1,
    RoadUserType.TRUCK: 2,
    RoadUserType.BUS: 3,
    RoadUserType.MOTORCYCLE: 4,
    RoadUserType.BICYCLE: 6,
    RoadUserType.PEDESTRIAN: 7,
}


class TrackExportError(ValueError):
    """The site, camera or clip cannot be exported."""


@dataclass(frozen=True, slots=True)
class MotRow:
    frame: int  # 1-based
    track_id: int
    x1_px: float
    y1_px: float
    x2_px: float
    y2_px: float
    confidence: float  # -1: a predicted box
    road_user: RoadUserType
    predicted: bool
    early: bool

    def line(self) -> str:
        w, h = self.x2_px - self.x1_px, self.y2_px - self.y1_px
        return (
            f"{self.frame},{self.track_id},{self.x1_px:.2f},{self.y1_px:.2f},{w:.2f},{h:.2f},"
            f"{self.confidence:.4f},{MOT_CLASS_IDS[self.road_user]},{int(self.predicted)},{int(self.early)}"
        )


@dataclass(frozen=True, slots=True)
class ExportedFrame:
    frame: int  # 1-based
    output: PerceptionOutput
    rows: list[MotRow]  # the published tracks at this frame, and first hits of tracks confirmed now


def pick_camera(site: SiteConfig, camera_id: str | None) -> CameraConfig:
    if camera_id is not None:
        for camera in site.cameras:
            if camera.id == camera_id:
                return camera
        raise TrackExportError(f"--camera: no camera {camera_id!r} (cameras: {[c.id for c in site.cameras]})")
    for camera in site.cameras:
        if camera.uri:
            return camera
    raise TrackExportError("the site has no video camera (cameras[].uri)")


def export_frames(
    site_path: Path, camera_id: str | None = None, clip: Path | None = None, max_frames: int | None = None
) -> Iterator[ExportedFrame]:
    """The clip frame by frame through the camera's own detector and a fresh PerceptionPipeline."""
    from rsu.detectors.factory import build_detector
    from rsu.sensors.video import expand_uri

    site = load_site_config(site_path)
    camera = pick_camera(site, camera_id)
    if clip is None:
        if not camera.uri:
            raise TrackExportError(f"camera {camera.id} has no uri: give --clip")
        clip = Path(expand_uri(camera.uri, site_path.parent))
    if not clip.is_file():
        raise TrackExportError(f"--clip: no such file {clip}")
    capture = cv2.VideoCapture(str(clip))
    if not capture.isOpened():
        raise TrackExportError(f"--clip: cannot open {clip} as a video")
    fps = capture.get(cv2.CAP_PROP_FPS)
    if not math.isfinite(fps) or fps <= 0:
        capture.release()
        raise TrackExportError(f"--clip: {clip} reports no frame rate")
    detector = build_detector(camera, config_dir=site_path.parent)
    pipeline = PerceptionPipeline(site, camera.id)
    try:
        index = 0
        while max_frames is None or index < max_frames:
            ok, image = capture.read()
            if not ok or image is None:
                break
            detections = detector.detect(np.asarray(image, dtype=np.uint8), index / fps)
            output = pipeline.process(detections)
            matched = pipeline.tracker.matched_detections
            rows = [
                MotRow(
                    frame=1 + round(time_s * fps),
                    track_id=track_id,
                    x1_px=box[0],
                    y1_px=box[1],
                    x2_px=box[2],
                    y2_px=box[3],
                    confidence=-1.0,
                    road_user=_road_user_of(output, track_id),
                    predicted=False,
                    early=True,
                )
                for track_id, time_s, box in pipeline.tracker.newly_confirmed_boxes
                if any(o.track_id == track_id for o in output.tracks)
            ]
            for obj in output.tracks:
                box = obj.image_box
                if box is None:
                    continue
                det = matched.get(obj.track_id)
                confidence = -1.0 if box.predicted or det is None else float(detections.confidence[det])
                rows.append(
                    MotRow(
                        frame=index + 1,
                        track_id=obj.track_id,
                        x1_px=box.x1_px,
                        y1_px=box.y1_px,
                        x2_px=box.x2_px,
                        y2_px=box.y2_px,
                        confidence=confidence,
                        road_user=obj.road_user,
                        predicted=box.predicted,
                        early=False,
                    )
                )
            yield ExportedFrame(index + 1, output, rows)
            index += 1
    finally:
        capture.release()


def _road_user_of(output: PerceptionOutput, track_id: int) -> RoadUserType:
    return next(o.road_user for o in output.tracks if o.track_id == track_id)


def write_mot(frames: Iterator[ExportedFrame], out: TextIO) -> int:
    """All rows sorted by frame then track id (first hits belong to earlier frames); the row count."""
    rows = [row for frame in frames for row in frame.rows]
    rows.sort(key=lambda r: (r.frame, r.track_id))
    for row in rows:
        out.write(row.line() + "\n")
    return len(rows)


def _track_command(args: argparse.Namespace) -> int:
    try:
        frames = export_frames(
            Path(args.config).resolve(),
            args.camera,
            Path(args.clip).resolve() if args.clip else None,
            args.max_frames,
        )
        out_path = Path(args.mot_out)
        with out_path.open("w", encoding="ascii") as out:
            count = write_mot(frames, out)
    except TrackExportError as exc:
        print(f"rsu track: error: {exc}", file=sys.stderr)
        return 2
    print(f"rsu track: wrote {count} rows to {out_path}")
    return 0


def add_track_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "track",
        help="run a clip through a camera's detector and tracker; write the published tracks as MOTChallenge rows",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument("--config", required=True, help="site config with the camera (detector, calibration)")
    parser.add_argument("--camera", help="camera id (default: the first video camera)")
    parser.add_argument("--clip", help="video file (default: the camera's uri)")
    parser.add_argument(
        "--mot-out",
        required=True,
        help="where to write the rows: frame,id,x,y,w,h,conf,class,predicted,early (see the module doc)",
    )
    parser.add_argument("--max-frames", type=int, help="stop after this many frames")
    parser.set_defaults(handler=_track_command)
    return parser
