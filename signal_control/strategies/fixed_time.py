"""Fixed-time control: every stage in turn for a planned green, whatever the detectors say.

Also the recall plan the controller falls back to when detector data is missing or stale.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rsu_contracts.config.strategy import FixedTimeParameters
from signal_control import timing
from signal_control.phasing import PhasePlan
from signal_control.strategies.base import Decision, DecisionContext, Termination


class FixedTimeStrategy:
    def __init__(self, plan: PhasePlan, green_s: float | Sequence[float], name: str = "fixed_time") -> None:
        greens = [float(green_s)] * len(plan.stages) if isinstance(green_s, int | float) else list(green_s)
        if len(greens) != len(plan.stages):
            raise ValueError(f"need one green per stage ({len(plan.stages)}), got {len(greens)}")
        self._plan = plan
        self._name = name
        # A fixed plan recalls pedestrians, so each green must fit the stage's walk and clearance.
        self._greens = tuple(
            max(green, stage.min_green_with_pedestrians_s) for green, stage in zip(greens, plan.stages, strict=True)
        )

    @classmethod
    def webster(
        cls,
        plan: PhasePlan,
        lane_flows_vph: Mapping[str, float],
        parameters: FixedTimeParameters | None = None,
    ) -> FixedTimeStrategy:
        """Greens split by Webster from measured flows per lane (vehicles per hour), with the
        saturation flow and cycle bounds of ``parameters`` (the site's controller.fixed_time)."""
        p = parameters or FixedTimeParameters()
        unknown = sorted(set(lane_flows_vph) - set(plan.group_of_lane))
        if unknown:
            raise ValueError(f"flows given for unknown lanes {unknown}")
        if any(flow < 0 for flow in lane_flows_vph.values()):
            raise ValueError("lane flows cannot be negative")
        # The critical ratio of a stage is its busiest lane's flow over saturation flow.
        saturation_vph = p.saturation_flow_vph_per_lane
        ratios = [
            max((lane_flows_vph.get(lane, 0.0) / saturation_vph for lane in stage.lane_ids), default=0.0)
            for stage in plan.stages
        ]
        count = len(plan.stages)
        lost_time_s = sum(plan.transition_clearance_s(i, (i + 1) % count) for i in range(count))
        cycle_s = timing.webster_cycle_s(lost_time_s, ratios, p.min_cycle_s, p.max_cycle_s)
        return cls(plan, timing.webster_green_splits(cycle_s, lost_time_s, ratios))

    @classmethod
    def from_plan(cls, plan: PhasePlan, parameters: FixedTimeParameters | None = None) -> FixedTimeStrategy:
        """The site's fixed_time greens: each stage's own, else Webster's from the design flows when
        the site gives them, else the site-wide fixed green."""
        greens = fixed_time_greens_s(plan, parameters)
        return cls(plan, greens)

    @property
    def name(self) -> str:
        return self._name

    @property
    def serves_every_stage(self) -> bool:
        return True

    @property
    def greens_s(self) -> tuple[float, ...]:
        return self._greens

    def expected_green_s(self, stage_index: int) -> float:
        return self._greens[stage_index]

    def decide(self, context: DecisionContext) -> Decision:
        stage = self._plan.stages[context.stage_index]
        planned_s = self._greens[context.stage_index]
        if context.time_in_green_s < planned_s:
            remaining_s = planned_s - context.time_in_green_s
            return Decision.hold(f"stage {stage.stage_id}: fixed green of {planned_s:.1f} s", remaining_s)
        return Decision.terminate(
            Termination.FORCE_OFF,
            (context.stage_index + 1) % len(self._plan.stages),
            f"stage {stage.stage_id}: force-off at the end of its {planned_s:.1f} s fixed green",
        )


def fixed_time_greens_s(plan: PhasePlan, parameters: FixedTimeParameters | None = None) -> list[float]:
    """One green per stage: a stage's configured green wins; the rest come from Webster's split
    of the design flows if any are given (with ``parameters``' saturation flow and cycle bounds),
    else the plan's fixed green."""
    if plan.design_flows_vph:
        defaults = list(FixedTimeStrategy.webster(plan, plan.design_flows_vph, parameters).greens_s)
    else:
        defaults = [plan.fixed_green_s] * len(plan.stages)
    configured = plan.stage_fixed_greens_s or (None,) * len(plan.stages)
    return [own if own is not None else default for own, default in zip(configured, defaults, strict=True)]
