"""Signal heads of a SUMO traffic light, driven link by link from the controller's signal groups.

SUMO knows links (incoming lane -> outgoing lane, or walking area -> crossing), not signal groups.
The link map comes from ``trafficlight.getControlledLinks``: a vehicle link belongs to the signal
group of the site lane it leaves (``Lane.sumo_lane``), a crossing link to the pedestrian group of
the site crosswalk it lies in. Green becomes ``G`` (priority) unless a foe the link must yield to
is green at the same time (per the network's junction logic), then ``g``: a right turn in the
through stage yields to the pedestrians walking beside it.

Works with ``libsumo.trafficlight`` and ``traci.trafficlight`` alike.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from rsu_contracts.config.model import SiteConfig
from rsu_contracts.enums import SignalGroupKind
from rsu_contracts.messages.signal import Indication, SignalGroupState
from signal_control.backends import ConflictingGreensError, conflicting_pairs

RED = "r"

_VEHICLE_CHARS = {
    Indication.YELLOW: "y",
    Indication.RED_YELLOW: "u",
    Indication.RED: "r",
    # A permissive left's flashing yellow arrow: SUMO's minor green, the link gives way to its foes.
    Indication.FLASHING_YELLOW: "g",
    # SUMO has no all-way stop on a signalised link; red is the safe stand-in.
    Indication.FLASHING_RED: "r",
    Indication.DARK: "r",
    Indication.PED_CLEARANCE: "r",
}
_FALLBACK_NOTES = {
    Indication.FLASHING_RED: "flashing_red shown as red (SUMO has no all-way stop on a signalised link)",
    Indication.DARK: "dark shown as red",
}
_OPEN_CHARS = frozenset("Ggo")


class TrafficLightApi(Protocol):
    """The part of ``libsumo.trafficlight`` / ``traci.trafficlight`` the heads use (SUMO's names)."""

    def getControlledLinks(self, tlsID: str) -> Any: ...

    def getRedYellowGreenState(self, tlsID: str) -> str: ...

    def setRedYellowGreenState(self, tlsID: str, state: str) -> None: ...


@dataclass(frozen=True)
class SumoLinkFacts:
    """What the heads need from the network file beyond TraCI."""

    # TLS link index -> TLS link indices it must yield to when both are green (junction response).
    yields: Mapping[int, frozenset[int]]
    # TLS link index -> TLS link indices whose paths cross or merge with it (junction foes).
    foes: Mapping[int, frozenset[int]]
    # Crossing lane id (e.g. ":C_c0_0") -> site crosswalk id.
    crossing_crosswalks: Mapping[str, str]
    # Internal (junction) lane -> TLS link index it belongs to; a turn may pass several lanes.
    link_of_internal_lane: Mapping[str, int]


@dataclass(frozen=True)
class ControlledLink:
    index: int
    from_lane: str
    to_lane: str
    via_lane: str
    signal_group: str
    is_crossing: bool


def read_link_facts(net_file: str | Path, traffic_light_id: str, site: SiteConfig) -> SumoLinkFacts:
    """Read the yield relations of the traffic light's links and map its crossings to crosswalks."""
    root = ET.parse(net_file).getroot()
    # Every internal lane a controlled link passes (a turn may be split at an internal junction).
    link_of_lane: dict[str, int] = {}
    continuation: dict[str, str] = {}
    for connection in root.iter("connection"):
        via = connection.get("via")
        source = f"{connection.get('from')}_{connection.get('fromLane')}"
        if via and source.startswith(":"):
            continuation[source] = via
    for connection in root.iter("connection"):
        if connection.get("tl") != traffic_light_id:
            continue
        lane = connection.get("via") or f"{connection.get('to')}_{connection.get('toLane')}"
        for key in ("linkIndex", "linkIndex2"):
            index_text = connection.get(key)
            if index_text is None or int(index_text) < 0:
                continue
            chain_lane: str | None = lane
            while chain_lane is not None and chain_lane not in link_of_lane:
                link_of_lane[chain_lane] = int(index_text)
                chain_lane = continuation.get(chain_lane)
    yields: dict[int, set[int]] = {}
    foes: dict[int, set[int]] = {}
    for junction in root.iter("junction"):
        internal_lanes = (junction.get("intLanes") or "").split()
        if not any(lane in link_of_lane for lane in internal_lanes):
            continue
        for request in junction.iter("request"):
            request_lane = internal_lanes[int(request.get("index", "0"))]
            if request_lane not in link_of_lane:
                continue
            link = link_of_lane[request_lane]
            for attribute, relation in (("response", yields), ("foes", foes)):
                bits = request.get(attribute, "")
                # Bit j, counted from the right, refers to request j of the junction.
                relation.setdefault(link, set()).update(
                    link_of_lane[internal_lanes[j]]
                    for j in range(len(bits))
                    if bits[len(bits) - 1 - j] == "1" and internal_lanes[j] in link_of_lane
                )
    return SumoLinkFacts(
        yields={index: frozenset(links) for index, links in yields.items()},
        foes={index: frozenset(links) for index, links in foes.items()},
        crossing_crosswalks=_crossing_crosswalks(root, site),
        link_of_internal_lane=link_of_lane,
    )


def _crossing_crosswalks(root: ET.Element, site: SiteConfig) -> dict[str, str]:
    """Crossing lane -> the site crosswalk whose polygon holds the crossing's midpoint."""
    mapping: dict[str, str] = {}
    for edge in root.iter("edge"):
        if edge.get("function") != "crossing":
            continue
        for lane in edge.iter("lane"):
            points = [tuple(float(v) for v in point.split(",")[:2]) for point in lane.get("shape", "").split()]
            if len(points) < 2:
                continue
            midpoint = ((points[0][0] + points[-1][0]) / 2.0, (points[0][1] + points[-1][1]) / 2.0)
            matches = [cw.id for cw in site.crosswalks if _inside(midpoint, cw.polygon_m)]
            if len(matches) == 1:
                mapping[lane.get("id", "")] = matches[0]
    return mapping


def _inside(point: tuple[float, float], polygon: Sequence[tuple[float, float]]) -> bool:
    """Even-odd point-in-polygon test."""
    x, y = point
    inside = False
    for (x0, y0), (x1, y1) in zip(polygon, [*polygon[1:], polygon[0]], strict=True):
        if (y0 > y) != (y1 > y) and x < x0 + (y - y0) * (x1 - x0) / (y1 - y0):
            inside = not inside
    return inside


class SumoSignalHeads:
    """Shows signal-group states on a SUMO traffic light; refuses conflicting greens."""

    def __init__(
        self,
        traffic_light_id: str,
        site: SiteConfig,
        trafficlight_api: TrafficLightApi,
        link_facts: SumoLinkFacts,
    ) -> None:
        self.traffic_light_id = traffic_light_id
        self._site = site
        self._api = trafficlight_api
        self.link_facts = link_facts
        self._group_kind = {group.id: group.kind for group in site.signal_groups}
        self.links = self._map_links()
        self.state = RED * len(self.links)
        self.notes: tuple[str, ...] = ()

    @classmethod
    def from_network(
        cls, traffic_light_id: str, site: SiteConfig, trafficlight_api: TrafficLightApi, net_file: str | Path
    ) -> SumoSignalHeads:
        return cls(traffic_light_id, site, trafficlight_api, read_link_facts(net_file, traffic_light_id, site))

    def _map_links(self) -> list[ControlledLink]:
        group_of_lane = {lane.sumo_lane: lane.signal_group for lane in self._site.lanes if lane.sumo_lane}
        group_of_crosswalk = {crosswalk.id: crosswalk.signal_group for crosswalk in self._site.crosswalks}
        links: list[ControlledLink] = []
        unmapped: list[str] = []
        for index, connections in enumerate(self._api.getControlledLinks(self.traffic_light_id)):
            groups: set[str] = set()
            first: tuple[str, str, str] | None = None
            crossing = False
            for from_lane, to_lane, via_lane in connections:
                first = first or (from_lane, to_lane, via_lane)
                crosswalk = self.link_facts.crossing_crosswalks.get(to_lane) or self.link_facts.crossing_crosswalks.get(
                    from_lane
                )
                if crosswalk is not None:
                    crossing = True
                    group = group_of_crosswalk.get(crosswalk)
                else:
                    group = group_of_lane.get(from_lane)
                if group is None:
                    unmapped.append(f"{index} ({from_lane} -> {to_lane})")
                else:
                    groups.add(group)
            if first is None:
                unmapped.append(f"{index} (no connection)")
                continue
            if len(groups) > 1:
                raise ValueError(f"link {index} of traffic light {self.traffic_light_id} is in groups {sorted(groups)}")
            if groups:
                links.append(ControlledLink(index, *first, signal_group=groups.pop(), is_crossing=crossing))
        if unmapped:
            raise ValueError(
                f"traffic light {self.traffic_light_id}: links without a signal group: {', '.join(unmapped)} "
                "(every controlled lane needs a site lane with sumo_lane, every crossing a crosswalk with a group)"
            )
        return links

    @property
    def link_groups(self) -> dict[int, str]:
        """Link index -> signal group."""
        return {link.index: link.signal_group for link in self.links}

    def state_for(self, groups: Sequence[SignalGroupState]) -> tuple[str, tuple[str, ...]]:
        """The SUMO state string for these group states (no conflict check), with notes."""
        indication = {group.signal_group: group.indication for group in groups}
        notes = [f"unknown signal group '{name}' ignored" for name in indication if name not in self._group_kind]
        chars: list[str] = []
        for link in self.links:
            shown = indication.get(link.signal_group, Indication.RED)
            if self._group_kind[link.signal_group] is SignalGroupKind.PEDESTRIAN:
                # Clearance (flashing don't walk) is red for SUMO: nobody new steps onto the crossing.
                chars.append("G" if shown is Indication.GREEN else RED)
                continue
            if shown is Indication.GREEN:
                chars.append("G")  # refined to 'g' below
            else:
                chars.append(_VEHICLE_CHARS[shown])
                note = _FALLBACK_NOTES.get(shown)
                if note and note not in notes:
                    notes.append(note)
        open_links = {link.index for link, char in zip(self.links, chars, strict=True) if char in _OPEN_CHARS}
        for position, link in enumerate(self.links):
            if chars[position] == "G" and self.link_facts.yields.get(link.index, frozenset()) & open_links:
                chars[position] = "g"
        return "".join(chars), tuple(notes)

    def apply(self, groups: Sequence[SignalGroupState]) -> None:
        """Show the states; on conflicting greens show all red and raise ConflictingGreensError."""
        pairs = conflicting_pairs(groups, self._site)
        if pairs:
            self.all_red()
            raise ConflictingGreensError(pairs)
        self.state, self.notes = self.state_for(groups)
        self._api.setRedYellowGreenState(self.traffic_light_id, self.state)

    def all_red(self) -> None:
        self.state = RED * len(self.links)
        self.notes = ()
        self._api.setRedYellowGreenState(self.traffic_light_id, self.state)

    def reassert(self) -> None:
        """Show the last applied state again if SUMO shows anything else (its own program never runs)."""
        if self._api.getRedYellowGreenState(self.traffic_light_id) != self.state:
            self._api.setRedYellowGreenState(self.traffic_light_id, self.state)
