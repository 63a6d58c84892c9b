"""Camera lookahead for the controller: when each approaching vehicle will reach its stop line.

A loop detector sees a vehicle only when it is over the loop; a camera sees every tracked vehicle
upstream with its speed. From the perception tracks (confirmed, with their lane) this gives, per
lane, the seconds until each moving vehicle reaches the stop line, for
``SignalController.step(..., arrivals_s=...)``.
"""

from __future__ import annotations

from collections.abc import Iterable

from rsu.messages.perception import TrackedObject
from rsu.perception.lanes import LaneMap
from rsu.perception.zones import ARRIVAL_MIN_SPEED_MPS, arrival_time_s


def arrival_times_s(tracks: Iterable[TrackedObject], lane_map: LaneMap) -> dict[str, tuple[float, ...]]:
    """Per lane id, ascending seconds until each moving tracked vehicle reaches the stop line."""
    arrivals: dict[str, list[float]] = {}
    for track in tracks:
        if track.lane_id is None or track.speed_mps < ARRIVAL_MIN_SPEED_MPS:
            continue  # cheap test before locating it
        position = lane_map.locate(track.x_m, track.y_m, track.heading_deg)
        if position is None or position.lane_id != track.lane_id or not position.before_stop_line:
            continue
        eta_s = arrival_time_s(position.distance_to_stop_m, track.speed_mps)
        if eta_s is not None:
            arrivals.setdefault(track.lane_id, []).append(eta_s)
    return {lane: tuple(sorted(times)) for lane, times in arrivals.items()}
