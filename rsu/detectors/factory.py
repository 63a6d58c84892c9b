"""The detector a camera's site-file entry asks for: the backend by detector.type, then the wrappers."""

from __future__ import annotations

from pathlib import Path

from rsu.detectors.base import Detector, DetectorError
from rsu.detectors.registry import builder_for
from rsu.perception.homography import Homography
from rsu.perception.motion import MotionGatedDetector
from rsu_contracts.config.model import CameraConfig
from rsu_contracts.enums import CameraSource


def build_detector(
    camera: CameraConfig,
    config_dir: str | Path | None = None,
    homography: Homography | None = None,
) -> Detector:
    """The detector a video camera's `detector.type` names, calibrated from the camera's points.

    config_dir: the site file's folder; relative and `${VAR:-default}` weights paths are expanded against it.
    Detail regions (detector.detail_regions) are run by every backend's FrameDetector; the motion gate
    (detector.motion) is wrapped around whatever the backend built.
    """
    if camera.source is not CameraSource.VIDEO:
        raise DetectorError(f"camera {camera.id} is a {camera.source.value} camera; only video cameras run a detector")
    if homography is None:
        homography = Homography.from_points(camera.calibration)
    config = camera.detector
    detector = builder_for(config.type, camera.id)(config, homography, camera.id, config_dir)
    if config.motion.enabled:
        detector = MotionGatedDetector(detector, config.motion)
    return detector
