"""A site file from any SUMO network: one traffic light's junction as the unit sees it.

Pure: reads the ``.net.xml`` with ``xml.etree`` (no SUMO needed) and returns plain data; the CLI
(``rsu site from-sumo``) writes it as YAML after validating it against the site model.

What is read, and how it becomes the site:

* **Approaches**: the incoming edges of the traffic light's vehicle links, named by the compass
  direction they come from (seen from the junction centre); **lanes**: the edge's lanes that
  have controlled links, with the movements of their links (SUMO ``dir``: ``s`` through, ``l``/``L``
  left, ``r``/``R`` right, ``t`` U-turn); a lane may carry several (shared lanes).
* **Signal groups**: links of one approach whose signal columns are identical over the whole
  program (``G`` and ``g`` both count as green) are one group; a crossing is one pedestrian group.
  A shared lane whose movements are released by different groups (a left turn with its own
  protected phase from the lane that also carries through traffic) is given the group of its
  through movement (the site model has one group per lane); the link map (``link_groups``) keeps
  every link's own group, and ``notes`` names such lanes.
* **Conflicts**: two groups conflict when any of their links are foes in the junction's request
  (``<junction><request foes=...>``), except where the program itself shows both green while one
  gives way: a turn beside the pedestrians it yields to is not a conflict; a turn that yields to
  an opposing through becomes a permissive turn of that group (``permissive_with``), declared
  conflicting. ``yielding_pairs`` lists the foe pairs left out this way.
* **NEMA numbering** where the junction fits the 8-phase dual ring (four approaches in two
  opposing pairs, per approach one through group and at most one left/U-turn group): 2/6 the
  through groups of the street whose throughs are green longest, 4/8 the other street, odd
  numbers the lefts (1 opposes 2, 5 opposes 6, 3 opposes 4, 7 opposes 8). Otherwise none, and
  group ids name approach and movement.
* **Stages**: the program's green phases in order (a phase whose greens are a subset of the one
  before, e.g. a pedestrian clearance, is the same stage); **timings**: min / max green from the
  phases' ``minDur`` / ``maxDur`` where given; yellow and all-red written out from the ITE
  formulas (rounded up to 0.1 s) with the group's own approach speed (its fastest lane) and
  clearance width (the longest path of its links through the junction), a permissive turn's
  capped at its partner's; the program's own yellow is reported in ``notes``.
* **Geometry**: metres in a local frame centred on the junction (SUMO's x east, y north); lane
  centre lines are SUMO's lane shapes, which end at the stop line. The geographic reference
  comes from the network's UTM projection when it has one.
"""

from __future__ import annotations

import math
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rsu_tools.site_builders.geodesy import utm_to_geodetic
from signal_control.timing import MIN_ALL_RED_S, MIN_YELLOW_S, ite_all_red_s, ite_yellow_s

Point = tuple[float, float]

_DIRECTION_MOVEMENT = {"s": "through", "l": "left", "L": "left", "r": "right", "R": "right", "t": "uturn"}
_GREEN = frozenset("Gg")
_COMPASS = ("north", "northeast", "east", "southeast", "south", "southwest", "west", "northwest")
_INVALID_ID_CHARS = re.compile(r"[^A-Za-z0-9_.-]")
# Defaults where the network says nothing (SUMO's own lane width).
SUMO_DEFAULT_LANE_WIDTH_M = 3.2
CAMERA_RANGE_MARGIN_M = 10.0


class SumoNetError(ValueError):
    """The network cannot be turned into a site (names the element that is wrong)."""


@dataclass(frozen=True)
class NetLink:
    """One controlled link of the traffic light (a lane-to-lane connection or a crossing)."""

    index: int
    from_edge: str
    from_lane: str
    to_lane: str
    via: str
    direction: str
    is_crossing: bool


@dataclass(frozen=True)
class NetPhase:
    duration_s: float
    state: str
    min_dur_s: float | None
    max_dur_s: float | None


@dataclass(frozen=True)
class TrafficLightFacts:
    """What the network says about one traffic light, before it becomes a site."""

    tls_id: str
    junction_id: str
    centre: Point
    links: tuple[NetLink, ...]
    phases: tuple[NetPhase, ...]
    # Link index -> link indices whose paths cross or merge with it (both directions merged).
    foes: dict[int, frozenset[int]]
    # Lane id -> (shape, width m, speed m/s, length m) for every lane of the network.
    lanes: dict[str, tuple[tuple[Point, ...], float, float, float]]
    # "+proj=utm +zone=32 ..." and the net offset, when the network is geo-referenced.
    utm_zone: int | None
    net_offset: Point


@dataclass
class ImportedSite:
    """The site as plain data (the YAML's content) and what the import had to decide."""

    site: dict[str, Any]
    # Link index -> signal group id, every link of the traffic light.
    link_groups: dict[int, str]
    # Unordered group pairs whose links are foes in the junction's request.
    foe_group_pairs: set[frozenset[str]]
    # Foe pairs the program shows green together with one giving way (not declared conflicts).
    yielding_pairs: set[frozenset[str]]
    nema: bool
    # Conflicts declared beyond the foe matrix (see _permissive_partners).
    added_conflicts: set[frozenset[str]] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)


def read_traffic_light(net_file: str | Path, tls_id: str, program_id: str | None = None) -> TrafficLightFacts:
    """Parse the traffic light ``tls_id`` of ``net_file`` (its first program unless ``program_id``)."""
    root = ET.parse(net_file).getroot()
    logics = [logic for logic in root.iter("tlLogic") if logic.get("id") == tls_id]
    if not logics:
        known = sorted({logic.get("id", "") for logic in root.iter("tlLogic")})
        raise SumoNetError(f"--tls {tls_id!r}: no traffic light of that id in {net_file} (it has: {known})")
    if program_id is not None:
        logics = [logic for logic in logics if logic.get("programID") == program_id]
        if not logics:
            raise SumoNetError(f"traffic light {tls_id!r} has no program {program_id!r}")
    phases = tuple(
        NetPhase(
            duration_s=float(phase.get("duration", "0")),
            state=phase.get("state", ""),
            min_dur_s=_optional_float(phase.get("minDur")),
            max_dur_s=_optional_float(phase.get("maxDur")),
        )
        for phase in logics[0].iter("phase")
    )
    crossing_edges = {edge.get("id", "") for edge in root.iter("edge") if edge.get("function") == "crossing"}
    lanes: dict[str, tuple[tuple[Point, ...], float, float, float]] = {}
    for edge in root.iter("edge"):
        edge_width = _optional_float(edge.get("width"))
        for lane in edge.iter("lane"):
            shape = tuple(_points(lane.get("shape", "")))
            width = _optional_float(lane.get("width")) or edge_width or SUMO_DEFAULT_LANE_WIDTH_M
            lanes[lane.get("id", "")] = (shape, width, float(lane.get("speed", "13.9")), float(lane.get("length", "0")))
    links: dict[int, NetLink] = {}
    # Internal lanes a link passes (a turn split at an internal junction continues via another lane).
    continuation: dict[str, str] = {}
    for connection in root.iter("connection"):
        source = f"{connection.get('from')}_{connection.get('fromLane')}"
        if connection.get("via") and source.startswith(":"):
            continuation[source] = connection.get("via", "")
    link_of_internal_lane: dict[str, int] = {}
    for connection in root.iter("connection"):
        if connection.get("tl") != tls_id:
            continue
        index = int(connection.get("linkIndex", "-1"))
        if index < 0:
            continue
        from_edge = connection.get("from", "")
        to_edge = connection.get("to", "")
        link = NetLink(
            index=index,
            from_edge=from_edge,
            from_lane=f"{from_edge}_{connection.get('fromLane')}",
            to_lane=f"{to_edge}_{connection.get('toLane')}",
            via=connection.get("via", ""),
            direction=connection.get("dir", "s"),
            is_crossing=to_edge in crossing_edges,
        )
        links[index] = link
        chain: str | None = link.via or (link.to_lane if link.is_crossing else None)
        while chain and chain not in link_of_internal_lane:
            link_of_internal_lane[chain] = index
            chain = continuation.get(chain)
    if not links:
        raise SumoNetError(f"traffic light {tls_id!r} controls no links in {net_file}")
    width = len(phases[0].state) if phases else 0
    if not phases or any(len(phase.state) != width for phase in phases) or width <= max(links):
        raise SumoNetError(
            f"traffic light {tls_id!r}: its program's states must all be as long as its link count ({max(links) + 1})"
        )
    foes: dict[int, set[int]] = {index: set() for index in links}
    junction_id = ""
    centre: Point = (0.0, 0.0)
    for junction in root.iter("junction"):
        internal = (junction.get("intLanes") or "").split()
        if not any(lane in link_of_internal_lane for lane in internal):
            continue
        if junction.get("type") != "internal":
            junction_id = junction.get("id", "")
            centre = (float(junction.get("x", "0")), float(junction.get("y", "0")))
        for request in junction.iter("request"):
            own_lane = internal[int(request.get("index", "0"))]
            own = link_of_internal_lane.get(own_lane)
            if own is None:
                continue
            bits = request.get("foes", "")
            for j in range(len(bits)):
                # Bit j, counted from the right, is request j of the junction.
                if bits[len(bits) - 1 - j] == "1" and internal[j] in link_of_internal_lane:
                    other = link_of_internal_lane[internal[j]]
                    if other != own:
                        foes[own].add(other)
                        foes[other].add(own)
    if not junction_id:
        raise SumoNetError(f"traffic light {tls_id!r}: no junction in {net_file} holds its links' internal lanes")
    location = root.find("location")
    utm_zone = None
    net_offset: Point = (0.0, 0.0)
    if location is not None:
        offset = _points(location.get("netOffset", "0,0"))
        net_offset = offset[0] if offset else (0.0, 0.0)
        zone = re.search(r"\+proj=utm\s+\+zone=(\d+)", location.get("projParameter", ""))
        utm_zone = int(zone.group(1)) if zone else None
    return TrafficLightFacts(
        tls_id=tls_id,
        junction_id=junction_id,
        centre=centre,
        links=tuple(links[index] for index in sorted(links)),
        phases=phases,
        foes={index: frozenset(others) for index, others in foes.items()},
        lanes=lanes,
        utm_zone=utm_zone,
        net_offset=net_offset,
    )


def signal_column(phases: Sequence[NetPhase], index: int) -> str:
    """Link ``index``'s indications over the program, green written ``G`` whether major or minor."""
    return "".join("G" if phase.state[index] in _GREEN else phase.state[index] for phase in phases)


def build_site(
    facts: TrafficLightFacts,
    *,
    unit_id: str,
    network: str,
    routes: str | None = None,
    reference: tuple[float, float] | None = None,
    name: str = "",
) -> ImportedSite:
    """The site (plain data for the YAML) of the traffic light in ``facts``.

    network / routes: paths as they should appear in the file (relative to it, by the site path
    rule). reference: WGS-84 latitude and longitude of the junction centre; none: from the
    network's UTM projection, else the site is written without one (see ``_reference``).
    """
    notes: list[str] = []
    origin = facts.centre
    vehicle_links = [link for link in facts.links if not link.is_crossing]
    crossing_links = [link for link in facts.links if link.is_crossing]
    if not vehicle_links:
        raise SumoNetError(f"traffic light {facts.tls_id!r} controls no vehicle links")
    approach_ids = _approach_ids(facts, vehicle_links, origin)
    # Groups: per approach, links with identical signal columns; per crossing, one group.
    group_key_of_link: dict[int, tuple[str, str]] = {}
    for link in vehicle_links:
        group_key_of_link[link.index] = (approach_ids[link.from_edge], signal_column(facts.phases, link.index))
    for link in crossing_links:
        group_key_of_link[link.index] = (f"crossing:{link.to_lane}", signal_column(facts.phases, link.index))
    keys = list(dict.fromkeys(group_key_of_link[link.index] for link in facts.links))
    links_of_key = {key: [link for link in facts.links if group_key_of_link[link.index] == key] for key in keys}
    movements_of_key = {
        key: {_DIRECTION_MOVEMENT.get(link.direction, "through") for link in links if not link.is_crossing}
        for key, links in links_of_key.items()
    }
    nema = _nema_numbers(facts, approach_ids, links_of_key, movements_of_key, origin)
    group_id_of_key = _group_ids(keys, links_of_key, movements_of_key, nema, facts, origin)
    link_groups = {index: group_id_of_key[key] for index, key in group_key_of_link.items()}
    pedestrian = {group_id_of_key[key] for key in keys if key[0].startswith("crossing:")}
    turn_only = {
        group_id_of_key[key] for key in keys if movements_of_key[key] and "through" not in movements_of_key[key]
    }

    foe_pairs = {
        frozenset((link_groups[a], link_groups[b]))
        for a, others in facts.foes.items()
        for b in others
        if link_groups[a] != link_groups[b]
    }
    # Foe pairs the program shows green at once: who gives way (minor green ``g`` against a major
    # ``G`` on a foe link), and to whom.
    yielding: set[frozenset[str]] = set()
    permissive_candidates: dict[str, set[str]] = {}
    for phase in facts.phases:
        for a, others in facts.foes.items():
            for b in others:
                group_a, group_b = link_groups[a], link_groups[b]
                if group_a == group_b or phase.state[a] not in _GREEN or phase.state[b] not in _GREEN:
                    continue
                yielding.add(frozenset((group_a, group_b)))
                if (
                    phase.state[a] == "g"
                    and phase.state[b] == "G"
                    and group_a in turn_only
                    and not {group_a, group_b} & pedestrian
                ):
                    permissive_candidates.setdefault(group_a, set()).add(group_b)
    # A turn-only group giving way to a vehicle group stays in conflict with it (and may turn
    # permissively beside it); a pair shown together otherwise is left to SUMO's right of way: a
    # turn beside its pedestrians, or a shared-lane left inside its own through's green (two-phase
    # plans).
    turning = {frozenset((turn, other)) for turn, others in permissive_candidates.items() for other in others}
    conflicts = {pair for pair in foe_pairs if pair not in yielding or pair in turning}
    mixed = sorted(sorted(pair) for pair in yielding - turning if not pair & pedestrian)
    if mixed:
        notes.append(
            "foe pairs the program shows green together, giving way within a group's own green, are not conflicts: "
            + ", ".join("-".join(pair) for pair in mixed)
        )
    shown_together = {
        frozenset((a, b))
        for phase in facts.phases
        for a in {link_groups[link.index] for link in facts.links if phase.state[link.index] in _GREEN}
        for b in {link_groups[link.index] for link in facts.links if phase.state[link.index] in _GREEN}
        if a != b
    }
    permissive, added_conflicts = _permissive_partners(
        permissive_candidates, conflicts, pedestrian, shown_together, notes
    )
    conflicts |= added_conflicts
    # Vehicle-vehicle foes shown together without a permissive partner stay conflicts; the yielding
    # group then runs only in a stage of its own (dropped from the stage where it yielded).
    stages = _stages(facts, link_groups, conflicts, permissive)
    served = {group for stage in stages for group in stage}
    unserved = set(link_groups.values()) - served
    if unserved:
        raise SumoNetError(
            f"traffic light {facts.tls_id!r}: signal groups {sorted(unserved)} are green in no phase without a "
            "conflicting group; the program cannot be read as stages"
        )

    if len(stages) < 2 or not conflicts:
        raise SumoNetError(
            f"traffic light {facts.tls_id!r}: {len(stages)} stage(s) and {len(conflicts)} conflicting pairs; a site "
            "needs at least two stages and one conflict (nothing to control at this light)"
        )
    approaches = _approaches(facts, vehicle_links, approach_ids, link_groups, origin, notes)
    groups = _signal_groups(facts, keys, links_of_key, group_id_of_key, pedestrian, permissive)
    crosswalks = _crosswalks(facts, crossing_links, link_groups, origin)
    yellow = sorted({phase.duration_s for phase in facts.phases if "y" in phase.state.lower()})
    if yellow:
        notes.append(
            f"the network's program changes with {', '.join(f'{y:g}' for y in yellow)} s yellow; the site's yellow "
            "and all-red are the ITE values (approach speed, clearance width)"
        )
    reach = max(math.dist((0.0, 0.0), point) for approach in approaches for lane in approach["lanes"]
                for point in lane["centerline_m"])  # fmt: skip
    site: dict[str, Any] = {
        "schema_version": 1,
        "unit_id": unit_id,
        "name": name or f"SUMO junction {facts.junction_id} (traffic light {facts.tls_id})",
    }
    geo = reference if reference is not None else _reference(facts)
    if geo is not None:
        site["reference"] = {"latitude_deg": round(geo[0], 7), "longitude_deg": round(geo[1], 7)}
    site["approaches"] = approaches
    if crosswalks:
        site["crosswalks"] = crosswalks
    site["signal_groups"] = groups
    site["conflicts"] = sorted(sorted(pair) for pair in conflicts)
    site["controller"] = {
        "strategy": "actuated",
        "stages": [{"id": f"stage_{i + 1}", "signal_groups": list(stage)} for i, stage in enumerate(stages)],
    }
    site["cameras"] = [
        {
            "id": "sim_camera",
            "source": "simulation",
            "position_m": [0.0, 0.0],
            "simulation": {"range_m": round(min(500.0, max(6.0, reach + CAMERA_RANGE_MARGIN_M)), 1)},
        }
    ]
    simulation: dict[str, Any] = {"network": network, "traffic_light_id": facts.tls_id}
    if routes is not None:
        simulation["routes"] = routes
    site["simulation"] = simulation
    return ImportedSite(
        site=site,
        link_groups=link_groups,
        foe_group_pairs=foe_pairs,
        yielding_pairs=yielding - conflicts,
        added_conflicts=added_conflicts,
        nema=bool(nema),
        notes=notes,
    )


def _optional_float(text: str | None) -> float | None:
    return None if text is None or text == "" else float(text)


def _points(text: str) -> list[Point]:
    points: list[Point] = []
    for pair in text.split():
        values = pair.split(",")
        points.append((float(values[0]), float(values[1])))
    return points


def _local(point: Point, origin: Point) -> Point:
    return (round(point[0] - origin[0], 2), round(point[1] - origin[1], 2))


def _bearing_deg(point: Point, origin: Point) -> float:
    """Compass bearing of ``point`` seen from ``origin``: 0 north, 90 east."""
    return math.degrees(math.atan2(point[0] - origin[0], point[1] - origin[1])) % 360.0


def _angle_between(a: float, b: float) -> float:
    difference = abs(a - b) % 360.0
    return min(difference, 360.0 - difference)


def _approach_point(facts: TrafficLightFacts, edge: str, vehicle_links: Iterable[NetLink]) -> Point:
    """A point on the approach about 30 m before the stop line (its direction names it)."""
    lane = next(link.from_lane for link in vehicle_links if link.from_edge == edge)
    shape = facts.lanes[lane][0]
    return _point_back_along(shape, 30.0)


def _point_back_along(shape: Sequence[Point], distance_m: float) -> Point:
    remaining = distance_m
    for end, start in zip(reversed(shape), list(reversed(shape))[1:], strict=False):
        length = math.dist(start, end)
        if length >= remaining and length > 0:
            t = remaining / length
            return (end[0] + (start[0] - end[0]) * t, end[1] + (start[1] - end[1]) * t)
        remaining -= length
    return shape[0]


def safe_id(text: str) -> str:
    return _INVALID_ID_CHARS.sub("_", text)[:64]


def _approach_ids(facts: TrafficLightFacts, vehicle_links: list[NetLink], origin: Point) -> dict[str, str]:
    edges = list(dict.fromkeys(link.from_edge for link in vehicle_links))
    names = {
        edge: _COMPASS[round(_bearing_deg(_approach_point(facts, edge, vehicle_links), origin) / 45.0) % 8]
        for edge in edges
    }
    ids: dict[str, str] = {}
    for edge in edges:
        repeated = sum(1 for other in edges if names[other] == names[edge]) > 1
        ids[edge] = safe_id(f"{names[edge]}_{edge}") if repeated else names[edge]
    return ids


def _nema_numbers(
    facts: TrafficLightFacts,
    approach_ids: dict[str, str],
    links_of_key: dict[tuple[str, str], list[NetLink]],
    movements_of_key: dict[tuple[str, str], set[str]],
    origin: Point,
) -> dict[tuple[str, str], int]:
    """NEMA phase per group key, or {} when the junction does not fit the 8-phase dual ring."""
    if len(approach_ids) != 4:
        return {}
    vehicle_keys = [key for key in links_of_key if not key[0].startswith("crossing:")]
    through: dict[str, tuple[str, str]] = {}
    left: dict[str, tuple[str, str]] = {}
    for key in vehicle_keys:
        movements = movements_of_key[key]
        if "through" in movements:
            if key[0] in through:
                return {}
            through[key[0]] = key
        elif movements <= {"left", "uturn"} and "left" in movements:
            if key[0] in left:
                return {}
            left[key[0]] = key
        else:
            return {}
    if len(through) != 4:
        return {}
    edge_of = {approach: edge for edge, approach in approach_ids.items()}
    # Nominal bearings (the compass sector the approach comes from): a lane's own bearing is off
    # its road's axis by the lane offset.
    bearing = {
        approach: 45.0
        * (round(_bearing_deg(_approach_point(facts, edge_of[approach], facts.links), origin) / 45.0) % 8)
        for approach in through
    }
    ordered = sorted(through, key=lambda approach: bearing[approach])
    first = ordered[0]
    opposite = max(ordered[1:], key=lambda approach: _angle_between(bearing[approach], bearing[first]))
    if _angle_between(bearing[opposite], bearing[first]) < 135.0:
        return {}
    pair_a = (first, opposite)
    pair_b = tuple(approach for approach in ordered if approach not in pair_a)
    if _angle_between(bearing[pair_b[0]], bearing[pair_b[1]]) < 135.0:
        return {}

    def green_time(pair: Sequence[str]) -> float:
        indices = [links_of_key[through[approach]][0].index for approach in pair]
        return sum(phase.duration_s for phase in facts.phases if any(phase.state[i] in _GREEN for i in indices))

    main, side = (pair_a, pair_b) if green_time(pair_a) >= green_time(pair_b) else (pair_b, pair_a)
    # Phase 2: the main-street approach at the smaller compass bearing; 4: the side-street approach
    # a quarter turn clockwise of it (north 2 -> east 4, as in the sample junction).
    two = min(main, key=lambda approach: bearing[approach])
    six = next(approach for approach in main if approach != two)
    four = min(side, key=lambda approach: _angle_between(bearing[approach], (bearing[two] + 90.0) % 360.0))
    eight = next(approach for approach in side if approach != four)
    numbers: dict[tuple[str, str], int] = {}
    for approach, through_phase, left_phase in ((two, 2, 5), (six, 6, 1), (four, 4, 7), (eight, 8, 3)):
        numbers[through[approach]] = through_phase
        if approach in left:
            numbers[left[approach]] = left_phase
    return numbers


def _group_ids(
    keys: list[tuple[str, str]],
    links_of_key: dict[tuple[str, str], list[NetLink]],
    movements_of_key: dict[tuple[str, str], set[str]],
    nema: dict[tuple[str, str], int],
    facts: TrafficLightFacts,
    origin: Point,
) -> dict[tuple[str, str], str]:
    ids: dict[tuple[str, str], str] = {}
    used: set[str] = set()
    order = ("left", "through", "right", "uturn")
    for key in keys:
        if key in nema:
            candidate = str(nema[key])
        elif key[0].startswith("crossing:"):
            link = links_of_key[key][0]
            shape = facts.lanes[link.to_lane][0]
            middle = ((shape[0][0] + shape[-1][0]) / 2.0, (shape[0][1] + shape[-1][1]) / 2.0)
            candidate = f"p_{_COMPASS[round(_bearing_deg(middle, origin) / 45.0) % 8]}"
        else:
            movements = "_".join(m for m in order if m in movements_of_key[key])
            candidate = safe_id(f"{key[0]}_{movements}")
        unique = candidate
        suffix = 2
        while unique in used:
            unique = f"{candidate}_{suffix}"
            suffix += 1
        used.add(unique)
        ids[key] = unique
    return ids


def _permissive_partners(
    candidates: dict[str, set[str]],
    conflicts: set[frozenset[str]],
    pedestrian: set[str],
    shown_together: set[frozenset[str]],
    notes: list[str],
) -> tuple[dict[str, str], set[frozenset[str]]]:
    """Turn group -> the one through group it gives way to, and the conflicts added for it.

    A permissive turn clears with its partner, so every other vehicle group it crosses must wait
    for the partner's clearance too: that pair is added as a conflict (stricter than the foe
    matrix) where the program never shows both green; otherwise the turn stays protected only.
    """
    partners: dict[str, str] = {}
    added: set[frozenset[str]] = set()
    for turn, throughs in sorted(candidates.items()):
        if len(throughs) != 1:
            notes.append(f"group {turn} gives way to several groups {sorted(throughs)}: protected only")
            continue
        (through,) = throughs
        crossed = {other for pair in conflicts if turn in pair for other in pair - {turn}} - pedestrian - {through}
        needed = {frozenset((other, through)) for other in crossed} - conflicts
        clashing = sorted(sorted(pair - {through})[0] for pair in needed if pair in shown_together)
        if clashing:
            notes.append(
                f"group {turn} gives way to {through} in the program but also crosses {clashing}, which the program "
                f"shows green with {through}: protected only"
            )
            continue
        partners[turn] = through
        added |= needed
    if added:
        notes.append(
            "conflicts added beyond the foe matrix (a permissive turn clears with its partner): "
            + ", ".join("-".join(sorted(pair)) for pair in sorted(added, key=sorted))
        )
    return partners, added


def _stages(
    facts: TrafficLightFacts,
    link_groups: dict[int, str],
    conflicts: set[frozenset[str]],
    permissive: dict[str, str],
) -> list[tuple[str, ...]]:
    order = list(dict.fromkeys(link_groups[link.index] for link in facts.links))
    stages: list[tuple[str, ...]] = []
    for phase in facts.phases:
        if any(phase.state[link.index] in "yY" for link in facts.links):
            continue
        green = {link_groups[link.index] for link in facts.links if phase.state[link.index] in _GREEN}
        # A permissive turn beside its partner runs with it (the controller shows its flashing arrow).
        green -= {turn for turn, through in permissive.items() if through in green}
        # Any other pair still conflicting: the group giving way there leaves the stage.
        for pair in sorted(conflicts, key=sorted):
            if pair <= green:
                a, b = sorted(pair)
                green.discard(b if _gives_way(facts, link_groups, phase, b, a) else a)
        if not green:
            continue
        stage = tuple(group for group in order if group in green)
        if stages and set(stage) <= set(stages[-1]):
            continue
        if stages and set(stages[-1]) < set(stage):
            stages[-1] = stage
            continue
        if stage not in stages:
            stages.append(stage)
    return stages


def _gives_way(facts: TrafficLightFacts, link_groups: dict[int, str], phase: NetPhase, group: str, other: str) -> bool:
    """In this phase a link of ``group`` shows minor green against a major-green foe link of ``other``."""
    return any(
        link_groups[a] == group
        and phase.state[a] == "g"
        and any(link_groups[b] == other and phase.state[b] == "G" for b in facts.foes[a])
        for a in facts.foes
    )


def _approaches(
    facts: TrafficLightFacts,
    vehicle_links: list[NetLink],
    approach_ids: dict[str, str],
    link_groups: dict[int, str],
    origin: Point,
    notes: list[str],
) -> list[dict[str, Any]]:
    approaches: list[dict[str, Any]] = []
    order = ("left", "through", "right", "uturn")
    for edge, approach_id in approach_ids.items():
        lanes: list[dict[str, Any]] = []
        edge_lanes = list(dict.fromkeys(link.from_lane for link in vehicle_links if link.from_edge == edge))
        speed = 0.0
        for lane_id in sorted(edge_lanes, key=lambda lane: int(lane.rsplit("_", 1)[1])):
            links = [link for link in vehicle_links if link.from_lane == lane_id]
            movements = {_DIRECTION_MOVEMENT.get(link.direction, "through") for link in links}
            groups = list(dict.fromkeys(link_groups[link.index] for link in links))
            through_groups = [
                link_groups[link.index] for link in links if _DIRECTION_MOVEMENT.get(link.direction) == "through"
            ]
            group = through_groups[0] if through_groups else groups[0]
            if len(groups) > 1:
                others = sorted(
                    {
                        f"{_DIRECTION_MOVEMENT.get(link.direction, 'through')} by {link_groups[link.index]}"
                        for link in links
                        if link_groups[link.index] != group
                    }
                )
                notes.append(
                    f"lane {lane_id} (shared) is released by {group}; its {', '.join(others)} (one group per site lane)"
                )
            shape, width, lane_speed, _ = facts.lanes[lane_id]
            speed = max(speed, lane_speed)
            lanes.append(
                {
                    "id": safe_id(f"{approach_id}_{lane_id.rsplit('_', 1)[1]}"),
                    "movements": [movement for movement in order if movement in movements],
                    "signal_group": group,
                    "width_m": round(min(6.0, max(1.01, width)), 2),
                    "centerline_m": [list(_local(point, origin)) for point in shape],
                    "sumo_lane": lane_id,
                }
            )
        approaches.append(
            {
                "id": approach_id,
                "name": f"SUMO edge {edge}",
                "speed_limit_mps": round(min(40.0, max(0.1, speed)), 2),
                "lanes": lanes,
            }
        )
    return approaches


def _signal_groups(
    facts: TrafficLightFacts,
    keys: list[tuple[str, str]],
    links_of_key: dict[tuple[str, str], list[NetLink]],
    group_id_of_key: dict[tuple[str, str], str],
    pedestrian: set[str],
    permissive: dict[str, str],
) -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = []
    for key in keys:
        group_id = group_id_of_key[key]
        links = links_of_key[key]
        index = links[0].index
        entry: dict[str, Any] = {"id": group_id}
        if group_id in pedestrian:
            entry["kind"] = "pedestrian"
            entry["crossing_length_m"] = round(min(60.0, max(0.5, facts.lanes[links[0].to_lane][3])), 2)
            groups.append(entry)
            continue
        if group_id.isdigit():
            entry["nema_phase"] = int(group_id)
        # Its green phases: those showing it green where it does not give way to a partner.
        phases = [
            phase
            for phase in facts.phases
            if phase.state[index] == "G" or (phase.state[index] == "g" and group_id not in permissive)
        ] or [phase for phase in facts.phases if phase.state[index] in _GREEN]
        minimums = [phase.min_dur_s for phase in phases if phase.min_dur_s is not None]
        maximums = [phase.max_dur_s for phase in phases if phase.max_dur_s is not None]
        if minimums:
            entry["min_green_s"] = round(min(60.0, max(2.0, min(minimums))), 1)
        if maximums:
            entry["max_green_s"] = round(min(180.0, max(5.0, entry.get("min_green_s", 7.0), max(maximums))), 1)
        widths = [facts.lanes[link.via][3] for link in links if link.via in facts.lanes]
        if widths:
            entry["clearance_width_m"] = round(min(100.0, max(1.0, max(widths))), 1)
        # ITE clearances from the group's own approach (the fastest of its lanes), rounded up to
        # 0.1 s; written out because a group released only from a shared lane has no site lane of
        # its own that would tell the formulas its approach.
        speed = max(facts.lanes[link.from_lane][2] for link in links)
        entry["yellow_s"] = _round_up(max(MIN_YELLOW_S, min(8.0, ite_yellow_s(speed))))
        width = entry.get("clearance_width_m", 20.0)
        entry["all_red_s"] = _round_up(max(MIN_ALL_RED_S, min(6.0, ite_all_red_s(width, speed))))
        if group_id in permissive:
            entry["permissive_with"] = permissive[group_id]
        groups.append(entry)
    # A permissive turn clears with its partner: its yellow and all-red fit within the partner's.
    by_id = {entry["id"]: entry for entry in groups}
    for entry in groups:
        partner = by_id.get(entry.get("permissive_with", ""))
        if partner is not None:
            for interval in ("yellow_s", "all_red_s"):
                entry[interval] = min(entry[interval], partner[interval])
    return groups


def _round_up(value_s: float) -> float:
    return math.ceil(value_s * 10.0 - 1e-9) / 10.0


def _crosswalks(
    facts: TrafficLightFacts, crossing_links: list[NetLink], link_groups: dict[int, str], origin: Point
) -> list[dict[str, Any]]:
    crosswalks: list[dict[str, Any]] = []
    for link in crossing_links:
        shape, width, _, length = facts.lanes[link.to_lane]
        (x0, y0), (x1, y1) = shape[0], shape[-1]
        norm = math.hypot(x1 - x0, y1 - y0) or 1.0
        nx, ny = -(y1 - y0) / norm * width / 2.0, (x1 - x0) / norm * width / 2.0
        polygon = [(x0 + nx, y0 + ny), (x1 + nx, y1 + ny), (x1 - nx, y1 - ny), (x0 - nx, y0 - ny)]
        crosswalks.append(
            {
                "id": safe_id(f"cw_{link_groups[link.index].removeprefix('p_')}_{link.index}"),
                "signal_group": link_groups[link.index],
                "length_m": round(min(60.0, max(0.5, length)), 2),
                "polygon_m": [list(_local(point, origin)) for point in polygon],
            }
        )
    return crosswalks


def _reference(facts: TrafficLightFacts) -> tuple[float, float] | None:
    """Latitude and longitude of the junction centre from the network's UTM projection, if any."""
    if facts.utm_zone is None:
        return None
    easting = facts.centre[0] - facts.net_offset[0]
    northing = facts.centre[1] - facts.net_offset[1]
    return utm_to_geodetic(easting, northing, facts.utm_zone)


def import_site(
    net_file: str | Path,
    tls_id: str,
    out_file: str | Path,
    *,
    unit_id: str | None = None,
    routes: str | Path | None = None,
    reference: tuple[float, float] | None = None,
) -> ImportedSite:
    """Read the traffic light and build its site with paths relative to ``out_file``'s folder.

    routes none: the route files of a ``.sumocfg`` beside the network that names it, if any.
    """
    net_path = Path(net_file).resolve()
    out_dir = Path(out_file).resolve().parent
    facts = read_traffic_light(net_path, tls_id)
    if routes is None:
        routes = _routes_from_sumocfg(net_path)
    return build_site(
        facts,
        unit_id=unit_id or safe_id(f"sumo-{facts.junction_id}")[:64],
        network=os.path.relpath(net_path, out_dir),
        routes=None if routes is None else os.path.relpath(Path(routes).resolve(), out_dir),
        reference=reference,
    )


def _routes_from_sumocfg(net_path: Path) -> Path | None:
    for config in sorted(net_path.parent.glob("*.sumocfg")):
        root = ET.parse(config).getroot()
        net = root.find("./input/net-file")
        route = root.find("./input/route-files")
        if net is not None and route is not None and (config.parent / net.get("value", "")).resolve() == net_path:
            first = route.get("value", "").split(",")[0].strip()
            return (config.parent / first).resolve() if first else None
    return None


def to_yaml(imported: ImportedSite, source: str) -> str:
    """The site file's text: a header saying where it came from and what the import decided."""
    header = [
        f"# Written by `rsu site from-sumo` from {source}; edit freely, or re-import.",
        "# Local frame: metres east (x) and north (y) of the junction centre.",
    ]
    header += [f"# Note: {note}" for note in imported.notes]
    body = yaml.safe_dump(imported.site, sort_keys=False, default_flow_style=None, width=110)
    return "\n".join(header) + "\n" + body
