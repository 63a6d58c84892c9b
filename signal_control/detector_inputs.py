"""Detector data intake: whether the newest observations are fresh, and the site's part of them.

`DetectorInputs` keeps the last fresh lane and crosswalk observations and camera lookahead of the
site's own lanes and crosswalks (which bounds this state), says why data is not fresh (missing,
stale), and notes stop-bar detector on/off changes as ATSPM events.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from rsu_contracts.messages.perception import CrosswalkObservation, LaneObservation
from rsu_contracts.messages.signal import SignalEvent
from signal_control.events import AtspmEvent, signal_event
from signal_control.phasing import PhasePlan

# Lookahead kept per lane: the nearest vehicles are all a green extension can wait for.
MAX_ARRIVALS_PER_LANE = 16


class DetectorInputs:
    """The newest fresh detector data of the site, and when it was captured."""

    def __init__(self) -> None:
        self.lanes: dict[str, LaneObservation] = {}
        self.crosswalks: dict[str, CrosswalkObservation] = {}
        self.arrivals_s: dict[str, tuple[float, ...]] = {}
        self.last_valid_observation_s: float | None = None
        self._stop_bar_occupied: dict[str, bool] = {}

    def take(
        self,
        plan: PhasePlan,
        now_s: float,
        lanes: Sequence[LaneObservation] | None,
        crosswalks: Sequence[CrosswalkObservation],
        observed_at_s: float | None,
        stale_after_s: float,
        events: list[SignalEvent],
    ) -> tuple[bool, str]:
        """Store fresh observations; returns (fresh, why not)."""
        if lanes is None:
            if self.last_valid_observation_s is None:
                return False, "no detector data received yet"
            age_s = now_s - self.last_valid_observation_s
            return False, f"detector data unavailable (last valid observation {age_s:.1f} s ago)"
        # A capture time in the future is clock skew; it cannot make data fresher than now.
        captured_s = now_s if observed_at_s is None else min(observed_at_s, now_s)
        age_s = now_s - captured_s
        if age_s > stale_after_s:
            return False, f"detector data is {age_s:.1f} s old (limit {stale_after_s:.1f} s)"
        if self.last_valid_observation_s is not None and captured_s < self.last_valid_observation_s:
            # Arrived out of order: what the controller already holds is newer, keep it.
            return True, ""
        self.last_valid_observation_s = captured_s
        # Only the site's own lanes and crosswalks are kept, which bounds this state.
        self.lanes = {obs.lane_id: obs for obs in lanes if obs.lane_id in plan.group_of_lane}
        self.crosswalks = {obs.crosswalk_id: obs for obs in crosswalks if obs.crosswalk_id in plan.group_of_crosswalk}
        for lane_id, observation in self.lanes.items():
            was_occupied = self._stop_bar_occupied.get(lane_id, False)
            if observation.stop_bar_occupied != was_occupied:
                code = AtspmEvent.DETECTOR_ON if observation.stop_bar_occupied else AtspmEvent.DETECTOR_OFF
                events.append(signal_event(now_s, code, lane_id))
                self._stop_bar_occupied[lane_id] = observation.stop_bar_occupied
        return True, ""

    def take_arrivals(self, plan: PhasePlan, arrivals_s: Mapping[str, Sequence[float]] | None) -> None:
        """Replace the lookahead with the one from the same capture as the fresh lanes."""
        self.arrivals_s = arrivals_of_site_lanes(arrivals_s, plan.group_of_lane)


def arrivals_of_site_lanes(
    arrivals_s: Mapping[str, Sequence[float]] | None, site_lanes: Mapping[str, str]
) -> dict[str, tuple[float, ...]]:
    """Only the site's lanes and finite, non-negative times are kept (bounded state, no NaN)."""
    if not arrivals_s:
        return {}
    return {
        lane: tuple(sorted(t for t in times if math.isfinite(t) and t >= 0.0))[:MAX_ARRIVALS_PER_LANE]
        for lane, times in arrivals_s.items()
        if lane in site_lanes
    }
