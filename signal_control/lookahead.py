"""Camera lookahead for the controller: when each approaching vehicle will reach its stop line.

A loop detector sees a vehicle only when it is over the loop; a camera sees every tracked vehicle
upstream with its speed. The zone monitor puts, per lane, the seconds until each moving vehicle
reaches the stop line into its observation (``LaneObservation.arrival_times_s``, one arrival rule:
``rsu.perception.zones.arrival_time_s``); this gathers them for
``SignalController.step(..., arrivals_s=...)``, the same way in the deployed unit and in the bench.
"""

from __future__ import annotations

from collections.abc import Iterable

from rsu_contracts.messages.perception import LaneObservation


def arrivals_by_lane(lanes: Iterable[LaneObservation]) -> dict[str, tuple[float, ...]]:
    """Per lane id with vehicles approaching, the ascending seconds until each reaches the stop line."""
    return {lane.lane_id: tuple(lane.arrival_times_s) for lane in lanes if lane.arrival_times_s}
