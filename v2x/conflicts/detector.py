"""Conflict detection over successive snapshots: per-track memory of turn rates and red-light
entries feeds find_conflicts, and the conflicts only history reveals are added.

- in the junction, a vehicle follows the turn its lane allows (a left-only lane turns left, a
  through-and-right lane turns right once the vehicle has swung to the right, otherwise it goes
  straight on along the lane); without a known lane its turn rate comes from its tracked headings;
- red-light violation: one that crossed its stop line on red is a violator (red_light_violation,
  critical) while it is in the junction. On a steady red nothing is predicted: tracked speed lags
  a late-braking vehicle by a few tenths of a second, which makes ordinary stops look like
  violations (measured on the simulated junction: about 300 stopping vehicles an hour against 4
  real runners); crossing the line at speed is certain. TTC is 0;
- stopped in junction: a vehicle standing (below queue_speed_mps) inside the junction box, the
  area between the stop lines, for stopped_in_junction_s or longer.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from rsu_contracts.config.model import SiteConfig, WarningConfig
from rsu_contracts.enums import Movement, RoadUserType
from rsu_contracts.messages.perception import TrackedObject
from rsu_contracts.messages.signal import Indication, SignalGroupState, SignalState
from rsu_contracts.messages.warnings import Severity, WarningKind
from v2x.conflicts.limits import SearchCounters, nearest_to_junction
from v2x.conflicts.shared import RED_INDICATIONS, is_vehicle
from v2x.conflicts.snapshot import find_conflicts
from v2x.conflicts.types import Conflict, HeadingSample, MotionHint, PredictedTurn
from v2x.junction import JunctionGeometry, StopLine
from v2x.prediction import MotionModel

# Turn intent: a vehicle in the junction from a lane that allows a turn is turning once it has
# swung this far from the lane direction; it follows an arc of a typical urban corner radius
# until it has turned a right angle.
TURN_INTENT_DEG = 10.0
LEFT_TURN_RADIUS_M = 14.0
RIGHT_TURN_RADIUS_M = 8.0
TURNING_LEFT = frozenset({Movement.LEFT, Movement.UTURN})
# A vehicle from a through lane swung less than this (and not turning) goes straight on along it.
THROUGH_MAX_SWING_DEG = 30.0
# Yaw-rate estimation from tracked headings, for road users without a known lane: heading noise
# of a tracked vehicle going straight is a few degrees per second, a turning vehicle turns at
# 15-40°/s.
YAW_WINDOW_S = 1.0
YAW_MIN_SPEED_MPS = 2.0
YAW_DEADBAND_DPS = 8.0
YAW_MAX_DPS = 45.0
# A turn at a junction ends after about a right angle (left, right); a U-turn is not predicted.
MAX_TURN_DEG = 100.0

_STRAIGHT_ON = PredictedTurn(0.0, math.inf, None)


@dataclass
class _TrackMemory:
    headings: deque[HeadingSample] = field(default_factory=lambda: deque(maxlen=32))
    turn_start_heading_deg: float | None = None
    previous_lane_id: str | None = None
    origin_lane_id: str | None = None
    previous_lane_red: bool = False
    # The stop line it crossed on red, while it is in the junction.
    ran_red_at: StopLine | None = None
    stopped_in_box_since_s: float | None = None


class ConflictDetector:
    """find_conflicts over successive snapshots, plus what needs history.

    Per live track it keeps a short heading history (for the turn rate of the turning-vehicle
    prediction), whether it crossed its stop line on red, and since when it stands in the
    junction box. Memory is dropped for tracks that are gone, so state is bounded by the tracker,
    and by config.max_objects: an oversized list is cut to the road users nearest the junction
    before anything is remembered (search_counters counts the cuts).
    """

    def __init__(
        self,
        site: SiteConfig,
        config: WarningConfig,
        model: MotionModel = MotionModel.CONSTANT_TURN_RATE,
    ) -> None:
        self.site = site
        self.config = config
        self.model = model
        self.geometry = JunctionGeometry(site)
        self._memory: dict[int, _TrackMemory] = {}
        self._last_now_s: float | None = None
        self.search_counters = SearchCounters()
        # Lanes of protected/permissive lefts and their group: such a left waits in the box for a
        # gap under its flashing yellow arrow (a "sneaker"), which is not a blocked junction.
        permissive = {group.id for group in site.signal_groups if group.permissive_with is not None}
        self._permissive_group_of_lane = {
            lane.id: lane.signal_group for lane in site.lanes if lane.signal_group in permissive
        }

    @property
    def remembered_tracks(self) -> int:
        return len(self._memory)

    def update(self, tracks: Sequence[TrackedObject], signal: SignalState | None, now_s: float) -> list[Conflict]:
        if self._last_now_s is not None and now_s < self._last_now_s:
            self._memory.clear()  # the clock went back (replay restart): history is meaningless
        self._last_now_s = now_s
        considered = nearest_to_junction(tracks, self.geometry.centre, self.config.max_objects)
        if len(considered) < len(tracks):
            self.search_counters.count_objects(len(tracks) - len(considered))
            tracks = [tracks[i] for i in considered.tolist()]
        groups = {group.signal_group: group for group in signal.groups} if signal is not None else {}
        live = {track.track_id for track in tracks}
        for track_id in [track_id for track_id in self._memory if track_id not in live]:
            del self._memory[track_id]
        in_box = self.geometry.in_box(np.array([[t.x_m, t.y_m] for t in tracks]).reshape(-1, 2))
        hints: dict[int, MotionHint] = {}
        history: list[Conflict] = []
        for track, inside in zip(tracks, in_box.tolist(), strict=True):
            memory = self._memory.setdefault(track.track_id, _TrackMemory())
            hints[track.track_id] = self._hint(track, memory, groups, inside, now_s)
            if memory.ran_red_at is not None:
                history.append(_ran_red(track, memory.ran_red_at))
            conflict = self._stopped_in_junction(track, memory, groups, inside, now_s)
            if conflict is not None:
                history.append(conflict)
        conflicts = find_conflicts(
            tracks,
            signal,
            self.site,
            self.config,
            now_s,
            self.model,
            geometry=self.geometry,
            hints=hints,
            counters=self.search_counters,
        )
        return sorted([*conflicts, *history], key=lambda c: (c.kind.value, c.key[1]))

    def _hint(
        self,
        track: TrackedObject,
        memory: _TrackMemory,
        groups: Mapping[str, SignalGroupState],
        inside_box: bool,
        now_s: float,
    ) -> MotionHint:
        # Red-light entry: the lane id disappears when the track passes its stop line.
        previous_lane = memory.previous_lane_id
        if track.lane_id is None and previous_lane is not None and memory.previous_lane_red and is_vehicle(track):
            if track.speed_mps >= self.site.tracking.queue_speed_mps:  # not a stopped car's jitter at the line
                memory.ran_red_at = self.geometry.stop_lines.get(previous_lane)
        elif track.lane_id is not None or not inside_box:
            memory.ran_red_at = None
        memory.previous_lane_red = False
        if track.lane_id is not None:
            line = self.geometry.stop_lines.get(track.lane_id)
            group = groups.get(line.signal_group) if line is not None else None
            memory.previous_lane_red = group is not None and group.indication in RED_INDICATIONS
            memory.origin_lane_id = track.lane_id
        elif not inside_box:
            memory.origin_lane_id = None  # through the junction and out on a leg
        memory.previous_lane_id = track.lane_id
        estimated = self._estimated_turn(track, memory, now_s)
        origin = memory.origin_lane_id if track.lane_id is None else None
        # The lane says where it is going; an ambiguous swing is a lane change or tracker noise.
        turn = (self._turn_intent(track, origin) or _STRAIGHT_ON) if origin is not None else estimated
        return MotionHint(
            turn.yaw_rate_dps,
            turn.remaining_turn_deg,
            memory.ran_red_at is not None,
            turn.heading_deg,
            memory.origin_lane_id,
        )

    def _turn_intent(self, track: TrackedObject, origin_lane_id: str) -> PredictedTurn | None:
        """The turn of a vehicle in the junction from the lane it came from.

        A left-only lane turns left; a through-and-right lane turns right once the vehicle has swung
        TURN_INTENT_DEG to the right, else it goes straight along the lane. None: no idea (fall back
        to the tracked turn rate).
        """
        line = self.geometry.stop_lines.get(origin_lane_id)
        movements = self.geometry.movements_of_lane.get(origin_lane_id)
        if line is None or movements is None or not (is_vehicle(track) or track.road_user is RoadUserType.BICYCLE):
            return None
        swung = (track.heading_deg - line.heading_deg + 180.0) % 360.0 - 180.0  # > 0: to the right
        turns_left = Movement.LEFT in movements and (movements <= TURNING_LEFT or swung < -TURN_INTENT_DEG)
        turns_right = Movement.RIGHT in movements and (movements == {Movement.RIGHT} or swung > TURN_INTENT_DEG)
        if turns_left or turns_right:
            sign, radius = (-1.0, LEFT_TURN_RADIUS_M) if turns_left else (1.0, RIGHT_TURN_RADIUS_M)
            turned = float(np.clip(sign * swung, 0.0, 90.0))
            remaining = 90.0 - turned
            heading = (line.heading_deg + sign * turned) % 360.0
            if remaining < TURN_INTENT_DEG:
                return PredictedTurn(0.0, math.inf, (line.heading_deg + sign * 90.0) % 360.0)  # on its way out
            return PredictedTurn(sign * math.degrees(track.speed_mps / radius), remaining, heading)
        if Movement.THROUGH in movements and abs(swung) <= THROUGH_MAX_SWING_DEG:
            return PredictedTurn(0.0, math.inf, line.heading_deg)
        return None

    def _estimated_turn(self, track: TrackedObject, memory: _TrackMemory, now_s: float) -> PredictedTurn:
        """The turn rate and the heading change left in this turn, from the tracked heading history
        (no heading of its own: it predicts from the tracked one)."""
        turns_like_a_vehicle = is_vehicle(track) or track.road_user is RoadUserType.BICYCLE
        if track.speed_mps < YAW_MIN_SPEED_MPS or not turns_like_a_vehicle:
            memory.headings.clear()
            memory.turn_start_heading_deg = None
            return _STRAIGHT_ON
        memory.headings.append(HeadingSample(now_s, track.heading_deg))
        while len(memory.headings) > 1 and now_s - memory.headings[1].time_s >= YAW_WINDOW_S:
            memory.headings.popleft()
        then_s, then_deg = memory.headings[0]
        if now_s - then_s < YAW_WINDOW_S - 1e-6:
            return _STRAIGHT_ON
        change = (track.heading_deg - then_deg + 180.0) % 360.0 - 180.0
        yaw_rate = change / (now_s - then_s)
        if abs(yaw_rate) < YAW_DEADBAND_DPS:
            memory.turn_start_heading_deg = None
            return _STRAIGHT_ON
        if memory.turn_start_heading_deg is None:
            memory.turn_start_heading_deg = then_deg
        turned = abs((track.heading_deg - memory.turn_start_heading_deg + 180.0) % 360.0 - 180.0)
        return PredictedTurn(float(np.clip(yaw_rate, -YAW_MAX_DPS, YAW_MAX_DPS)), max(0.0, MAX_TURN_DEG - turned))

    def _stopped_in_junction(
        self,
        track: TrackedObject,
        memory: _TrackMemory,
        groups: Mapping[str, SignalGroupState],
        inside: bool,
        now_s: float,
    ) -> Conflict | None:
        standing = is_vehicle(track) and track.lane_id is None and inside
        if (
            not standing
            or track.speed_mps >= self.site.tracking.queue_speed_mps
            or self._waiting_to_turn(memory, groups)
        ):
            memory.stopped_in_box_since_s = None
            return None
        if memory.stopped_in_box_since_s is None:
            memory.stopped_in_box_since_s = now_s
        if now_s - memory.stopped_in_box_since_s < self.config.stopped_in_junction_s:
            return None
        return Conflict(WarningKind.STOPPED_IN_JUNCTION, Severity.WARNING, None, track.x_m, track.y_m, (track,))

    def _waiting_to_turn(self, memory: _TrackMemory, groups: Mapping[str, SignalGroupState]) -> bool:
        """A permissive left in the box while its arrow (or the yellow after it) still shows."""
        group_id = self._permissive_group_of_lane.get(memory.origin_lane_id or "")
        group = groups.get(group_id) if group_id is not None else None
        return group is not None and group.indication in (Indication.FLASHING_YELLOW, Indication.YELLOW)


def _ran_red(track: TrackedObject, line: StopLine) -> Conflict:
    """A vehicle in the junction that crossed its stop line on red: a violation happening now."""
    return Conflict(
        WarningKind.RED_LIGHT_VIOLATION,
        Severity.CRITICAL,
        0.0,
        line.x_m,
        line.y_m,
        (track,),
        signal_violation=True,
    )
