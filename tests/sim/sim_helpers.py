"""Signal plans and states the simulation tests feed the world, independent of the controller."""

from __future__ import annotations

from collections.abc import Collection, Iterator

from rsu.sim.world import SumoWorld
from rsu_contracts.config import SiteConfig
from rsu_contracts.messages.signal import Indication, SignalGroupState

YELLOW_S = 3.0
ALL_RED_S = 2.0
# Green per stage of the sample site: ns_left, ns_through, ew_left, ew_through.
STAGE_GREENS_S = (8.0, 30.0, 6.0, 18.0)


def group_states(site: SiteConfig, green: Collection[str] = (), yellow: Collection[str] = ()) -> list[SignalGroupState]:
    """Every signal group of the site: green, yellow, or red for all the others."""
    states = []
    for group in site.signal_groups:
        if group.id in green:
            indication = Indication.GREEN
        elif group.id in yellow:
            indication = Indication.YELLOW
        else:
            indication = Indication.RED
        states.append(
            SignalGroupState(
                signal_group=group.id,
                indication=indication,
                since_s=0.0,
                min_end_time_s=0.0,
                max_end_time_s=0.0,
                likely_time_s=0.0,
            )
        )
    return states


def fixed_time_plan(site: SiteConfig) -> Iterator[tuple[float, list[SignalGroupState]]]:
    """Endless (duration, states) intervals: each stage green, then yellow, then all red."""
    while True:
        for stage, green_s in zip(site.controller.stages, STAGE_GREENS_S, strict=True):
            vehicle_groups = [g for g in stage.signal_groups if not g.startswith("p_")]
            yield green_s, group_states(site, green=stage.signal_groups)
            yield YELLOW_S, group_states(site, yellow=vehicle_groups)
            yield ALL_RED_S, group_states(site)


class FixedTimeDriver:
    """Feeds the fixed-time plan to a world; keeps its place in the plan between calls."""

    def __init__(self, site: SiteConfig) -> None:
        self._intervals = fixed_time_plan(site)
        self._interval_end_s = 0.0

    def run_until(self, world: SumoWorld, until_s: float) -> None:
        while world.time_s < until_s - 1e-9:
            if world.time_s >= self._interval_end_s - 1e-9:
                duration_s, states = next(self._intervals)
                world.apply_signals(states)
                self._interval_end_s += duration_s
            world.run_until(min(self._interval_end_s, until_s))
