"""Counting accuracy against OpenTrafficCam-style events, on hand-made events with hand-computed scores."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rsu_contracts.enums import RoadUserType
from rsu_tools.evaluation import (
    TRUNCATED_TRACK,
    UNLABELLED_CLASS,
    PredictedCrossing,
    TruthCrossing,
    evaluate_counting,
    load_otc_events,
)

CAR, TRUCK, PEDESTRIAN = RoadUserType.CAR, RoadUserType.TRUCK, RoadUserType.PEDESTRIAN
LINES = ["south", "west", "north", "east"]


def truth(line: str, time_s: float, user: str, label: str = "car") -> TruthCrossing:
    accepted = frozenset({CAR, TRUCK}) if label == "delivery_van" else frozenset({CAR})
    return TruthCrossing(line, time_s, user, label, accepted)


def predicted(line: str, time_s: float, track: int, user: RoadUserType = CAR) -> PredictedCrossing:
    return PredictedCrossing(line, time_s, track, user)


def test_otc_events_are_read_onto_one_time_axis_over_back_to_back_clips(tmp_path: Path) -> None:
    document = {
        "sections": [{"id": "1", "name": "South"}, {"id": "2", "name": "West"}],
        "event_list": [
            {"event_type": "section-enter", "frame_number": 93, "section_id": "2", "road_user_id": "10",
             "road_user_type": "delivery_van", "video_name": "a.mp4"},
            {"event_type": "section-enter", "frame_number": 17, "section_id": "1", "road_user_id": "10",
             "road_user_type": "delivery_van", "video_name": "b.mp4"},
            {"event_type": "section-leave", "frame_number": 20, "section_id": "1", "road_user_id": "10",
             "road_user_type": "delivery_van", "video_name": "b.mp4"},
            {"event_type": "section-enter", "frame_number": 5, "section_id": "1", "road_user_id": "11",
             "road_user_type": "car", "video_name": "elsewhere.mp4"},
        ],
    }  # fmt: skip
    path = tmp_path / "events.otgtevents.json"
    path.write_text(json.dumps(document))
    events = load_otc_events(path, {"a.mp4": 0.0, "b.mp4": 10.0}, fps=20.0, line_ids=["south", "west"])
    assert [(e.line_id, e.time_s, e.road_user_id) for e in events] == [("west", 4.65, "10"), ("south", 10.85, "10")]
    assert events[0].accepted == {CAR, TRUCK}  # a delivery van is a car or a truck to a COCO detector
    with pytest.raises(ValueError, match="does not have"):
        load_otc_events(path, {"a.mp4": 0.0}, fps=20.0, line_ids=["north"])


def test_hand_computed_counting_scores() -> None:
    events = [
        truth("east", 1.0, "A"),
        truth("west", 5.0, "A"),
        truth("west", 5.1, "B"),
        truth("east", 9.0, "B"),
    ]
    crossings = [
        predicted("east", 1.4, 1),
        predicted("west", 5.6, 1),
        predicted("east", 9.3, 2, TRUCK),  # B found on the right line but called a truck
        predicted("north", 3.0, 3),  # nothing crossed there
        predicted("south", 2.0, 4, PEDESTRIAN),  # not labelled by this ground truth
        predicted("west", 19.5, 5),  # a car still inside when the clip ends
    ]
    score = evaluate_counting(events, crossings, LINES, 2.0, unscored_classes=[PEDESTRIAN], truncated_track_ids=[5])
    assert (score.truth_total, score.predicted_total, score.matched_total) == (4, 4, 3)
    assert (score.matched_right_class_total, score.phantom_total) == (2, 1)
    assert not score.all_found_right_class_no_phantoms
    by_line = {line.line_id: line for line in score.lines}
    assert (by_line["east"].truth, by_line["east"].matched, by_line["east"].matched_right_class) == (2, 2, 1)
    assert (by_line["west"].truth, by_line["west"].predicted, by_line["west"].missed) == (2, 1, 1)
    assert (by_line["north"].phantom, by_line["north"].phantom_by_class) == (1, {"car": 1})
    assert by_line["south"].predicted == 0
    assert [e.road_user_id for e in score.missed_events] == ["B"]
    assert {(u.crossing.track_id, u.reason) for u in score.unscored_events} == {
        (4, UNLABELLED_CLASS),
        (5, TRUNCATED_TRACK),
    }
    movements = {(m.from_line, m.to_line): m for m in score.movements}
    assert (movements["east", "west"].truth, movements["east", "west"].found) == (1, 1)
    assert (movements["west", "east"].truth, movements["west", "east"].found) == (1, 0)


def test_two_cars_crossing_one_line_in_opposite_directions_are_not_swapped() -> None:
    """Car A leaves over west at 10.85 s, car B enters over west at 10.90 s; by time alone they swap."""
    events = [
        truth("east", 6.75, "A"),
        truth("west", 10.85, "A"),
        truth("west", 10.90, "B"),
        truth("east", 14.05, "B"),
    ]
    crossings = [
        predicted("east", 7.25, 8),
        predicted("west", 11.53, 8),  # A, seen late
        predicted("west", 10.30, 9),  # B, seen early
        predicted("east", 14.2, 9),
    ]
    score = evaluate_counting(events, crossings, LINES)
    matched = {(p.track_id, p.line_id): user for p, user in score.predicted_events}
    assert matched == {(8, "east"): "A", (8, "west"): "A", (9, "west"): "B", (9, "east"): "B"}
    assert all(m.found == m.truth for m in score.movements)


def test_truncated_tracks_are_unscored_only_when_the_truth_holds_complete_movements() -> None:
    incomplete_truth = [truth("east", 1.0, "A")]  # a road user with a single event
    crossing = [predicted("west", 19.5, 5)]
    score = evaluate_counting(incomplete_truth, crossing, LINES, truncated_track_ids=[5])
    assert score.phantom_total == 1 and not score.unscored_events


def test_a_crossing_outside_the_tolerance_is_missed_and_phantom() -> None:
    score = evaluate_counting([truth("east", 1.0, "A")], [predicted("east", 3.5, 1)], LINES, time_tolerance_s=2.0)
    assert (score.matched_total, score.phantom_total, len(score.missed_events)) == (0, 1, 1)
    report = score.as_dict()
    assert report["truth_total"] == 1 and report["phantom_events"][0]["time_s"] == 3.5
