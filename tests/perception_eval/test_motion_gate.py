"""The motion stage on synthetic frames: what moves, when the detector runs, what is carried."""

from __future__ import annotations

import numpy as np
import pytest

from rsu.perception.detections import Detections
from rsu.perception.motion import MotionDetector, MotionGate, MotionGatedDetector
from rsu_contracts.config.model import MotionGateConfig
from rsu_contracts.enums import RoadUserType

FRAME_S = 0.05
HEIGHT, WIDTH = 240, 320


def frame(square_at: tuple[int, int] | None = None, level: int = 90, size: int = 40) -> np.ndarray:
    """A flat grey road, optionally with a bright square (a vehicle) at top-left corner square_at (x, y)."""
    image = np.full((HEIGHT, WIDTH, 3), level, dtype=np.uint8)
    if square_at is not None:
        x, y = square_at
        image[y : y + size, x : x + size] = 220
    return image


class CountingDetector:
    """A stand-in detector: one car, and how often it was asked."""

    def __init__(self) -> None:
        self.calls = 0

    def detect(self, frame_bgr: np.ndarray, capture_time_s: float) -> Detections:
        self.calls += 1
        return Detections(
            capture_time_s=capture_time_s,
            ground_xy_m=np.array([[1.0, 2.0]]),
            road_user=(RoadUserType.CAR,),
            confidence=np.array([0.9]),
            boxes_px=np.array([[10.0, 10.0, 50.0, 50.0]]),
        )


def test_a_moving_square_is_found_where_it_is() -> None:
    motion = MotionDetector(MotionGateConfig(analysis_width_px=160))
    assert not motion.update(frame(), 0.0).moving  # the first frame only starts the background
    result = motion.update(frame(square_at=(100, 80)), FRAME_S)
    assert result.moving and not result.global_change
    assert len(result.boxes_px) == 1
    x1, y1, x2, y2 = result.boxes_px[0]
    # In frame pixels, around the 40 px square at (100, 80); dilation and blur widen it a little.
    assert 85 <= x1 <= 100 and 85 <= y1 + 15 <= 100 and 140 <= x2 <= 155 and 120 <= y2 <= 135
    assert result.moving_ratio == pytest.approx(40 * 40 / (HEIGHT * WIDTH), rel=0.6)


def test_changes_inside_an_ignore_box_are_not_motion() -> None:
    config = MotionGateConfig(ignore_boxes_px=[(90.0, 70.0, 150.0, 130.0)])
    motion = MotionDetector(config)
    motion.update(frame(), 0.0)
    assert not motion.update(frame(square_at=(100, 80)), FRAME_S).moving


def test_a_light_change_over_the_whole_picture_resets_the_background() -> None:
    motion = MotionDetector(MotionGateConfig())
    motion.update(frame(level=90), 0.0)
    changed = motion.update(frame(level=160), FRAME_S)
    assert changed.global_change and changed.moving
    assert not motion.update(frame(level=160), 2 * FRAME_S).moving


def test_a_square_that_stops_fades_into_the_background_in_capture_time() -> None:
    """A stopped car is motion until the background has taken it in: ln(130 / 20) / rate = 1.9 s at 1 per second."""
    motion = MotionDetector(MotionGateConfig(background_rate_per_s=1.0, pixel_threshold=20))
    motion.update(frame(), 0.0)
    still_from = None
    for step in range(1, 80):
        t = step * FRAME_S
        if not motion.update(frame(square_at=(100, 80)), t).moving and still_from is None:
            still_from = t
    assert still_from is not None and 1.7 <= still_from <= 2.2


def test_the_gate_runs_the_detector_first_on_motion_and_for_a_refresh_and_skips_when_still() -> None:
    gate = MotionGate(MotionGateConfig(max_skip_s=1.0))
    assert gate.decide(frame(), 0.0).reason == "first"
    assert gate.decide(frame(), 0.05).reason == "still"
    assert gate.decide(frame(), 0.5).reason == "still"
    assert gate.decide(frame(), 1.0).reason == "refresh"  # 1 s after the last run
    assert gate.decide(frame(square_at=(100, 80)), 1.05).reason == "motion"
    assert gate.decide(frame(square_at=(104, 80)), 1.10).reason == "motion"


def test_skipped_frames_carry_the_last_objects_with_the_new_time() -> None:
    inner = CountingDetector()
    gated = MotionGatedDetector(inner, MotionGateConfig(max_skip_s=1.0))
    first = gated.detect(frame(), 0.0)
    carried = gated.detect(frame(), FRAME_S)
    assert inner.calls == 1 and gated.detector_runs == 1 and gated.frames == 2
    assert carried.capture_time_s == FRAME_S
    assert carried.extras["motion_gate"] == "skipped" and carried.extras["carried_from_s"] == 0.0
    assert carried.ground_xy_m.tolist() == first.ground_xy_m.tolist()
    assert first.extras["motion_gate"] == "first" and "motion_s" in first.extras
    gated.detect(frame(square_at=(100, 80)), 2 * FRAME_S)
    assert inner.calls == 2
    assert gated.skipped_share == pytest.approx(1 / 3)
