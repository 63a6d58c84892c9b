"""The message models refuse what no genuine camera, tracker or controller produces: non-finite
numbers, oversized lists, implausible speeds, positions and queues (issue 15's forged inputs)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from rsu_contracts.messages import (
    DetectorStates,
    MessageError,
    SignalState,
    TrackList,
    decode,
)
from rsu_contracts.messages.bounds import (
    MAX_DISTANCE_FROM_ORIGIN_M,
    MAX_QUEUE_LENGTH_M,
    MAX_QUEUED_VEHICLES,
    MAX_SPEED_MPS,
    MAX_TRACKED_OBJECTS,
)

NOW_S = 1_700_000_000.0


def header(schema: str) -> dict[str, Any]:
    return {"schema_name": schema, "unit_id": "u1", "seq": 0, "capture_time_s": NOW_S, "publish_time_s": NOW_S}


def car(**fields: Any) -> dict[str, Any]:
    obj = {"track_id": 1, "road_user": "car", "x_m": 1.0, "y_m": 2.0, "speed_mps": 10.0, "heading_deg": 90.0,
           "age_s": 1.0}  # fmt: skip
    return obj | fields


def tracks(objects: list[dict[str, Any]], **fields: Any) -> str:
    return json.dumps(header("rsu.tracks") | {"camera_id": "cam", "objects": objects} | fields)


def lane(**fields: Any) -> dict[str, Any]:
    obs = {"lane_id": "north_in", "stop_bar_occupied": True, "queue_length_m": 12.0, "queued_vehicles": 2,
           "approaching_vehicles": 1, "stop_bar_gap_s": 0.5}  # fmt: skip
    return obs | fields


def detectors(lanes: list[dict[str, Any]], **fields: Any) -> str:
    return json.dumps(header("rsu.detectors") | {"camera_id": "cam", "valid": True, "lanes": lanes} | fields)


def test_genuine_values_at_the_bounds_decode() -> None:
    edge = car(speed_mps=MAX_SPEED_MPS, x_m=-MAX_DISTANCE_FROM_ORIGIN_M, y_m=MAX_DISTANCE_FROM_ORIGIN_M)
    assert decode(TrackList, tracks([edge] * MAX_TRACKED_OBJECTS)).objects[0].speed_mps == MAX_SPEED_MPS
    full = lane(queue_length_m=MAX_QUEUE_LENGTH_M, queued_vehicles=MAX_QUEUED_VEHICLES)
    assert decode(DetectorStates, detectors([full])).lanes[0].queued_vehicles == MAX_QUEUED_VEHICLES


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
@pytest.mark.parametrize("field", ["speed_mps", "x_m", "y_m", "heading_deg", "acceleration_mps2", "age_s"])
def test_non_finite_track_values_are_refused(field: str, value: str) -> None:
    payload = tracks([car()]).replace(f'"{field}": {json.dumps(car().get(field, 0.0))}', f'"{field}": {value}')
    if field == "acceleration_mps2":
        payload = tracks([car(acceleration_mps2=0.5)]).replace(
            '"acceleration_mps2": 0.5', f'"acceleration_mps2": {value}'
        )
    with pytest.raises(MessageError, match=field):
        decode(TrackList, payload)


@pytest.mark.parametrize("field", ["capture_time_s", "publish_time_s"])
def test_non_finite_envelope_times_are_refused(field: str) -> None:
    payload = tracks([]).replace(f'"{field}": {NOW_S}', f'"{field}": Infinity')
    with pytest.raises(MessageError, match=field):
        decode(TrackList, payload)


def test_an_oversized_track_list_is_refused_before_anything_else_reads_it() -> None:
    with pytest.raises(MessageError, match="objects"):
        decode(TrackList, tracks([car(track_id=k) for k in range(40_000)]))
    with pytest.raises(MessageError, match="objects"):
        decode(TrackList, tracks([car()] * (MAX_TRACKED_OBJECTS + 1)))


@pytest.mark.parametrize(
    ("fields", "name"),
    [
        ({"speed_mps": MAX_SPEED_MPS + 0.1}, "speed_mps"),
        ({"x_m": MAX_DISTANCE_FROM_ORIGIN_M + 1}, "x_m"),
        ({"y_m": -MAX_DISTANCE_FROM_ORIGIN_M - 1}, "y_m"),
        ({"length_m": 1e9}, "length_m"),
        ({"track_id": 10**30}, "track_id"),
    ],
)
def test_implausible_track_values_are_refused(fields: dict[str, Any], name: str) -> None:
    with pytest.raises(MessageError, match=name):
        decode(TrackList, tracks([car(**fields)]))


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        ('"queued_vehicles": 1e20', "queued_vehicles"),
        ('"queued_vehicles": 1001', "queued_vehicles"),
        ('"queue_length_m": Infinity', "queue_length_m"),
        ('"queue_length_m": 5000.5', "queue_length_m"),
        ('"queue_length_m": NaN', "queue_length_m"),
        ('"stop_bar_gap_s": Infinity', "stop_bar_gap_s"),
    ],
)
def test_absurd_queues_are_refused_with_the_field_named(raw: str, name: str) -> None:
    key = raw.split(":")[0].strip('"')
    payload = detectors([lane()]).replace(f'"{key}": {json.dumps(lane()[key])}', raw)
    assert raw in payload
    with pytest.raises(MessageError, match=name):
        decode(DetectorStates, payload)


def test_detector_lists_are_capped() -> None:
    with pytest.raises(MessageError, match="lanes"):
        decode(DetectorStates, detectors([lane(lane_id=f"l{k}") for k in range(1_000)]))
    crosswalks = [{"crosswalk_id": f"c{k}", "pedestrians": 0} for k in range(1_000)]
    with pytest.raises(MessageError, match="crosswalks"):
        decode(DetectorStates, detectors([lane()], crosswalks=crosswalks))


def test_signal_state_lists_are_capped() -> None:
    group = {"signal_group": "2", "indication": "green", "since_s": NOW_S, "min_end_time_s": NOW_S,
             "max_end_time_s": NOW_S, "likely_time_s": NOW_S}  # fmt: skip
    payload = json.dumps(header("rsu.signal_state") | {"mode": "normal", "strategy": "x", "groups": [group] * 10_000})
    with pytest.raises(MessageError, match="groups"):
        decode(SignalState, payload)
    bad = json.dumps(header("rsu.signal_state") | {"mode": "normal", "strategy": "x", "groups": [group]})
    with pytest.raises(MessageError, match="likely_time_s"):
        decode(SignalState, bad.replace(f'"likely_time_s": {NOW_S}', '"likely_time_s": NaN'))
