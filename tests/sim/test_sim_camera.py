"""The simulated camera: range, misses, noise, confidence, latency and determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rsu.perception.detections import Detections
from rsu.sensors.sim_camera import SimulatedCamera
from rsu.sim.truth import TruthObject
from rsu_contracts.config.model import CameraConfig, SimulatedCameraConfig
from rsu_contracts.enums import RoadUserType

pytestmark = pytest.mark.sumo

STEP_S = 0.1


def _camera(**settings: float) -> CameraConfig:
    return CameraConfig(id="cam_test", position_m=(10.0, 10.0), simulation=SimulatedCameraConfig(**settings))


def _pedestrians(count: int, radius_m: float, seed: int = 0) -> list[TruthObject]:
    """Pedestrians scattered within radius_m of the camera at (10, 10)."""
    rng = np.random.default_rng(seed)
    angles = rng.uniform(0, 2 * math.pi, count)
    radii = radius_m * np.sqrt(rng.uniform(0, 1, count))
    return [
        TruthObject(f"p{i}", RoadUserType.PEDESTRIAN, 10 + r * math.cos(a), 10 + r * math.sin(a), 1.2, 0.0, 0.0, 0.5)
        for i, (a, r) in enumerate(zip(angles, radii, strict=True))
    ]


def _now(camera: SimulatedCamera, truth: list[TruthObject], time_s: float = 0.0) -> Detections:
    detections = camera.observe(truth, time_s)
    assert detections is not None
    return detections


def test_misses_match_the_miss_probability() -> None:
    camera = SimulatedCamera(_camera(miss_probability=0.2, latency_s=0.0), seed=1)
    truth = _pedestrians(5000, 50.0)
    detected = len(_now(camera, truth))
    expected = 0.8 * len(truth)
    assert abs(detected - expected) < 4 * math.sqrt(len(truth) * 0.2 * 0.8)


def test_position_noise_matches_its_standard_deviation() -> None:
    camera = SimulatedCamera(_camera(position_noise_m=0.5, miss_probability=0.0, latency_s=0.0), seed=2)
    truth = _pedestrians(4000, 50.0)
    detections = _now(camera, truth)
    by_id = {obj.object_id: obj for obj in truth}
    ids = detections.extras["truth_object_ids"]
    assert isinstance(ids, tuple)
    error = detections.ground_xy_m - np.array([by_id[i].ground_center_m for i in ids])
    assert np.abs(error.mean(axis=0)).max() < 0.05
    assert error.std(axis=0) == pytest.approx([0.5, 0.5], rel=0.08)


def test_objects_out_of_range_are_absent() -> None:
    camera = SimulatedCamera(_camera(range_m=30.0, miss_probability=0.0, latency_s=0.0), seed=3)
    near = TruthObject("near", RoadUserType.CAR, 10.0 + 29.0, 10.0, 5.0, 270.0, 0.0, 1.8)  # centre 29 m away
    far = TruthObject("far", RoadUserType.CAR, 10.0, 10.0 + 31.0, 5.0, 0.0, 0.0, 1.8)
    detections = _now(camera, [near, far])
    assert detections.extras["truth_object_ids"] == ("near",)
    assert detections.road_user == (RoadUserType.CAR,)


def test_a_vehicle_is_seen_at_its_centre_not_its_front_bumper() -> None:
    camera = SimulatedCamera(_camera(position_noise_m=0.0, miss_probability=0.0, latency_s=0.0), seed=4)
    eastbound = TruthObject("car", RoadUserType.CAR, 20.0, 5.0, 10.0, 90.0, 4.6, 1.8)
    northbound = TruthObject("bus", RoadUserType.BUS, 0.0, 20.0, 10.0, 0.0, 12.0, 2.5)
    detections = _now(camera, [eastbound, northbound])
    np.testing.assert_allclose(detections.ground_xy_m, [[17.7, 5.0], [0.0, 14.0]], atol=1e-9)


def test_confidence_is_plausible_and_lower_far_away() -> None:
    camera = SimulatedCamera(_camera(miss_probability=0.0, latency_s=0.0, range_m=100.0), seed=5)
    truth = _pedestrians(3000, 100.0)
    detections = _now(camera, truth)
    assert detections.confidence.min() >= 0.3 and detections.confidence.max() <= 0.95
    distance = np.hypot(*(detections.ground_xy_m - np.array([10.0, 10.0])).T)
    assert detections.confidence[distance < 20].mean() > detections.confidence[distance > 80].mean() + 0.2


def test_detections_arrive_after_the_latency_with_their_capture_time() -> None:
    camera = SimulatedCamera(_camera(latency_s=0.25, miss_probability=0.0), seed=6)
    truth = _pedestrians(3, 10.0)
    released = []
    for step in range(10):
        time_s = step * STEP_S
        detections = camera.observe(truth, time_s)
        if detections is not None:
            released.append((round(time_s, 3), round(detections.capture_time_s, 3)))
            assert len(detections) == 3
    # Captured at 0.0 the frame is due at 0.25: the first call at or after that is at 0.3.
    assert released[0] == (0.3, 0.0)
    assert all(round(out - captured, 3) == 0.3 for out, captured in released)
    assert [captured for _, captured in released] == [round(0.1 * i, 3) for i in range(len(released))]


def test_a_latency_of_whole_steps_is_not_lost_to_float_rounding() -> None:
    camera = SimulatedCamera(_camera(latency_s=0.2), seed=7)
    outputs = [camera.observe([], step * STEP_S) for step in range(5)]
    assert [o is not None for o in outputs] == [False, False, True, True, True]


def test_the_same_seed_gives_the_same_detections_and_another_seed_does_not() -> None:
    truth = _pedestrians(200, 60.0)
    runs = []
    for seed in (9, 9, 10):
        camera = SimulatedCamera(_camera(latency_s=0.0), seed=seed)
        runs.append(_now(camera, truth))
    assert np.array_equal(runs[0].ground_xy_m, runs[1].ground_xy_m)
    assert np.array_equal(runs[0].confidence, runs[1].confidence)
    assert runs[0].road_user == runs[1].road_user
    assert runs[0].ground_xy_m.shape != runs[2].ground_xy_m.shape or not np.array_equal(
        runs[0].ground_xy_m, runs[2].ground_xy_m
    )


def test_an_empty_scene_gives_empty_detections_from_this_camera() -> None:
    camera = SimulatedCamera(_camera(latency_s=0.0), seed=8)
    detections = _now(camera, [], 4.2)
    assert len(detections) == 0
    assert detections.capture_time_s == 4.2 and detections.camera_id == "cam_test"
