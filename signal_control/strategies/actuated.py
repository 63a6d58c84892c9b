"""Fully actuated control: extend a green while vehicles keep arriving, skip stages nobody waits for."""

from __future__ import annotations

from signal_control.phasing import PhasePlan
from signal_control.strategies.base import Decision, DecisionContext, Termination, next_called_stage


class ActuatedStrategy:
    """Gap-out after min green once every lane of the stage has a stop-bar gap above its passage
    time; max-out at max green; rest in the current stage while no other stage is called."""

    def __init__(self, plan: PhasePlan) -> None:
        self._plan = plan
        # Passage time per lane, from the lane's signal group.
        self._passage_of_lane = {lane: plan.groups[group].passage_s for lane, group in plan.group_of_lane.items()}

    @property
    def name(self) -> str:
        return "actuated"

    @property
    def serves_every_stage(self) -> bool:
        return False

    def expected_green_s(self, stage_index: int) -> float:
        return self._plan.stages[stage_index].vehicle_min_green_s

    def decide(self, context: DecisionContext) -> Decision:
        stage = self._plan.stages[context.stage_index]
        extension_s = self._remaining_extension_s(context)
        remaining_passage_s = extension_s or 0.0
        if context.time_in_green_s < context.min_green_s:
            return Decision.hold(
                f"stage {stage.stage_id}: minimum green",
                max(context.min_green_s - context.time_in_green_s, remaining_passage_s),
            )
        next_stage = next_called_stage(context.stage_index, context.stage_calls)
        if next_stage is None:
            return Decision.hold(f"stage {stage.stage_id}: resting, no demand elsewhere", remaining_passage_s)
        if context.time_in_green_s >= context.max_green_s:
            return Decision.terminate(
                Termination.MAX_OUT,
                next_stage,
                f"stage {stage.stage_id}: max-out after {context.time_in_green_s:.1f} s",
            )
        if extension_s is None:
            return Decision.terminate(
                Termination.GAP_OUT,
                next_stage,
                f"stage {stage.stage_id}: gap-out after {context.time_in_green_s:.1f} s",
            )
        return Decision.hold(f"stage {stage.stage_id}: extending, vehicles within passage time", remaining_passage_s)

    def _remaining_extension_s(self, context: DecisionContext) -> float | None:
        """Longest time any lane of the stage still extends the green; None once every lane's
        stop-bar gap exceeds its passage time (the gap-out condition).

        A lane without an observation cannot extend the green: extending on missing data could
        hold the stage forever while others wait.
        """
        remaining: float | None = None
        for lane_id in self._plan.stages[context.stage_index].lane_ids:
            observation = context.lanes.get(lane_id)
            if observation is None:
                continue
            gap_s = 0.0 if observation.stop_bar_occupied else observation.stop_bar_gap_s
            lane_remaining_s = self._passage_of_lane[lane_id] - gap_s
            if lane_remaining_s >= 0 and (remaining is None or lane_remaining_s > remaining):
                remaining = lane_remaining_s
        return remaining
