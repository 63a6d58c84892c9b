"""Detection recall/precision and MOT metrics against MOTChallenge ground truth, hand-computed."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from rsu_contracts.enums import RoadUserType
from rsu_tools.evaluation import (
    FrameDetections,
    TrackedBoxes,
    TruthBoxes,
    evaluate_detections,
    evaluate_tracking,
    iou_matrix,
    load_mot_ground_truth,
)

CAR, TRUCK, PEDESTRIAN = RoadUserType.CAR, RoadUserType.TRUCK, RoadUserType.PEDESTRIAN


def boxes(*rows: tuple[float, float, float, float]) -> np.ndarray:
    return np.array(rows, dtype=np.float64).reshape(-1, 4)


def test_mot_ground_truth_is_read_as_corner_boxes_and_ignore_rows_are_left_out(tmp_path: Path) -> None:
    path = tmp_path / "gt.txt"
    path.write_text("1,9,10.0,20.0,30.0,40.0,1,1,1.0\n1,10,0,0,5,5,0,2,1.0\n2,9,12,20,30,40,1,5,1.0\n")
    truth = load_mot_ground_truth(path)
    assert sorted(truth) == [1, 2]
    assert truth[1].boxes_px.tolist() == [[10.0, 20.0, 40.0, 60.0]]  # x, y, w, h -> x1 y1 x2 y2
    assert truth[1].track_ids.tolist() == [9]
    assert truth[2].class_ids.tolist() == [5]


def test_iou_of_known_boxes() -> None:
    overlap = iou_matrix(boxes((0, 0, 10, 10)), boxes((5, 0, 15, 10), (20, 20, 30, 30)))
    assert overlap[0].tolist() == pytest.approx([50 / 150, 0.0])
    assert iou_matrix(boxes(), boxes((0, 0, 1, 1))).shape == (0, 1)


def test_hand_computed_recall_per_class_and_precision() -> None:
    truth = {
        1: TruthBoxes(boxes((0, 0, 10, 10), (20, 0, 30, 10)), np.array([1, 2]), np.array([1, 2])),
        2: TruthBoxes(boxes((0, 0, 10, 10)), np.array([1]), np.array([1])),
    }
    found = {
        1: FrameDetections(
            boxes((0, 0, 10, 10), (21, 0, 30, 10), (50, 50, 60, 60), (0, 0, 10, 10)),
            (CAR, CAR, CAR, PEDESTRIAN),  # the truck called a car; one false car; a person is not scored
            np.array([0.9, 0.8, 0.7, 0.95]),
        ),
        # Two boxes on one car: the more confident is the true positive, the other a false positive.
        2: FrameDetections(boxes((0, 0, 10, 10), (1, 0, 10, 10)), (CAR, CAR), np.array([0.6, 0.9])),
    }
    score = evaluate_detections(truth, found)
    assert score.per_class["car"].truth == 2 and score.per_class["car"].found == 2
    assert score.per_class["car"].found_right_class == 2
    assert (score.per_class["truck"].recall, score.per_class["truck"].recall_right_class) == (1.0, 0.0)
    assert score.vehicle_detections == 5 and score.true_positives == 3
    assert score.precision == pytest.approx(3 / 5)
    assert score.recall == 1.0
    assert score.as_dict()["per_class"]["truck"]["recall_right_class"] == 0.0


def test_frames_without_detections_output_are_not_held_against_the_detector() -> None:
    truth = {1: TruthBoxes(boxes((0, 0, 10, 10)), np.array([1]), np.array([1])), 7: TruthBoxes(
        boxes((0, 0, 10, 10)), np.array([1]), np.array([1]))}  # fmt: skip
    score = evaluate_detections(truth, {1: FrameDetections(boxes((0, 0, 10, 10)), (CAR,), np.array([0.9]))})
    assert score.recall == 1.0 and score.frames == 1


def test_hand_computed_mota_and_idf1_with_one_identity_switch() -> None:
    """One car over 3 frames; the tracker calls it 7, 7, then 8.

    MOTA = 1 - (misses 0 + false positives 0 + switches 1) / 3 objects = 2/3.
    IDF1: best identity mapping 1 <-> 7 covers 2 of 3 frames: IDTP 2, IDFP 1, IDFN 1 -> 4 / 6 = 2/3.
    """
    car = boxes((0, 0, 10, 10))
    truth = {frame: TruthBoxes(car, np.array([1]), np.array([1])) for frame in (1, 2, 3)}
    tracks = {
        1: TrackedBoxes(car, np.array([7])),
        2: TrackedBoxes(car, np.array([7])),
        3: TrackedBoxes(car, np.array([8])),
    }
    score = evaluate_tracking(truth, tracks)
    assert score.mota == pytest.approx(2 / 3)
    assert score.idf1 == pytest.approx(2 / 3)
    assert (score.id_switches, score.false_positives, score.misses, score.truth_objects) == (1, 0, 0, 3)
    assert score.motp_iou == pytest.approx(1.0)
    assert (score.distinct_tracks, score.truth_tracks) == (2, 1)
    # Every box found, none extra: the boxes are perfect, so only identity keeps IDF1 below 1.
    assert score.box_f1 == pytest.approx(1.0)


def test_hota_is_one_for_a_perfect_track_and_falls_with_a_broken_identity() -> None:
    pytest.importorskip("trackers")
    car = boxes((0, 0, 10, 10))
    truth = {frame: TruthBoxes(car, np.array([1]), np.array([1])) for frame in range(1, 7)}
    perfect = evaluate_tracking(truth, {frame: TrackedBoxes(car, np.array([7])) for frame in truth})
    broken = evaluate_tracking(truth, {frame: TrackedBoxes(car, np.array([7 if frame <= 3 else 8])) for frame in truth})
    assert perfect.hota == pytest.approx(1.0) and perfect.assa == pytest.approx(1.0)
    # Detection is as good (DetA 1); association halves: each id covers half of the object's frames.
    assert broken.deta == pytest.approx(1.0)
    assert broken.assa == pytest.approx(0.5)
    assert broken.hota == pytest.approx(0.5**0.5)


def test_a_box_below_iou_half_is_a_miss_and_a_false_positive() -> None:
    truth = {1: TruthBoxes(boxes((0, 0, 10, 10)), np.array([1]), np.array([1]))}
    score = evaluate_tracking(truth, {1: TrackedBoxes(boxes((6, 0, 16, 10)), np.array([3]))})
    assert (score.misses, score.false_positives, score.mota) == (1, 1, pytest.approx(-1.0))
    assert math.isnan(score.box_f1)  # nothing found
