"""Message contracts: typed, versioned, SI units in names, and nothing per vehicle upstream."""

from __future__ import annotations

import re
from typing import Any

import pytest
from pydantic import BaseModel

from rsu_contracts.messages import (
    ALL_MESSAGES,
    Aggregate,
    ControllerMode,
    Indication,
    LaneAggregate,
    Message,
    MessageError,
    SignalGroupState,
    SignalState,
    TrackList,
    decode,
)

# A float field must say its unit: seconds, metres, m/s, m/s², degrees, vehicles or a ratio.
UNIT_SUFFIX = re.compile(r"_(s|m|mps|mps2|deg|ratio|vehicles|px)$")
UNITLESS_FLOATS = {"confidence"}
PER_VEHICLE_KEYS = {"track_id", "x_m", "y_m", "latitude_deg", "longitude_deg", "object_id", "image", "plate"}


def _float_fields(model: type[BaseModel], prefix: str = "") -> list[str]:
    names = []
    for name, info in model.model_fields.items():
        annotation = str(info.annotation)
        if "float" in annotation:
            names.append(prefix + name)
        for candidate in getattr(info.annotation, "__args__", ()) or (info.annotation,):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                names += _float_fields(candidate, f"{prefix}{name}.")
    return names


@pytest.mark.parametrize("message_type", ALL_MESSAGES, ids=lambda m: m.SCHEMA)
def test_every_float_field_names_its_unit(message_type: type[Message]) -> None:
    for path in _float_fields(message_type):
        leaf = path.split(".")[-1]
        assert UNIT_SUFFIX.search(leaf) or leaf in UNITLESS_FLOATS, f"{message_type.SCHEMA}: {path} has no unit"


@pytest.mark.parametrize("message_type", ALL_MESSAGES, ids=lambda m: m.SCHEMA)
def test_every_message_carries_unit_sequence_and_both_times(message_type: type[Message]) -> None:
    fields = message_type.model_fields
    for required in ("schema_name", "schema_version", "unit_id", "seq", "capture_time_s", "publish_time_s"):
        assert required in fields
    assert message_type.SCHEMA.startswith("rsu.")


def _signal_state() -> SignalState:
    group = SignalGroupState(
        signal_group="2",
        indication=Indication.GREEN,
        since_s=10.0,
        min_end_time_s=15.0,
        max_end_time_s=40.0,
        likely_time_s=20.0,
    )
    return SignalState(
        unit_id="u1",
        seq=7,
        capture_time_s=12.0,
        publish_time_s=12.01,
        mode=ControllerMode.NORMAL,
        strategy="actuated",
        groups=[group],
    )


def test_a_message_round_trips_through_json_with_its_schema_name() -> None:
    state = _signal_state()
    payload = state.to_json()
    assert b'"schema_name":"rsu.signal_state"' in payload
    assert decode(SignalState, payload) == state


def test_decoding_the_wrong_schema_is_an_error_naming_both() -> None:
    with pytest.raises(MessageError, match=r"rsu\.tracks"):
        decode(TrackList, _signal_state().to_json())


def test_an_unknown_field_is_rejected_and_named() -> None:
    payload = _signal_state().to_json().replace(b'"reason"', b'"sneaky":1,"reason"')
    with pytest.raises(MessageError, match="sneaky"):
        decode(SignalState, payload)


def test_a_newer_schema_version_is_refused() -> None:
    payload = _signal_state().to_json().replace(b'"schema_version":1', b'"schema_version":2')
    with pytest.raises(MessageError, match="unsupported schema_version 2"):
        decode(SignalState, payload)


def _all_keys(schema: dict[str, Any]) -> set[str]:
    keys: set[str] = set()
    for definition in [schema, *schema.get("$defs", {}).values()]:
        keys |= set(definition.get("properties", {}))
    return keys


def test_the_upstream_schema_cannot_hold_anything_per_vehicle() -> None:
    keys = _all_keys(Aggregate.model_json_schema())
    assert not keys & PER_VEHICLE_KEYS
    assert Aggregate.model_config.get("extra") == "forbid"
    assert LaneAggregate.model_config.get("extra") == "forbid"


def test_an_aggregate_with_a_smuggled_track_id_is_rejected() -> None:
    with pytest.raises(ValueError, match="track_id"):
        LaneAggregate.model_validate(
            {
                "lane_id": "n",
                "counts_by_class": {},
                "occupancy_ratio": 0,
                "mean_queue_m": 0,
                "max_queue_m": 0,
                "mean_queue_vehicles": 0,
                "track_id": 5,
            }
        )
