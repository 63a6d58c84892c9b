"""The predictions the pair tests share: each road user's direction of travel, predicted path,
distance along it and speed over the horizon, computed once per snapshot for all of them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from rsu_contracts.config.model import SiteConfig, WarningConfig
from rsu_contracts.enums import RoadUserType
from rsu_contracts.messages.perception import TrackedObject
from v2x.conflicts.types import NO_HINT, Conflict, MotionHint, SignalContext
from v2x.junction import JunctionGeometry
from v2x.prediction import (
    FloatArray,
    KinematicState,
    MotionModel,
    predict_paths,
    prediction_times,
    travelled_distance,
)

PREDICTION_STEP_S = 0.1


@dataclass
class Scene:
    """Predictions for the road users taking part in pair tests (arrays indexed like `tracks`)."""

    tracks: Sequence[TrackedObject]
    contexts: Sequence[SignalContext]
    geometry: JunctionGeometry
    # Direction of travel used for prediction: lane direction, turn intent, else the tracked heading.
    headings: FloatArray
    # Lane each road user is in or, crossing the junction, came from (None: unknown).
    origin_lanes: Sequence[str | None]
    times: FloatArray
    paths: FloatArray
    # Distance along the path and speed, (road users, times).
    distance: FloatArray
    speed_profile: FloatArray
    speeds: FloatArray
    accelerations: FloatArray
    # Road users with a turn rate (their straight heading is not where they go).
    turning: npt.NDArray[np.bool_]
    config: WarningConfig
    # Slower than this a vehicle creeps (a queue, a turner giving way).
    queue_speed_mps: float
    # Filled by the pair tests.
    conflicts: list[Conflict] = field(default_factory=list)


def build_scene(
    tracks: Sequence[TrackedObject],
    contexts: Sequence[SignalContext],
    geometry: JunctionGeometry,
    site: SiteConfig,
    config: WarningConfig,
    model: MotionModel,
    hints: Mapping[int, MotionHint],
) -> Scene:
    """Predict every road user in `tracks` (those in the road) over the warning horizon."""
    times = prediction_times(config.horizon_s, PREDICTION_STEP_S)
    # Pedestrian accelerations are tracker noise, not intent.
    accelerations = np.array(
        [0.0 if t.road_user is RoadUserType.PEDESTRIAN else t.acceleration_mps2 for t in tracks], dtype=float
    )
    if model is MotionModel.CONSTANT_VELOCITY:
        accelerations = np.zeros(len(tracks))
    states = []
    turning = np.zeros(len(tracks), dtype=bool)
    headings = np.zeros(len(tracks))
    origin_lanes: list[str | None] = []
    for index, (track, context) in enumerate(zip(tracks, contexts, strict=True)):
        hint = hints.get(track.track_id, NO_HINT)
        origin_lanes.append(track.lane_id if track.lane_id is not None else hint.origin_lane_id)
        turning[index] = hint.yaw_rate_dps != 0.0
        heading = context.path_heading_deg if context.path_heading_deg is not None else hint.heading_deg
        headings[index] = track.heading_deg if heading is None else heading
        states.append(
            KinematicState(
                track.x_m,
                track.y_m,
                track.speed_mps,
                float(headings[index]),
                float(accelerations[index]),
                hint.yaw_rate_dps,
                context.stop_within_m,
                hint.max_turn_deg,
            )
        )
    paths = predict_paths(states, times, model)
    speeds = np.array([t.speed_mps for t in tracks])
    limits = np.array([c.stop_within_m for c in contexts])
    distance, speed_profile = travelled_distance(speeds, accelerations, times, limits)
    return Scene(
        tracks,
        contexts,
        geometry,
        headings,
        origin_lanes,
        times,
        paths,
        distance,
        speed_profile,
        speeds,
        accelerations,
        turning & (model is MotionModel.CONSTANT_TURN_RATE),
        config,
        site.tracking.queue_speed_mps,
    )
