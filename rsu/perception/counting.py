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

Back-tracking (TrackingConfig.backtrack_s): a road user hidden behind another while it crossed a
line (a car behind a van at the far edge of the picture) is first detected past it, and the rule
above never sees it cross. So once a confirmed track has moved BACKTRACK_MIN_TRAVEL_M from where
it appeared (within BACKTRACK_DECIDE_WITHIN_S of appearing, at BACKTRACK_MIN_SPEED_MPS or more),
its path is traced back from that first position, in the direction and at the mean speed it has
moved since, for backtrack_s; the first line that path crosses is counted, at the time the trace
reaches it. Nothing is counted when the traced crossing would lie before the counter's first
update (the road user was there before counting started), or when it may be a road user already
counted there under another track id (the tracker lost it and started a new track): a line counted
by a confirmed track of the same group (vehicle, two-wheeler, pedestrian), not moving against it,
last detected within BACKTRACK_FRAGMENT_RADIUS_M of the first position during the backtrack_s
before it and never detected again (a road user that stood still while hidden is not traced back:
its mean speed from standstill is too low), or a crossing of that line counted in the same direction by the same group
within BACKTRACK_DUPLICATE_ALONG_M along it and backtrack_s in time (one road user under two tracks
at once). That memory of ended tracks and recent crossings is kept only a few seconds. A road user
that enters the picture past a line without having crossed it (out of a driveway just past it,
moving away) is counted on it: a limit of tracing back a straight path.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from rsu.perception.lanes import LANE_USERS, LaneMap
from rsu.perception.tracker import Track, association_group
from rsu_contracts.config.model import SiteConfig
from rsu_contracts.enums import CountingLineRole, Movement
from rsu_contracts.messages.perception import LineCrossing, TurningMovement

# Half-width of the band around a line in which a track has no side yet (above position jitter).
HYSTERESIS_M = 0.3
# Back-tracking of road users first seen past a line (see the module docstring).
BACKTRACK_MIN_TRAVEL_M = 2.0
BACKTRACK_MIN_SPEED_MPS = 2.0
BACKTRACK_DECIDE_WITHIN_S = 1.5
BACKTRACK_FRAGMENT_RADIUS_M = 5.0
BACKTRACK_DUPLICATE_ALONG_M = 4.0
# Bound on the remembered ended tracks and recent crossings (they are also dropped after a few seconds).
_RECENT_MAX = 1000
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
    along_m: float = math.nan  # where on the line, from its first end point
    side: int = 0  # the side of the line the road user went to (+1 left of the line's direction, -1 right)


@dataclass(frozen=True, slots=True)
class _Sighting:
    """Where a track was last detected (for back-tracking: was a new track this one, lost?)."""

    group: int
    x_m: float
    y_m: float
    vx_mps: float
    vy_mps: float
    time_s: float
    confirmed: bool
    counted: frozenset[int]  # the lines it had counted


@dataclass(frozen=True, slots=True)
class _CountedCrossing:
    line_index: int
    time_s: float
    along_m: float
    side: int
    group: int


class _TrackMemory:
    __slots__ = ("anchors", "backtrack_pending", "birth", "counted", "entry", "held", "last_seen")

    def __init__(self, line_count: int) -> None:
        self.anchors: list[_Anchor | None] = [None] * line_count
        self.counted: set[int] = set()  # line indices, at most one per line
        self.held: list[_HeldCrossing] = []  # crossings while tentative, at most one per line
        self.entry: _HeldCrossing | None = None  # the latest reported entry-line crossing
        self.birth: tuple[float, float, float] | None = None  # first detected x, y, time
        self.backtrack_pending = False
        self.last_seen: _Sighting | None = None


class LineCounter:
    """Counts line crossings of confirmed tracks; update() once per frame with all live tracks, in time order."""

    def __init__(self, site: SiteConfig, lane_map: LaneMap | None = None) -> None:
        self.lane_map = lane_map if lane_map is not None else LaneMap.from_site(site)
        self.backtrack_s = site.tracking.backtrack_s
        self._first_time_s: float | None = None
        self._ended: deque[_Sighting] = deque(maxlen=_RECENT_MAX)
        self._recent: deque[_CountedCrossing] = deque(maxlen=_RECENT_MAX)
        # Crossings found by back-tracking since start (a share of totals).
        self.backtracked = 0
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
        if self._first_time_s is None:
            self._first_time_s = time_s
        self._forget_before(time_s - self.backtrack_s - BACKTRACK_DECIDE_WITHIN_S)
        crossings: list[LineCrossing] = []
        live: set[int] = set()
        for track in tracks:
            live.add(track.track_id)
            memory = self._memory.get(track.track_id)
            if memory is None:
                memory = self._memory[track.track_id] = _TrackMemory(len(self._lines))
                if track.coasting_s <= 0.0:
                    memory.birth = (track.x_m, track.y_m, time_s)
                    memory.backtrack_pending = self.backtrack_s > 0.0
            detected = track.coasting_s <= 0.0
            if detected:
                self._follow(track, memory, time_s, crossings)
            if track.confirmed and memory.held:
                for held in memory.held:
                    self._record(track, memory, held, crossings)
                memory.held.clear()
            if memory.backtrack_pending and track.confirmed and detected:
                self._backtrack(track, memory, time_s, crossings)
            if detected and self.backtrack_s > 0.0:
                memory.last_seen = _Sighting(
                    association_group(track.road_user),
                    track.x_m,
                    track.y_m,
                    track.vx_mps,
                    track.vy_mps,
                    time_s,
                    track.confirmed,
                    frozenset(memory.counted),
                )
        if len(self._memory) > len(live):
            for track_id in [i for i in self._memory if i not in live]:
                ended = self._memory.pop(track_id).last_seen
                if ended is not None:
                    self._ended.append(ended)
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
                along = line.along(hit_x, hit_y)
                if 0.0 <= along <= line.length_m:
                    memory.counted.add(index)
                    self._record(
                        track,
                        memory,
                        _HeldCrossing(
                            line_id=line.line_id,
                            time_s=anchor.time_s + fraction * (time_s - anchor.time_s),
                            speed_mps=track.speed_mps,
                            lane_id=self._lane_at(track, hit_x, hit_y),
                            along_m=along,
                            side=side,
                        ),
                        crossings,
                    )
                    continue
            # Updated in place: this runs for every track and line each frame.
            anchor.side, anchor.signed_distance_m, anchor.x_m, anchor.y_m, anchor.time_s = side, distance, x, y, time_s

    def _backtrack(self, track: Track, memory: _TrackMemory, time_s: float, crossings: list[LineCrossing]) -> None:
        """Count the line a track crossed before it was first detected, if it did (see the module docstring)."""
        assert memory.birth is not None  # set whenever backtrack_pending is
        birth_x, birth_y, birth_s = memory.birth
        elapsed = time_s - birth_s
        if elapsed > BACKTRACK_DECIDE_WITHIN_S:
            memory.backtrack_pending = False
            return
        dx, dy = track.x_m - birth_x, track.y_m - birth_y
        travel = math.hypot(dx, dy)
        if travel < BACKTRACK_MIN_TRAVEL_M or elapsed <= 0.0:
            return
        memory.backtrack_pending = False
        speed = travel / elapsed
        if speed < BACKTRACK_MIN_SPEED_MPS:
            return
        group = association_group(track.road_user)
        # Lines a track lost where this one appeared had counted: this may be that road user again.
        done = memory.counted | self._counted_by_lost_track(
            track.track_id, group, (birth_x, birth_y, birth_s), (dx / elapsed, dy / elapsed)
        )
        reach = speed * self.backtrack_s
        back_x, back_y = birth_x - dx / travel * reach, birth_y - dy / travel * reach
        best: tuple[float, int, float, float, float] | None = None  # fraction, line index, hit x, y, along
        for index, line in enumerate(self._lines):
            if index in done:
                continue
            here, there = line.signed_distance(birth_x, birth_y), line.signed_distance(back_x, back_y)
            if here == 0.0 or here * there >= 0.0:
                continue
            fraction = here / (here - there)
            hit_x, hit_y = birth_x + fraction * (back_x - birth_x), birth_y + fraction * (back_y - birth_y)
            along = line.along(hit_x, hit_y)
            if 0.0 <= along <= line.length_m and (best is None or fraction < best[0]):
                best = (fraction, index, hit_x, hit_y, along)
        if best is None:
            return
        fraction, index, hit_x, hit_y, along = best
        crossing_s = birth_s - fraction * self.backtrack_s
        side = 1 if self._lines[index].signed_distance(birth_x, birth_y) > 0 else -1
        assert self._first_time_s is not None  # set by the first update
        if crossing_s < self._first_time_s or self._already_counted(index, crossing_s, along, side, group):
            return
        memory.counted.add(index)
        self.backtracked += 1
        line = self._lines[index]
        self._record(
            track,
            memory,
            _HeldCrossing(line.line_id, crossing_s, speed, self._lane_at(track, hit_x, hit_y), along, side),
            crossings,
        )

    def _counted_by_lost_track(
        self, track_id: int, group: int, birth: tuple[float, float, float], velocity: tuple[float, float]
    ) -> set[int]:
        """Lines counted by confirmed tracks of the group lost near the birth shortly before it, not seen since.

        A track that was moving against the new track's direction is another road user, whatever its place.
        """
        x_m, y_m, time_s = birth
        candidates = list(self._ended)
        candidates.extend(m.last_seen for i, m in self._memory.items() if i != track_id and m.last_seen is not None)
        lines: set[int] = set()
        for seen in candidates:
            if not seen.confirmed or seen.group != group or not time_s - self.backtrack_s <= seen.time_s < time_s:
                continue
            seen_speed = math.hypot(seen.vx_mps, seen.vy_mps)
            if seen_speed >= BACKTRACK_MIN_SPEED_MPS and seen.vx_mps * velocity[0] + seen.vy_mps * velocity[1] < 0.0:
                continue
            gap_s = time_s - seen.time_s
            predicted = math.hypot(seen.x_m + seen.vx_mps * gap_s - x_m, seen.y_m + seen.vy_mps * gap_s - y_m)
            if min(predicted, math.hypot(seen.x_m - x_m, seen.y_m - y_m)) <= BACKTRACK_FRAGMENT_RADIUS_M:
                lines |= seen.counted
        return lines

    @property
    def remembered_recent(self) -> int:
        """Ended tracks and recent crossings kept for back-tracking (bounded: a few seconds' worth)."""
        return len(self._ended) + len(self._recent)

    def _already_counted(self, line_index: int, time_s: float, along_m: float, side: int, group: int) -> bool:
        window_s = self.backtrack_s
        return any(
            c.line_index == line_index
            and c.side == side
            and c.group == group
            and abs(c.time_s - time_s) <= window_s
            and abs(c.along_m - along_m) <= BACKTRACK_DUPLICATE_ALONG_M
            for c in self._recent
        )

    def _forget_before(self, time_s: float) -> None:
        while self._ended and self._ended[0].time_s < time_s:
            self._ended.popleft()
        while self._recent and self._recent[0].time_s < time_s:
            self._recent.popleft()

    def _record(self, track: Track, memory: _TrackMemory, held: _HeldCrossing, crossings: list[LineCrossing]) -> None:
        if not track.confirmed:
            memory.held.append(held)  # reported if and when the track confirms
            return
        line = self._line_by_id[held.line_id]
        if self.backtrack_s > 0.0:
            index = self._lines.index(line)
            self._recent.append(
                _CountedCrossing(index, held.time_s, held.along_m, held.side, association_group(track.road_user))
            )
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
