"""Virtual detectors from tracks: stop-bar presence, queues and waits per lane, and crosswalk counts.

Only confirmed tracks count (a counter fed unconfirmed tracks counts clutter), coasting ones
included so that one missed detection does not drop a stop-bar call. Per-track state (wait timers)
lives only as long as the track does; per-lane state is a few floats.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from rsu.perception.lanes import LANE_USERS, LaneGeometry, LaneMap, LanePosition
from rsu.perception.tracker import NOMINAL_SIZE_M, Track
from rsu_contracts.config.model import SiteConfig
from rsu_contracts.enums import RoadUserType
from rsu_contracts.messages.perception import CrosswalkObservation, LaneObservation

# Road users counted on a crosswalk.
CROSSWALK_USERS = frozenset({RoadUserType.PEDESTRIAN, RoadUserType.BICYCLE})
# Lanes are searched this far past the stop line, so a long vehicle that has just overrun the line
# (half a bus) still occupies the stop-bar zone with its rear.
STOP_LINE_OVERHANG_M = 0.5 * max(length for length, _ in NOMINAL_SIZE_M.values())
# Queued vehicles further apart than this (front of one to the back of the one ahead) end the queue.
QUEUE_MAX_GAP_M = 10.0
# A waiting vehicle stops waiting only above queue speed plus this, so creeping does not reset its timer.
WAIT_RESUME_MARGIN_MPS = 0.5
# A pedestrian standing this close to a crosswalk, but outside it, is waiting to cross.
WAITING_DISTANCE_M = 3.0
WAITING_MAX_SPEED_MPS = 0.5


@dataclass(frozen=True, slots=True)
class ZoneObservations:
    lanes: list[LaneObservation]
    crosswalks: list[CrosswalkObservation]


def locate_tracks(lane_map: LaneMap, tracks: Sequence[Track]) -> list[LanePosition | None]:
    """Lane position of each track (None for pedestrians and for road users outside every lane)."""
    positions: list[LanePosition | None] = [None] * len(tracks)
    users = [i for i, track in enumerate(tracks) if track.road_user in LANE_USERS]
    if not users:
        return positions
    xy = np.array([(tracks[i].x_m, tracks[i].y_m) for i in users], dtype=np.float64)
    heading = np.array(
        # A track that has never moved has no heading yet: its position alone decides.
        [tracks[i].heading_deg if tracks[i].heading_known else math.nan for i in users],
        dtype=np.float64,
    )
    for i, position in zip(users, lane_map.locate_many(xy, heading, STOP_LINE_OVERHANG_M), strict=True):
        positions[i] = position
    return positions


class _CrosswalkArea:
    __slots__ = ("_edges", "_max", "_min", "crosswalk_id")

    def __init__(self, crosswalk_id: str, polygon_m: Sequence[tuple[float, float]]) -> None:
        self.crosswalk_id = crosswalk_id
        points = np.asarray(polygon_m, dtype=np.float64)
        self._min = points.min(axis=0) - WAITING_DISTANCE_M
        self._max = points.max(axis=0) + WAITING_DISTANCE_M
        nxt = np.roll(points, -1, axis=0)
        self._edges = [(float(a[0]), float(a[1]), float(b[0]), float(b[1])) for a, b in zip(points, nxt, strict=True)]

    def near(self, x: float, y: float) -> bool:
        return bool(self._min[0] <= x <= self._max[0] and self._min[1] <= y <= self._max[1])

    def contains(self, x: float, y: float) -> bool:
        inside = False
        for x1, y1, x2, y2 in self._edges:
            if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
                inside = not inside
        return inside

    def distance_m(self, x: float, y: float) -> float:
        """Distance from the polygon's outline."""
        best = math.inf
        for x1, y1, x2, y2 in self._edges:
            dx, dy = x2 - x1, y2 - y1
            length_sq = dx * dx + dy * dy
            t = 0.0 if length_sq == 0 else max(0.0, min(1.0, ((x - x1) * dx + (y - y1) * dy) / length_sq))
            best = min(best, math.hypot(x - x1 - t * dx, y - y1 - t * dy))
        return best


# Camera lookahead (see LaneObservation.arrival_times_s): slower vehicles are joining the queue,
# which the queue figures count; farther than the horizon an arrival is too uncertain to act on.
ARRIVAL_MIN_SPEED_MPS = 2.0
ARRIVAL_HORIZON_S = 15.0


def arrival_time_s(distance_to_stop_m: float, speed_mps: float) -> float | None:
    """Seconds until a vehicle this far before its stop line gets there at its speed; None for one
    joining a queue (too slow) or beyond the lookahead horizon."""
    if speed_mps < ARRIVAL_MIN_SPEED_MPS:
        return None
    eta_s = distance_to_stop_m / speed_mps
    return eta_s if eta_s <= ARRIVAL_HORIZON_S else None


@dataclass(slots=True)
class _LaneTally:
    occupied: bool = False
    queue: list[tuple[float, float]] | None = None  # (front, rear) distances to the stop line
    approaching: int = 0
    approaching_speed_sum: float = 0.0
    max_wait_s: float = 0.0
    arrivals_s: list[float] = field(default_factory=list)


class ZoneMonitor:
    """Per-lane and per-crosswalk observations from the tracks of one camera; update() in time order."""

    def __init__(self, site: SiteConfig, lane_map: LaneMap | None = None) -> None:
        self.lane_map = lane_map if lane_map is not None else LaneMap.from_site(site)
        self.queue_speed_mps = site.tracking.queue_speed_mps
        self._crosswalks = [_CrosswalkArea(c.id, c.polygon_m) for c in site.crosswalks]
        self._start_s: float | None = None
        self._time_s: float | None = None
        self._last_occupied_s: dict[str, float] = {}
        # Track id -> time it started waiting (None while moving); only for live confirmed lane users.
        self._wait_since_s: dict[int, float | None] = {}

    @property
    def tracked_waits(self) -> int:
        """Number of per-track wait timers held (bounded by the live tracks)."""
        return len(self._wait_since_s)

    def update(
        self, tracks: Sequence[Track], time_s: float, positions: Sequence[LanePosition | None] | None = None
    ) -> ZoneObservations:
        """Observe all live tracks at time_s; positions (aligned with tracks) may come from locate_tracks."""
        if self._time_s is not None and time_s < self._time_s:
            raise ValueError(f"zone update went back in time: {time_s} is before {self._time_s}")
        if self._start_s is None:
            self._start_s = time_s
        self._time_s = time_s
        if positions is None:
            positions = locate_tracks(self.lane_map, tracks)
        elif len(positions) != len(tracks):
            raise ValueError(f"positions has {len(positions)} entries for {len(tracks)} tracks")

        waiting = self._update_wait_timers(tracks, time_s)
        tallies = {lane.lane_id: _LaneTally() for lane in self.lane_map.lanes}
        for track, position in zip(tracks, positions, strict=True):
            if position is None or not track.confirmed or track.road_user not in LANE_USERS:
                continue
            length = track.length_m
            rear = position.distance_to_stop_m + 0.5 * length
            if rear < 0.0:
                continue  # wholly past the stop line: in the junction, no longer in the lane
            tally = tallies[position.lane_id]
            lane = self.lane_map.lane(position.lane_id)
            if lane.in_stop_bar_zone(position.distance_to_stop_m, length):
                tally.occupied = True
            wait_since = waiting.get(track.track_id)
            if wait_since is not None:
                if tally.queue is None:
                    tally.queue = []
                tally.queue.append((position.distance_to_stop_m - 0.5 * length, rear))
                tally.max_wait_s = max(tally.max_wait_s, time_s - wait_since)
            elif position.before_stop_line:
                tally.approaching += 1
                tally.approaching_speed_sum += track.speed_mps
                eta_s = arrival_time_s(position.distance_to_stop_m, track.speed_mps)
                if eta_s is not None:
                    tally.arrivals_s.append(eta_s)

        start_s = self._start_s
        lanes = [self._lane_observation(lane, tallies[lane.lane_id], time_s, start_s) for lane in self.lane_map.lanes]
        return ZoneObservations(lanes=lanes, crosswalks=self._crosswalk_observations(tracks))

    def _update_wait_timers(self, tracks: Sequence[Track], time_s: float) -> dict[int, float | None]:
        previous = self._wait_since_s
        current: dict[int, float | None] = {}
        stop_below = self.queue_speed_mps
        resume_above = self.queue_speed_mps + WAIT_RESUME_MARGIN_MPS
        for track in tracks:
            if not track.confirmed or track.road_user not in LANE_USERS:
                continue
            if track.track_id in previous:
                since = previous[track.track_id]
                if since is None and track.speed_mps < stop_below:
                    since = time_s
                elif since is not None and track.speed_mps > resume_above:
                    since = None
            else:
                # First sight of a confirmed track that is already slow: it has waited since it appeared.
                since = time_s - track.age_s if track.speed_mps < stop_below else None
            current[track.track_id] = since
        # Rebuilt from the live tracks each time, so timers of vanished tracks are gone.
        self._wait_since_s = current
        return current

    def _lane_observation(
        self, lane: LaneGeometry, tally: _LaneTally, time_s: float, start_s: float
    ) -> LaneObservation:
        if tally.occupied:
            self._last_occupied_s[lane.lane_id] = time_s
            gap_s = 0.0
        else:
            # Never occupied: free since monitoring started.
            gap_s = time_s - self._last_occupied_s.get(lane.lane_id, start_s)
        queue_length_m, queued = _contiguous_queue(tally.queue or [])
        return LaneObservation(
            lane_id=lane.lane_id,
            stop_bar_occupied=tally.occupied,
            queue_length_m=queue_length_m,
            queued_vehicles=queued,
            approaching_vehicles=tally.approaching,
            approaching_speed_mean_mps=tally.approaching_speed_sum / tally.approaching if tally.approaching else 0.0,
            stop_bar_gap_s=max(gap_s, 0.0),
            max_wait_s=tally.max_wait_s,
            arrival_times_s=sorted(round(eta_s, 2) for eta_s in tally.arrivals_s),
        )

    def _crosswalk_observations(self, tracks: Sequence[Track]) -> list[CrosswalkObservation]:
        inside = dict.fromkeys((c.crosswalk_id for c in self._crosswalks), 0)
        waiting = dict.fromkeys((c.crosswalk_id for c in self._crosswalks), 0)
        for track in tracks:
            if not track.confirmed or track.road_user not in CROSSWALK_USERS:
                continue
            x, y = track.x_m, track.y_m
            for area in self._crosswalks:
                if not area.near(x, y):
                    continue
                if area.contains(x, y):
                    inside[area.crosswalk_id] += 1
                elif (
                    track.road_user is RoadUserType.PEDESTRIAN
                    and track.speed_mps < WAITING_MAX_SPEED_MPS
                    and area.distance_m(x, y) <= WAITING_DISTANCE_M
                ):
                    waiting[area.crosswalk_id] += 1
        return [
            CrosswalkObservation(
                crosswalk_id=area.crosswalk_id,
                pedestrians=inside[area.crosswalk_id],
                waiting_pedestrians=waiting[area.crosswalk_id],
            )
            for area in self._crosswalks
        ]


def _contiguous_queue(queued: list[tuple[float, float]]) -> tuple[float, int]:
    """Length (stop line to the back of the last vehicle) and size of the queue standing at the stop line.

    queued holds (front, rear) distances to the stop line of the slow vehicles in one lane.
    """
    if not queued:
        return 0.0, 0
    queued.sort()
    back = 0.0  # the stop line is where the queue starts
    count = 0
    for front, rear in queued:
        if front - back >= QUEUE_MAX_GAP_M:
            break
        back = max(back, rear)
        count += 1
    return back, count
