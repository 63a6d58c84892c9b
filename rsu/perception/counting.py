"""Counting lines: each confirmed track is counted once per line it crosses.

A track's side of a line is known only once it is more than HYSTERESIS_M away from it; a
crossing is a change of known side whose path (from the last position on the old side to the
current one) passes between the line's end points. A track jittering within the band never
changes side, and each (track, line) pair is counted at most once anyway.

Crossings made while a track is still tentative are held and reported when it confirms, with
the time they happened; if it never confirms they vanish with it, so clutter is never counted.
Only positions backed by a detection are used (a coasting track's prediction is a guess), and all
per-track memory is dropped as soon as the track is no longer live.

Turning movements: a confirmed track that crosses an entry line (role entry) and later an exit line
(role exit) makes one TurningMovement (entry line, exit line, class, exit time), classified from
the geometry: the direction of travel in is from the entry line's midpoint towards the junction
centre (the site's reference point, the origin), the direction out from the centre towards the
exit line's midpoint; the signed turn between them is through within 45 degrees, left from 45 to
135 degrees counter-clockwise, right from 45 to 135 degrees clockwise, a u-turn beyond. Only the
latest entry crossing of a track is remembered, and it goes with the track's memory.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from rsu.config.model import CountingLineRole, Movement, SiteConfig
from rsu.messages.perception import LineCrossing, TurningMovement
from rsu.perception.lanes import LANE_USERS, LaneMap
from rsu.perception.tracker import Track

# Half-width of the band around a line in which a track has no side yet (above position jitter).
HYSTERESIS_M = 0.3
# Largest turn (degrees) still counted as through; beyond 180 minus this it is a u-turn.
THROUGH_MAX_TURN_DEG = 45.0


def classify_turn(entry_midpoint: tuple[float, float], exit_midpoint: tuple[float, float]) -> Movement:
    """The movement from an entry line to an exit line, seen from the junction centre at the origin."""
    in_x, in_y = -entry_midpoint[0], -entry_midpoint[1]  # travelling towards the centre
    out_x, out_y = exit_midpoint  # travelling away from it
    turn_deg = math.degrees(math.atan2(in_x * out_y - in_y * out_x, in_x * out_x + in_y * out_y))
    if abs(turn_deg) <= THROUGH_MAX_TURN_DEG:
        return Movement.THROUGH
    if abs(turn_deg) >= 180.0 - THROUGH_MAX_TURN_DEG:
        return Movement.UTURN
    return Movement.LEFT if turn_deg > 0 else Movement.RIGHT


@dataclass(frozen=True, slots=True)
class _Line:
    line_id: str
    ax: float
    ay: float
    ux: float  # unit vector from the first to the second end point
    uy: float
    length_m: float
    role: CountingLineRole
    midpoint: tuple[float, float]

    def signed_distance(self, x: float, y: float) -> float:
        """Positive to the left of the line's direction (first to second end point)."""
        return self.ux * (y - self.ay) - self.uy * (x - self.ax)

    def along(self, x: float, y: float) -> float:
        return self.ux * (x - self.ax) + self.uy * (y - self.ay)


@dataclass(slots=True)
class _Anchor:
    """The last detected position of a track while it was clearly on one side of a line."""

    side: int
    signed_distance_m: float
    x_m: float
    y_m: float
    time_s: float


@dataclass(frozen=True, slots=True)
class _HeldCrossing:
    line_id: str
    time_s: float
    speed_mps: float
    lane_id: str | None


class _TrackMemory:
    __slots__ = ("anchors", "counted", "entry", "held")

    def __init__(self, line_count: int) -> None:
        self.anchors: list[_Anchor | None] = [None] * line_count
        self.counted: set[int] = set()  # line indices, at most one per line
        self.held: list[_HeldCrossing] = []  # crossings while tentative, at most one per line
        self.entry: _HeldCrossing | None = None  # the latest reported entry-line crossing


class LineCounter:
    """Counts line crossings of confirmed tracks; update() once per frame with all live tracks, in time order."""

    def __init__(self, site: SiteConfig, lane_map: LaneMap | None = None) -> None:
        self.lane_map = lane_map if lane_map is not None else LaneMap.from_site(site)
        self._lines: list[_Line] = []
        for line in site.counting_lines:
            (ax, ay), (bx, by) = line.line_m
            length = math.hypot(bx - ax, by - ay)
            if length <= 0:
                raise ValueError(f"counting line {line.id} has zero length")
            midpoint = ((ax + bx) / 2, (ay + by) / 2)
            unit_x, unit_y = (bx - ax) / length, (by - ay) / length
            self._lines.append(_Line(line.id, ax, ay, unit_x, unit_y, length, line.role, midpoint))
        self._line_by_id = {line.line_id: line for line in self._lines}
        self._memory: dict[int, _TrackMemory] = {}
        self._movements: list[TurningMovement] = []
        self._time_s: float | None = None
        # Crossings reported per line since start (one counter per line: bounded).
        self.totals: dict[str, int] = {line.line_id: 0 for line in self._lines}

    @property
    def remembered_tracks(self) -> int:
        """Number of tracks with per-track memory (bounded by the live tracks)."""
        return len(self._memory)

    def take_movements(self) -> list[TurningMovement]:
        """Turning movements completed since the last call (by the updates in between)."""
        movements, self._movements = self._movements, []
        return movements

    def update(self, tracks: Sequence[Track], time_s: float) -> list[LineCrossing]:
        """Crossings reported at this update; pass every live track, tentative ones included."""
        if self._time_s is not None and time_s < self._time_s:
            raise ValueError(f"line counter update went back in time: {time_s} is before {self._time_s}")
        self._time_s = time_s
        crossings: list[LineCrossing] = []
        live: set[int] = set()
        for track in tracks:
            live.add(track.track_id)
            memory = self._memory.get(track.track_id)
            if memory is None:
                memory = self._memory[track.track_id] = _TrackMemory(len(self._lines))
            if track.coasting_s <= 0.0:
                self._follow(track, memory, time_s, crossings)
            if track.confirmed and memory.held:
                for held in memory.held:
                    self._record(track, memory, held, crossings)
                memory.held.clear()
        if len(self._memory) > len(live):
            for track_id in [i for i in self._memory if i not in live]:
                del self._memory[track_id]
        for crossing in crossings:
            self.totals[crossing.line_id] += 1
        return crossings

    def _follow(self, track: Track, memory: _TrackMemory, time_s: float, crossings: list[LineCrossing]) -> None:
        x, y = track.x_m, track.y_m
        anchors = memory.anchors
        for index, line in enumerate(self._lines):
            distance = line.signed_distance(x, y)
            if -HYSTERESIS_M <= distance <= HYSTERESIS_M or index in memory.counted:
                continue  # on the line (keep the last clear side), or done with this line
            side = 1 if distance > 0 else -1
            anchor = anchors[index]
            if anchor is None:
                anchors[index] = _Anchor(side, distance, x, y, time_s)
                continue
            if anchor.side != side:
                # Where the path from the anchor to here meets the line, and whether that lies on it.
                fraction = anchor.signed_distance_m / (anchor.signed_distance_m - distance)
                hit_x = anchor.x_m + fraction * (x - anchor.x_m)
                hit_y = anchor.y_m + fraction * (y - anchor.y_m)
                if 0.0 <= line.along(hit_x, hit_y) <= line.length_m:
                    memory.counted.add(index)
                    self._record(
                        track,
                        memory,
                        _HeldCrossing(
                            line_id=line.line_id,
                            time_s=anchor.time_s + fraction * (time_s - anchor.time_s),
                            speed_mps=track.speed_mps,
                            lane_id=self._lane_at(track, hit_x, hit_y),
                        ),
                        crossings,
                    )
                    continue
            # Updated in place: this runs for every track and line each frame.
            anchor.side, anchor.signed_distance_m, anchor.x_m, anchor.y_m, anchor.time_s = side, distance, x, y, time_s

    def _record(self, track: Track, memory: _TrackMemory, held: _HeldCrossing, crossings: list[LineCrossing]) -> None:
        if not track.confirmed:
            memory.held.append(held)  # reported if and when the track confirms
            return
        line = self._line_by_id[held.line_id]
        if line.role is CountingLineRole.ENTRY:
            memory.entry = held
        elif memory.entry is not None and memory.entry.time_s <= held.time_s:
            entry_line = self._line_by_id[memory.entry.line_id]
            self._movements.append(
                TurningMovement(
                    entry_line_id=entry_line.line_id,
                    exit_line_id=line.line_id,
                    movement=classify_turn(entry_line.midpoint, line.midpoint),
                    road_user=track.road_user,
                    time_s=held.time_s,
                )
            )
            memory.entry = None
        crossings.append(
            LineCrossing(
                line_id=held.line_id,
                road_user=track.road_user,
                speed_mps=held.speed_mps,
                time_s=held.time_s,
                lane_id=held.lane_id,
            )
        )

    def _lane_at(self, track: Track, x_m: float, y_m: float) -> str | None:
        if track.road_user not in LANE_USERS:
            return None
        return self.lane_map.lane_of(x_m, y_m, track.heading_deg if track.heading_known else None)
