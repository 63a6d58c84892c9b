"""Small builders for synthetic tracks and signal states."""

from __future__ import annotations

from rsu_contracts.enums import RoadUserType
from rsu_contracts.messages.perception import TrackedObject
from rsu_contracts.messages.signal import ControllerMode, Indication, SignalGroupState, SignalState

NOW_S = 1_700_000_000.0

# Headings, clockwise from north.
NORTH, EAST, SOUTH, WEST = 0.0, 90.0, 180.0, 270.0


def track(
    track_id: int,
    x_m: float,
    y_m: float,
    speed_mps: float,
    heading_deg: float,
    road_user: RoadUserType = RoadUserType.CAR,
    acceleration_mps2: float = 0.0,
    lane_id: str | None = None,
) -> TrackedObject:
    size = {
        RoadUserType.PEDESTRIAN: (0.5, 0.5),
        RoadUserType.BICYCLE: (1.8, 0.6),
    }.get(road_user, (4.5, 1.8))
    return TrackedObject(
        track_id=track_id,
        road_user=road_user,
        x_m=x_m,
        y_m=y_m,
        speed_mps=speed_mps,
        heading_deg=heading_deg % 360.0,
        acceleration_mps2=acceleration_mps2,
        length_m=size[0],
        width_m=size[1],
        lane_id=lane_id,
        age_s=5.0,
    )


def signal_state(now_s: float, **groups: tuple[Indication, float]) -> SignalState:
    """A controller state; groups maps signal group id -> (indication, seconds until likely change).

    Keyword names cannot start with a digit, so group "2" is passed as g2=...
    """
    states = [
        SignalGroupState(
            signal_group=name.removeprefix("g"),
            indication=indication,
            since_s=now_s - 5.0,
            min_end_time_s=now_s + remaining,
            max_end_time_s=now_s + remaining,
            likely_time_s=now_s + remaining,
        )
        for name, (indication, remaining) in groups.items()
    ]
    return SignalState(
        unit_id="rsu-test",
        seq=0,
        capture_time_s=now_s,
        publish_time_s=now_s,
        mode=ControllerMode.NORMAL,
        strategy="actuated",
        groups=states,
    )
