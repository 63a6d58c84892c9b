"""ASN.1 UPER encodings of SPaT, MAP and warnings with the ETSI modules compiled into pycrate.

Modules (pycrate 0.8.1, ``pycrate_asn1dir``):

* ``ITS_IS``: SPATEM-PDU-Descriptions and MAPEM-PDU-Descriptions of ETSI TS 103 301 (module
  version 2) over the ISO TS 19091 ``DSRC`` module (version 2, same content as SAE J2735 SPAT and
  MapData), with ITS-Container v2 (ETSI TS 102 894-2 V1.3.1) for the header.
* ``ITS_DENM_3``: DENM-PDU-Descriptions of ETSI EN 302 637-3 V1.3.1 (DENM "v2", protocolVersion 2)
  with the same ITS-Container v2.

The ItsPduHeader carries protocolVersion 2 (the ITS-Container v2 generation of these messages).

Identifiers (station id, IntersectionID, SignalGroupID, LaneID) come from ``ItsIdentity``; the
numbering rules are in ``v2x.mapdata``. Times:

* TimeMark (SPaT minEndTime / maxEndTime / likelyTime): tenths of a second within the current
  UTC hour (0..35999), 36000 = more than an hour away, 36001 = unknown. The encoder never sends a
  time before the message timestamp (an overdue change is "now"), so a decoder resolves a mark to
  the first matching instant at most MAX_OVERDUE_S before the message timestamp.
* MinuteOfTheYear + DSecond (ms within the minute) stamp SPATEM and MAPEM, in UTC.
* TimestampIts (DENM): milliseconds since 2004-01-01T00:00:00 UTC counting leap seconds
  (ETSI TS 102 894-2: 1 January 2007 is 94 694 401 000).

pycrate keeps each ASN.1 type as one shared, mutable object, so every encode and decode runs
under a lock.
"""

from __future__ import annotations

import calendar
import hashlib
import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pycrate_asn1dir import ITS_DENM_3, ITS_IS
from pycrate_core.utils import PycrateErr

from rsu_contracts.config.model import SiteConfig
from rsu_contracts.messages.signal import Spat
from rsu_contracts.messages.warnings import CollisionWarning, WarningKind, WarningStatus
from v2x.mapdata import (
    MapData,
    MapPoint,
    build_map,
    default_intersection_numeric_id,
    signal_group_numeric_ids,
)

PROTOCOL_VERSION = 2
MESSAGE_ID_DENM = 1
MESSAGE_ID_SPATEM = 4
MESSAGE_ID_MAPEM = 5

TIME_MARK_MORE_THAN_AN_HOUR = 36000
TIME_MARK_UNKNOWN = 36001
MAX_OVERDUE_S = 60.0
SECONDS_PER_HOUR = 3600

CAUSE_COLLISION_RISK = 97
CAUSE_SIGNAL_VIOLATION = 98
# (causeCode, subCauseCode) per warning kind. Sub causes: CollisionRiskSubCauseCode 1 longitudinal,
# 2 crossing, 4 vulnerable road user, 0 unavailable; SignalViolationSubCauseCode 2 traffic light.
DENM_CAUSE_BY_KIND: dict[WarningKind, tuple[int, int]] = {
    WarningKind.REAR_END: (CAUSE_COLLISION_RISK, 1),
    WarningKind.CROSSING: (CAUSE_COLLISION_RISK, 2),
    WarningKind.VULNERABLE_ROAD_USER: (CAUSE_COLLISION_RISK, 4),
    WarningKind.STOPPED_IN_JUNCTION: (CAUSE_COLLISION_RISK, 0),
    WarningKind.RED_LIGHT_VIOLATION: (CAUSE_SIGNAL_VIOLATION, 2),
}
STATION_TYPE_ROAD_SIDE_UNIT = 15
# Warnings are refreshed about every second while they last; a DENM that is not refreshed expires
# soon after, so a vehicle that misses the "ended" message does not keep warning for minutes.
DEFAULT_DENM_VALIDITY_S = 3
# DENM has no severity field; informationQuality states how trustworthy the detection is
# (0 unavailable, 1 lowest .. 7 highest): camera tracks with short-term prediction, mid scale.
DENM_INFORMATION_QUALITY = 4

# UTC Unix times at which a leap second had just been inserted, since the ITS epoch.
_LEAP_SECONDS_SINCE_2004 = (
    1136073600,  # 2006-01-01
    1230768000,  # 2009-01-01
    1341100800,  # 2012-07-01
    1435708800,  # 2015-07-01
    1483228800,  # 2017-01-01
)
ITS_EPOCH_UNIX_S = 1072915200  # 2004-01-01T00:00:00Z

_SPATEM = ITS_IS.SPATEM_PDU_Descriptions.SPATEM
_MAPEM = ITS_IS.MAPEM_PDU_Descriptions.MAPEM
_DENM = ITS_DENM_3.DENM_PDU_Descriptions.DENM
_CODEC_LOCK = threading.Lock()

_LANE_DIRECTION_BITS = ("ingressPath", "egressPath")
_MANEUVER_BITS = (
    "maneuverStraightAllowed",
    "maneuverLeftAllowed",
    "maneuverRightAllowed",
    "maneuverUTurnAllowed",
    "maneuverLeftTurnOnRedAllowed",
    "maneuverRightTurnOnRedAllowed",
    "maneuverLaneChangeAllowed",
    "maneuverNoStoppingAllowed",
    "yieldAllwaysRequired",  # sic, as spelled in the ASN.1
    "goWithHalt",
    "caution",
    "reserved1",
)
_MANEUVER_BY_MOVEMENT = {
    "through": "maneuverStraightAllowed",
    "left": "maneuverLeftAllowed",
    "right": "maneuverRightAllowed",
    "uturn": "maneuverUTurnAllowed",
}
_INTERSECTION_STATUS_BITS = 16
_DESCRIPTIVE_NAME_MAX = 63
# NodeOffsetPointXY choices: (name, largest |offset| in cm).
_NODE_XY_CHOICES = (
    ("node-XY1", 511),
    ("node-XY2", 1023),
    ("node-XY3", 2047),
    ("node-XY4", 4095),
    ("node-XY5", 8191),
    ("node-XY6", 32767),
)
_MAX_NODE_DELTA_CM = 32767
_MAX_NODES = 63


class UperError(ValueError):
    """A message that cannot be encoded, or bytes that do not decode; the message says which field."""


def default_station_id(unit_id: str) -> int:
    """A stable ITS StationID (0..2^32-1) for a unit; configure a real one where one is assigned."""
    return int.from_bytes(hashlib.sha256(b"station:" + unit_id.encode()).digest()[:4], "big")


@dataclass(frozen=True)
class ItsIdentity:
    """Numeric identifiers of a unit in ETSI/ISO messages."""

    station_id: int
    intersection_numeric_id: int
    signal_group_ids: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def for_site(
        cls, site: SiteConfig, station_id: int | None = None, intersection_numeric_id: int | None = None
    ) -> ItsIdentity:
        return cls(
            station_id=default_station_id(site.unit_id) if station_id is None else station_id,
            intersection_numeric_id=intersection_numeric_id or default_intersection_numeric_id(site.unit_id),
            signal_group_ids=signal_group_numeric_ids(site),
        )


# ---------------------------------------------------------------------------------------- time


def time_mark(time_s: float, now_s: float) -> int:
    """TimeMark of an absolute time, given the message time now_s (see the module docstring)."""
    if not math.isfinite(time_s):
        return TIME_MARK_UNKNOWN
    time_s = max(time_s, now_s)
    if time_s - now_s >= SECONDS_PER_HOUR:
        return TIME_MARK_MORE_THAN_AN_HOUR
    return round((time_s % SECONDS_PER_HOUR) * 10) % (SECONDS_PER_HOUR * 10)


def time_mark_to_s(mark: int, reference_s: float) -> float | None:
    """Absolute time of a TimeMark near reference_s; None for 'more than an hour' and 'unknown'."""
    if mark >= TIME_MARK_MORE_THAN_AN_HOUR:
        return None
    hour_start = math.floor(reference_s / SECONDS_PER_HOUR) * SECONDS_PER_HOUR
    candidate = hour_start + mark / 10
    if candidate < reference_s - MAX_OVERDUE_S:
        candidate += SECONDS_PER_HOUR
    elif candidate >= reference_s - MAX_OVERDUE_S + SECONDS_PER_HOUR:
        candidate -= SECONDS_PER_HOUR
    return candidate


def minute_of_year(time_s: float) -> tuple[int, int]:
    """(MinuteOfTheYear, DSecond in ms) of a Unix time, UTC."""
    moment = datetime.fromtimestamp(time_s, UTC)
    year_start = calendar.timegm((moment.year, 1, 1, 0, 0, 0))
    seconds = time_s - year_start
    minute = int(seconds // 60)
    return minute, min(round((seconds - minute * 60) * 1000), 59999)


def from_minute_of_year(minute: int, dsecond_ms: int, reference_s: float) -> float:
    """Unix time of (MinuteOfTheYear, DSecond) in the UTC year of reference_s (or the one before)."""
    year = datetime.fromtimestamp(reference_s, UTC).year
    value = calendar.timegm((year, 1, 1, 0, 0, 0)) + minute * 60 + min(dsecond_ms, 59999) / 1000
    if value > reference_s + 183 * 86400:  # a stamp from late December read in early January
        value = calendar.timegm((year - 1, 1, 1, 0, 0, 0)) + minute * 60 + min(dsecond_ms, 59999) / 1000
    return value


def its_timestamp_ms(unix_s: float) -> int:
    leap_seconds = sum(1 for instant in _LEAP_SECONDS_SINCE_2004 if unix_s >= instant)
    return round((unix_s - ITS_EPOCH_UNIX_S + leap_seconds) * 1000)


def unix_from_its_timestamp(its_ms: int) -> float:
    elapsed_s = its_ms / 1000 + ITS_EPOCH_UNIX_S
    leap_seconds = 0
    for instant in _LEAP_SECONDS_SINCE_2004:
        if elapsed_s - (leap_seconds + 1) >= instant:
            leap_seconds += 1
    return elapsed_s - leap_seconds


# ---------------------------------------------------------------------------------------- codec


def _encode(asn: Any, value: dict[str, Any], what: str) -> bytes:
    with _CODEC_LOCK:
        try:
            asn.set_val(value)
            return bytes(asn.to_uper())
        except PycrateErr as exc:
            raise UperError(f"{what}: cannot encode: {exc}") from None


def _decode(asn: Any, data: bytes, what: str) -> dict[str, Any]:
    with _CODEC_LOCK:
        try:
            asn.from_uper(data)
            value: dict[str, Any] = asn.get_val()
        # Whatever the bytes make pycrate raise, the caller gets one error type.
        except (PycrateErr, ValueError, IndexError, KeyError, TypeError, OverflowError, RecursionError) as exc:
            raise UperError(f"{what}: not a valid UPER {what} ({len(data)} bytes): {exc}") from None
    return value


def _header(message_id: int, station_id: int) -> dict[str, int]:
    return {"protocolVersion": PROTOCOL_VERSION, "messageID": message_id, "stationID": station_id}


def _check_header(header: Mapping[str, int], message_id: int, what: str) -> None:
    if header["messageID"] != message_id:
        raise UperError(f"{what}: header messageID is {header['messageID']}, expected {message_id}")


def _bits(names: list[str], all_names: tuple[str, ...], size: int) -> tuple[int, int]:
    """A named BIT STRING value as pycrate expects it: (integer, length), bit 0 the most significant."""
    value = 0
    for name in names:
        value |= 1 << (size - 1 - all_names.index(name))
    return value, size


def _bit_names(bits: tuple[int, int], all_names: tuple[str, ...]) -> list[str]:
    value, size = bits
    return [name for index, name in enumerate(all_names[:size]) if value >> (size - 1 - index) & 1]


def _descriptive_name(text: str) -> str | None:
    """IA5 DescriptiveName (1..63 printable ASCII) or None if the text does not fit."""
    if 1 <= len(text) <= _DESCRIPTIVE_NAME_MAX and text.isascii() and text.isprintable():
        return text
    return None


def _to_e7(degrees: float) -> int:
    return round(degrees * 1e7)


# ----------------------------------------------------------------------------------------- SPATEM


def encode_spatem(
    spat: Spat, intersection_numeric_id: int, station_id: int, signal_group_ids: Mapping[str, int]
) -> bytes:
    """SPATEM with one IntersectionState; one MovementState (one MovementEvent) per signal group.

    The movement name carries the rsu signal group id, so a decoder can map numbers back to names.
    """
    if not spat.movements:
        raise UperError("SPATEM: a SPaT needs at least one movement")
    now_s = spat.publish_time_s
    minute, dsecond = minute_of_year(now_s)
    states = []
    for movement in spat.movements:
        number = signal_group_ids.get(movement.signal_group)
        if number is None:
            raise UperError(f"SPATEM: signal group {movement.signal_group!r} has no numeric SignalGroupID")
        state: dict[str, Any] = {
            "signalGroup": number,
            "state-time-speed": [
                {
                    "eventState": movement.event_state,
                    "timing": {
                        "minEndTime": time_mark(movement.min_end_time_s, now_s),
                        "maxEndTime": time_mark(movement.max_end_time_s, now_s),
                        "likelyTime": time_mark(movement.likely_time_s, now_s),
                    },
                }
            ],
        }
        name = _descriptive_name(movement.signal_group)
        if name is not None:
            state["movementName"] = name
        states.append(state)
    intersection: dict[str, Any] = {
        "id": {"id": intersection_numeric_id},
        "revision": spat.seq % 128,
        "status": (0, _INTERSECTION_STATUS_BITS),
        "moy": minute,
        "timeStamp": dsecond,
        "states": states,
    }
    intersection = _with_name(intersection, spat.intersection_id)
    value = {
        "header": _header(MESSAGE_ID_SPATEM, station_id),
        "spat": {"timeStamp": minute, "intersections": [intersection]},
    }
    return _encode(_SPATEM, value, "SPATEM")


def decode_spatem(data: bytes, reference_time_s: float | None = None) -> dict[str, Any]:
    """Plain dict of a SPATEM; times resolved to Unix seconds.

    reference_time_s (default: the local clock) picks the UTC year for MinuteOfTheYear; TimeMarks
    are then resolved against each intersection's own timestamp.
    """
    reference_s = time.time() if reference_time_s is None else reference_time_s
    value = _decode(_SPATEM, data, "SPATEM")
    _check_header(value["header"], MESSAGE_ID_SPATEM, "SPATEM")
    intersections = []
    for intersection in value["spat"]["intersections"]:
        stamp_s = reference_s
        if "moy" in intersection:
            stamp_s = from_minute_of_year(intersection["moy"], intersection.get("timeStamp", 0), reference_s)
        movements = []
        for state in intersection["states"]:
            for event in state["state-time-speed"]:
                timing = event.get("timing", {})
                marks = {key: timing.get(key) for key in ("minEndTime", "maxEndTime", "likelyTime")}
                movements.append(
                    {
                        "signal_group_numeric_id": state["signalGroup"],
                        "signal_group": state.get("movementName"),
                        "event_state": event["eventState"],
                        "min_end_time_s": _mark_to_s(marks["minEndTime"], stamp_s),
                        "max_end_time_s": _mark_to_s(marks["maxEndTime"], stamp_s),
                        "likely_time_s": _mark_to_s(marks["likelyTime"], stamp_s),
                        "time_marks": marks,
                    }
                )
        intersections.append(
            {
                "name": intersection.get("name"),
                "intersection_numeric_id": intersection["id"]["id"],
                "revision": intersection["revision"],
                "status": _bit_names(intersection["status"], _intersection_status_names()),
                "timestamp_s": stamp_s if "moy" in intersection else None,
                "movements": movements,
            }
        )
    return {
        "message": "SPATEM",
        "protocol_version": value["header"]["protocolVersion"],
        "station_id": value["header"]["stationID"],
        "intersections": intersections,
    }


def _mark_to_s(mark: int | None, reference_s: float) -> float | None:
    return None if mark is None else time_mark_to_s(mark, reference_s)


def _intersection_status_names() -> tuple[str, ...]:
    names = ITS_IS.DSRC.IntersectionStatusObject._cont
    return tuple(sorted(names, key=lambda name: names[name]))


# ----------------------------------------------------------------------------------------- MAPEM


def encode_mapem(
    site: SiteConfig,
    station_id: int,
    intersection_numeric_id: int | None = None,
    timestamp_s: float | None = None,
) -> bytes:
    """MAPEM of a site (one IntersectionGeometry); see encode_mapem_data for the content."""
    stamp_s = time.time() if timestamp_s is None else timestamp_s
    header = {"unit_id": site.unit_id, "seq": 0, "capture_time_s": stamp_s, "publish_time_s": stamp_s}
    return encode_mapem_data(build_map(site, header, intersection_numeric_id), station_id)


def encode_mapem_data(map_data: MapData, station_id: int) -> bytes:
    """MAPEM from the JSON MAP: ref point = site reference, lanes with node offsets in cm.

    Ingress lanes carry their maneuvers and a connectsTo per movement (egress LaneID, SignalGroupID);
    egress lanes are plain; crosswalks connect to themselves with their pedestrian signal group,
    the only place MAPEM offers for it when the site describes no sidewalks. The intersection lane
    width is the most common lane width; other lanes carry a dWidth on their first node.
    """
    widths = [lane.width_m for lane in map_data.lanes] + [lane.width_m for lane in map_data.egress_lanes]
    default_width_cm = round(max(set(widths), key=widths.count) * 100)
    lane_set: list[dict[str, Any]] = []
    for lane in map_data.lanes:
        maneuvers = [_MANEUVER_BY_MOVEMENT[movement.value] for movement in lane.movements]
        entry: dict[str, Any] = {
            "laneID": lane.lane_numeric_id,
            "ingressApproach": lane.approach_numeric_id,
            "laneAttributes": _lane_attributes(["ingressPath"], ("vehicle", (0, 8))),
            "maneuvers": _bits(maneuvers, _MANEUVER_BITS, 12),
            "nodeList": ("nodes", _node_set(lane.nodes, lane.width_m, default_width_cm, lane.id)),
        }
        if lane.connections:
            entry["connectsTo"] = [
                {
                    "connectingLane": {
                        "lane": connection.to_lane_numeric_id,
                        "maneuver": _bits([_MANEUVER_BY_MOVEMENT[connection.movement.value]], _MANEUVER_BITS, 12),
                    },
                    "signalGroup": connection.signal_group_numeric_id,
                }
                for connection in lane.connections
            ]
        lane_set.append(_with_name(entry, lane.id))
    for egress in map_data.egress_lanes:
        entry = {
            "laneID": egress.lane_numeric_id,
            "egressApproach": egress.approach_numeric_id,
            "laneAttributes": _lane_attributes(["egressPath"], ("vehicle", (0, 8))),
            "nodeList": ("nodes", _node_set(egress.nodes, egress.width_m, default_width_cm, egress.id)),
        }
        lane_set.append(_with_name(entry, egress.id))
    for crosswalk in map_data.crosswalks:
        entry = {
            "laneID": crosswalk.lane_numeric_id,
            "laneAttributes": _lane_attributes(["ingressPath", "egressPath"], ("crosswalk", (0, 16))),
            "nodeList": ("nodes", _node_set(crosswalk.nodes, crosswalk.width_m, default_width_cm, crosswalk.id)),
        }
        if crosswalk.signal_group_numeric_id is not None:
            entry["connectsTo"] = [
                {
                    "connectingLane": {"lane": crosswalk.lane_numeric_id},
                    "signalGroup": crosswalk.signal_group_numeric_id,
                }
            ]
        lane_set.append(_with_name(entry, crosswalk.id))
    reference = map_data.reference
    ref_point: dict[str, Any] = {"lat": _to_e7(reference.latitude_deg), "long": _to_e7(reference.longitude_deg)}
    elevation_dm = round(reference.altitude_m * 10)
    if -4095 <= elevation_dm <= 61439:  # -4096 means unknown
        ref_point["elevation"] = elevation_dm
    geometry: dict[str, Any] = {
        "id": {"id": map_data.intersection_numeric_id},
        "revision": map_data.revision,
        "refPoint": ref_point,
        "laneWidth": default_width_cm,
        "laneSet": lane_set,
    }
    geometry = _with_name(geometry, map_data.intersection_id)
    minute, _ = minute_of_year(map_data.publish_time_s)
    value = {
        "header": _header(MESSAGE_ID_MAPEM, station_id),
        "map": {"timeStamp": minute, "msgIssueRevision": map_data.revision, "intersections": [geometry]},
    }
    return _encode(_MAPEM, value, "MAPEM")


def _with_name(entry: dict[str, Any], text: str) -> dict[str, Any]:
    """entry plus its DescriptiveName when the text fits IA5 1..63 (pycrate ignores the key order)."""
    name = _descriptive_name(text)
    return entry if name is None else {**entry, "name": name}


def _lane_attributes(directions: list[str], lane_type: tuple[str, tuple[int, int]]) -> dict[str, Any]:
    return {
        "directionalUse": _bits(directions, _LANE_DIRECTION_BITS, 2),
        "sharedWith": (0, 10),
        "laneType": lane_type,
    }


def _node_set(nodes: list[MapPoint], width_m: float, default_width_cm: int, lane_id: str) -> list[dict[str, Any]]:
    """NodeSetXY: first node offset from the ref point, each next one from the previous (cm)."""
    absolute = [(round(node.x_m * 100), round(node.y_m * 100)) for node in nodes]
    points: list[tuple[int, int]] = []
    previous = (0, 0)
    for point in absolute:
        # Split a segment longer than the largest offset (327.67 m) into equal steps.
        dx, dy = point[0] - previous[0], point[1] - previous[1]
        steps = max(1, math.ceil(max(abs(dx), abs(dy)) / _MAX_NODE_DELTA_CM))
        for step in range(1, steps + 1):
            points.append((previous[0] + round(dx * step / steps), previous[1] + round(dy * step / steps)))
        previous = point
    if len(points) > _MAX_NODES:
        raise UperError(f"MAPEM: lane {lane_id!r} needs {len(points)} nodes; NodeSetXY allows {_MAX_NODES}")
    result: list[dict[str, Any]] = []
    previous = (0, 0)
    for point in points:
        dx, dy = point[0] - previous[0], point[1] - previous[1]
        choice = next(name for name, limit in _NODE_XY_CHOICES if max(abs(dx), abs(dy)) <= limit)
        result.append({"delta": (choice, {"x": dx, "y": dy})})
        previous = point
    width_delta_cm = round(width_m * 100) - default_width_cm
    if width_delta_cm:
        if not -512 <= width_delta_cm <= 511:
            raise UperError(f"MAPEM: lane {lane_id!r} width differs from the default by more than 5.11 m")
        result[0]["attributes"] = {"dWidth": width_delta_cm}
    return result


def decode_mapem(data: bytes) -> dict[str, Any]:
    """Plain dict of a MAPEM; node positions as metres east/north of the ref point."""
    value = _decode(_MAPEM, data, "MAPEM")
    _check_header(value["header"], MESSAGE_ID_MAPEM, "MAPEM")
    intersections = []
    for geometry in value["map"].get("intersections", []):
        default_width_cm = geometry.get("laneWidth")
        lanes = []
        for lane in geometry["laneSet"]:
            attributes = lane["laneAttributes"]
            kind, _ = attributes["laneType"]
            node_choice, node_set = lane["nodeList"]
            nodes_m: list[tuple[float, float]] = []
            x_cm = y_cm = 0
            width_delta_cm = 0
            if node_choice == "nodes":
                for index, node in enumerate(node_set):
                    _, offset = node["delta"]
                    x_cm += offset["x"]
                    y_cm += offset["y"]
                    nodes_m.append((x_cm / 100, y_cm / 100))
                    if index == 0:
                        width_delta_cm = node.get("attributes", {}).get("dWidth", 0)
            lanes.append(
                {
                    "lane_numeric_id": lane["laneID"],
                    "name": lane.get("name"),
                    "lane_type": kind,
                    "direction": _bit_names(attributes["directionalUse"], _LANE_DIRECTION_BITS),
                    "ingress_approach": lane.get("ingressApproach"),
                    "egress_approach": lane.get("egressApproach"),
                    "maneuvers": _bit_names(lane["maneuvers"], _MANEUVER_BITS) if "maneuvers" in lane else [],
                    "width_m": None if default_width_cm is None else (default_width_cm + width_delta_cm) / 100,
                    "nodes_m": nodes_m,
                    "connections": [
                        {
                            "lane_numeric_id": connection["connectingLane"]["lane"],
                            "maneuvers": _bit_names(connection["connectingLane"]["maneuver"], _MANEUVER_BITS)
                            if "maneuver" in connection["connectingLane"]
                            else [],
                            "signal_group_numeric_id": connection.get("signalGroup"),
                        }
                        for connection in lane.get("connectsTo", [])
                    ],
                }
            )
        ref_point = geometry["refPoint"]
        elevation = ref_point.get("elevation")
        intersections.append(
            {
                "name": geometry.get("name"),
                "intersection_numeric_id": geometry["id"]["id"],
                "revision": geometry["revision"],
                "reference": {
                    "latitude_deg": ref_point["lat"] / 1e7,
                    "longitude_deg": ref_point["long"] / 1e7,
                    "altitude_m": None if elevation is None else elevation / 10,
                },
                "lane_width_m": None if default_width_cm is None else default_width_cm / 100,
                "lanes": lanes,
            }
        )
    return {
        "message": "MAPEM",
        "protocol_version": value["header"]["protocolVersion"],
        "station_id": value["header"]["stationID"],
        "revision": value["map"]["msgIssueRevision"],
        "minute_of_year": value["map"].get("timeStamp"),
        "intersections": intersections,
    }


# ------------------------------------------------------------------------------------------ DENM


def denm_sequence_number(warning_id: str) -> int:
    """ActionID sequence number (0..65535) of a warning: stable over its NEW/UPDATE/ENDED messages."""
    return int.from_bytes(hashlib.sha256(warning_id.encode()).digest()[:2], "big")


def encode_denm(warning: CollisionWarning, station_id: int, validity_s: int = DEFAULT_DENM_VALIDITY_S) -> bytes:
    """DENM for a collision warning (cause 97 collisionRisk) or red-light violation (98 signalViolation).

    Position: the conflict point. detectionTime: the capture time the warning derives from;
    referenceTime: its publish time. An ENDED warning is sent as a cancellation (termination
    isCancellation) of the same ActionID.
    """
    if not 0 <= validity_s <= 86400:
        raise UperError(f"DENM: validity_s {validity_s} outside 0..86400")
    cause_code, sub_cause_code = DENM_CAUSE_BY_KIND[warning.kind]
    management: dict[str, Any] = {
        "actionID": {"originatingStationID": station_id, "sequenceNumber": denm_sequence_number(warning.warning_id)},
        "detectionTime": its_timestamp_ms(warning.capture_time_s),
        "referenceTime": its_timestamp_ms(warning.publish_time_s),
    }
    if warning.status is WarningStatus.ENDED:
        management["termination"] = "isCancellation"
    management.update(
        {
            "eventPosition": {
                "latitude": _to_e7(warning.conflict_latitude_deg),
                "longitude": _to_e7(warning.conflict_longitude_deg),
                # No position error model travels with a warning: confidence "unavailable".
                "positionConfidenceEllipse": {
                    "semiMajorConfidence": 4095,
                    "semiMinorConfidence": 4095,
                    "semiMajorOrientation": 3601,
                },
                "altitude": {"altitudeValue": 800001, "altitudeConfidence": "unavailable"},
            },
            "relevanceDistance": "lessThan100m",
            "relevanceTrafficDirection": "allTrafficDirections",
            "validityDuration": validity_s,
            "stationType": STATION_TYPE_ROAD_SIDE_UNIT,
        }
    )
    value = {
        "header": _header(MESSAGE_ID_DENM, station_id),
        "denm": {
            "management": management,
            "situation": {
                "informationQuality": DENM_INFORMATION_QUALITY,
                "eventType": {"causeCode": cause_code, "subCauseCode": sub_cause_code},
            },
        },
    }
    return _encode(_DENM, value, "DENM")


def decode_denm(data: bytes) -> dict[str, Any]:
    value = _decode(_DENM, data, "DENM")
    _check_header(value["header"], MESSAGE_ID_DENM, "DENM")
    management = value["denm"]["management"]
    situation = value["denm"].get("situation")
    position = management["eventPosition"]
    cause_code = situation["eventType"]["causeCode"] if situation else None
    cause_names = {number: name for name, number in ITS_DENM_3.ITS_Container.CauseCodeType._cont.items()}
    return {
        "message": "DENM",
        "protocol_version": value["header"]["protocolVersion"],
        "station_id": value["header"]["stationID"],
        "originating_station_id": management["actionID"]["originatingStationID"],
        "sequence_number": management["actionID"]["sequenceNumber"],
        "detection_time_s": unix_from_its_timestamp(management["detectionTime"]),
        "reference_time_s": unix_from_its_timestamp(management["referenceTime"]),
        "termination": management.get("termination"),
        "latitude_deg": position["latitude"] / 1e7,
        "longitude_deg": position["longitude"] / 1e7,
        "relevance_distance": management.get("relevanceDistance"),
        "validity_s": management.get("validityDuration", 600),
        "station_type": management["stationType"],
        "information_quality": situation["informationQuality"] if situation else None,
        "cause_code": cause_code,
        "cause": cause_names.get(cause_code) if cause_code is not None else None,
        "sub_cause_code": situation["eventType"]["subCauseCode"] if situation else None,
    }
