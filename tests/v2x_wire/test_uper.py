"""UPER SPATEM / MAPEM / DENM: what is encoded decodes to the same fields."""

from __future__ import annotations

import pytest

from rsu_contracts.config import SiteConfig
from rsu_contracts.messages import WarningKind, WarningStatus
from tests.v2x_wire.builders import NOW_S, spat, warning
from v2x.mapdata import build_map, signal_group_numeric_ids
from v2x.uper import (
    TIME_MARK_MORE_THAN_AN_HOUR,
    TIME_MARK_UNKNOWN,
    ItsIdentity,
    UperError,
    decode_denm,
    decode_mapem,
    decode_spatem,
    encode_denm,
    encode_mapem,
    encode_mapem_data,
    encode_spatem,
    its_timestamp_ms,
    time_mark,
    time_mark_to_s,
    unix_from_its_timestamp,
)

# TimeMark resolution is 0.1 s, so a time survives the round trip to within half of that.
TIME_MARK_TOLERANCE_S = 0.051


def test_spatem_round_trip_keeps_every_movement() -> None:
    message = spat(now_s=NOW_S)
    numbers = {"2": 2, "4": 4, "p_north": 17}

    decoded = decode_spatem(encode_spatem(message, 4242, 77, numbers), reference_time_s=NOW_S + 0.2)

    assert decoded["station_id"] == 77 and decoded["protocol_version"] == 2
    (intersection,) = decoded["intersections"]
    assert intersection["intersection_numeric_id"] == 4242
    assert intersection["revision"] == message.seq % 128
    assert intersection["timestamp_s"] == pytest.approx(NOW_S, abs=1e-3)
    assert len(intersection["movements"]) == len(message.movements)
    for original, movement in zip(message.movements, intersection["movements"], strict=True):
        assert movement["signal_group"] == original.signal_group
        assert movement["signal_group_numeric_id"] == numbers[original.signal_group]
        assert movement["event_state"] == original.event_state
        assert movement["min_end_time_s"] == pytest.approx(original.min_end_time_s, abs=TIME_MARK_TOLERANCE_S)
        assert movement["max_end_time_s"] == pytest.approx(original.max_end_time_s, abs=TIME_MARK_TOLERANCE_S)
        assert movement["likely_time_s"] == pytest.approx(original.likely_time_s, abs=TIME_MARK_TOLERANCE_S)


def test_time_marks_are_tenths_of_a_second_within_the_hour() -> None:
    hour_start = 1_700_000_000 // 3600 * 3600
    now = hour_start + 3595.0
    assert time_mark(hour_start + 3598.26, now) == 35983
    # Across the hour boundary the mark wraps and resolves into the next hour.
    assert time_mark(hour_start + 3600 + 4.0, now) == 40
    assert time_mark_to_s(40, now) == pytest.approx(hour_start + 3604.0)
    # An overdue change is "now"; more than an hour away and unknown have their own values.
    assert time_mark(now - 10.0, now) == time_mark(now, now)
    assert time_mark(now + 4000.0, now) == TIME_MARK_MORE_THAN_AN_HOUR
    assert time_mark(float("inf"), now) == TIME_MARK_UNKNOWN
    assert time_mark_to_s(TIME_MARK_UNKNOWN, now) is None


def test_spatem_rejects_a_signal_group_without_a_number() -> None:
    with pytest.raises(UperError, match="p_north"):
        encode_spatem(spat(), 1, 1, {"2": 2, "4": 4})


def test_signal_group_numbers_follow_nema_then_site_order(sample_site: SiteConfig) -> None:
    numbers = signal_group_numeric_ids(sample_site)
    for group in sample_site.signal_groups:
        if group.nema_phase is not None:
            assert numbers[group.id] == group.nema_phase
    named = [numbers[group.id] for group in sample_site.signal_groups if group.nema_phase is None]
    assert named == list(range(17, 17 + len(named)))
    assert len(set(numbers.values())) == len(numbers)


def test_spatem_encodes_the_sample_sites_groups(sample_site: SiteConfig) -> None:
    identity = ItsIdentity.for_site(sample_site)
    message = spat(unit_id=sample_site.unit_id)
    decoded = decode_spatem(
        encode_spatem(message, identity.intersection_numeric_id, identity.station_id, identity.signal_group_ids),
        reference_time_s=NOW_S,
    )
    names = [movement["signal_group"] for movement in decoded["intersections"][0]["movements"]]
    assert names == [movement.signal_group for movement in message.movements]


def test_mapem_round_trip_matches_the_json_map(sample_site: SiteConfig) -> None:
    header = {"unit_id": sample_site.unit_id, "seq": 0, "capture_time_s": NOW_S, "publish_time_s": NOW_S}
    map_data = build_map(sample_site, header)

    decoded = decode_mapem(encode_mapem_data(map_data, station_id=5))

    assert decoded["station_id"] == 5 and decoded["revision"] == map_data.revision
    (intersection,) = decoded["intersections"]
    assert intersection["intersection_numeric_id"] == map_data.intersection_numeric_id
    reference = intersection["reference"]
    assert reference["latitude_deg"] == pytest.approx(sample_site.reference.latitude_deg, abs=1e-7)
    assert reference["longitude_deg"] == pytest.approx(sample_site.reference.longitude_deg, abs=1e-7)
    lanes = {lane["lane_numeric_id"]: lane for lane in intersection["lanes"]}
    assert len(lanes) == len(map_data.lanes) + len(map_data.egress_lanes) + len(map_data.crosswalks)
    for lane in map_data.lanes:
        encoded = lanes[lane.lane_numeric_id]
        assert encoded["name"] == lane.id
        assert encoded["direction"] == ["ingressPath"]
        assert encoded["ingress_approach"] == lane.approach_numeric_id
        assert encoded["width_m"] == pytest.approx(lane.width_m)
        # Node offsets are whole centimetres from the reference point.
        assert len(encoded["nodes_m"]) == len(lane.nodes)
        for (x_m, y_m), node in zip(encoded["nodes_m"], lane.nodes, strict=True):
            assert x_m == pytest.approx(node.x_m, abs=0.005) and y_m == pytest.approx(node.y_m, abs=0.005)
        assert [(c["lane_numeric_id"], c["signal_group_numeric_id"]) for c in encoded["connections"]] == [
            (c.to_lane_numeric_id, c.signal_group_numeric_id) for c in lane.connections
        ]
        assert all(c["signal_group_numeric_id"] == lane.signal_group_numeric_id for c in encoded["connections"])
    for crosswalk in map_data.crosswalks:
        encoded = lanes[crosswalk.lane_numeric_id]
        assert encoded["lane_type"] == "crosswalk"
        assert encoded["width_m"] == pytest.approx(crosswalk.width_m)
        assert [c["signal_group_numeric_id"] for c in encoded["connections"]] == [crosswalk.signal_group_numeric_id]


def test_mapem_from_the_site_directly(sample_site: SiteConfig) -> None:
    decoded = decode_mapem(encode_mapem(sample_site, station_id=9, intersection_numeric_id=321, timestamp_s=NOW_S))
    assert decoded["intersections"][0]["intersection_numeric_id"] == 321
    assert decoded["intersections"][0]["name"] == sample_site.unit_id


@pytest.mark.parametrize(
    ("kind", "cause_code", "sub_cause_code"),
    [
        (WarningKind.CROSSING, 97, 2),
        (WarningKind.REAR_END, 97, 1),
        (WarningKind.VULNERABLE_ROAD_USER, 97, 4),
        (WarningKind.RED_LIGHT_VIOLATION, 98, 2),
    ],
)
def test_denm_round_trip_with_cause_codes(kind: WarningKind, cause_code: int, sub_cause_code: int) -> None:
    message = warning(kind=kind)

    decoded = decode_denm(encode_denm(message, station_id=1234, validity_s=3))

    assert decoded["cause_code"] == cause_code and decoded["sub_cause_code"] == sub_cause_code
    assert decoded["cause"] == {97: "collisionRisk", 98: "signalViolation"}[cause_code]
    assert decoded["station_id"] == decoded["originating_station_id"] == 1234
    assert decoded["station_type"] == 15  # roadSideUnit
    assert decoded["latitude_deg"] == pytest.approx(message.conflict_latitude_deg, abs=1e-7)
    assert decoded["longitude_deg"] == pytest.approx(message.conflict_longitude_deg, abs=1e-7)
    assert decoded["detection_time_s"] == pytest.approx(message.capture_time_s, abs=1e-3)
    assert decoded["reference_time_s"] == pytest.approx(message.publish_time_s, abs=1e-3)
    assert decoded["validity_s"] == 3
    assert decoded["termination"] is None


def test_ended_warning_cancels_the_same_denm_action() -> None:
    started = decode_denm(encode_denm(warning(warning_id="crossing-1-2-99"), station_id=1))
    ended = decode_denm(encode_denm(warning(warning_id="crossing-1-2-99", status=WarningStatus.ENDED), station_id=1))
    assert ended["termination"] == "isCancellation"
    assert ended["sequence_number"] == started["sequence_number"]


def test_its_timestamps_count_leap_seconds() -> None:
    # ETSI TS 102 894-2: 2007-01-01T00:00:00Z is 94 694 401 000 ms (one leap second since 2004).
    assert its_timestamp_ms(1167609600.0) == 94_694_401_000
    assert unix_from_its_timestamp(its_timestamp_ms(NOW_S)) == pytest.approx(NOW_S, abs=1e-3)


def test_bytes_of_another_message_or_garbage_raise_a_uper_error(sample_site: SiteConfig) -> None:
    with pytest.raises(UperError, match="DENM"):
        decode_denm(b"\x01\x02")
    mapem = encode_mapem(sample_site, station_id=1, timestamp_s=NOW_S)
    with pytest.raises(UperError, match="SPATEM"):
        decode_spatem(mapem)
