"""Fully actuated control: extend a green while vehicles keep arriving, skip stages nobody waits for."""

from __future__ import annotations

from rsu_contracts.config.strategy import ActuatedParameters
from signal_control.phasing import PhasePlan
from signal_control.strategies.base import Decision, DecisionContext, Termination, next_called_stage

# Two decisions whose green starts differ by more than this belong to different greens.
_SAME_GREEN_TOLERANCE_S = 0.5


class ActuatedStrategy:
    """Gap-out after min green once every lane of the stage has a stop-bar gap above its allowed
    gap; max-out at max green; rest in the current stage while no other stage is called.

    The allowed gap is the lane's passage time (its signal group's ``passage_s``); with gap reduction
    (``parameters.minimum_gap_s``) it falls linearly to the minimum gap once a conflicting call has
    waited ``time_before_reduction_s``, over ``time_to_reduce_s`` (NEMA volume-density operation).
    """

    def __init__(self, plan: PhasePlan, parameters: ActuatedParameters | None = None) -> None:
        self._plan = plan
        # The site's controller.actuated block (its defaults when none is given).
        self.parameters = parameters or ActuatedParameters()
        # Passage time per lane, from the lane's signal group.
        self._passage_of_lane = {lane: plan.groups[group].passage_s for lane, group in plan.group_of_lane.items()}
        # The green being served (stage, start) and since when another stage has been called in it.
        self._green: tuple[int, float] | None = None
        self._conflicting_call_since_s: float | None = None

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
        next_stage = next_called_stage(context.stage_index, context.stage_calls)
        self._track_conflicting_call(context, called=next_stage is not None)
        extension_s = self._remaining_extension_s(context)
        remaining_passage_s = extension_s or 0.0
        if context.time_in_green_s < context.min_green_s:
            return Decision.hold(
                f"stage {stage.stage_id}: minimum green",
                max(context.min_green_s - context.time_in_green_s, remaining_passage_s),
            )
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

    def allowed_gap_s(self, passage_s: float, now_s: float) -> float:
        """The gap that still extends the green of a lane with this passage time, now."""
        p = self.parameters
        if p.minimum_gap_s is None or self._conflicting_call_since_s is None:
            return passage_s
        floor_s = min(p.minimum_gap_s, passage_s)
        reducing_s = now_s - self._conflicting_call_since_s - p.time_before_reduction_s
        if reducing_s <= 0.0:
            return passage_s
        if reducing_s >= p.time_to_reduce_s:
            return floor_s
        return passage_s - (passage_s - floor_s) * reducing_s / p.time_to_reduce_s

    def _track_conflicting_call(self, context: DecisionContext, called: bool) -> None:
        green = (context.stage_index, context.now_s - context.time_in_green_s)
        if (
            self._green is None
            or self._green[0] != green[0]
            or abs(self._green[1] - green[1]) > _SAME_GREEN_TOLERANCE_S
        ):
            self._conflicting_call_since_s = None
        self._green = green
        if not called:
            self._conflicting_call_since_s = None
        elif self._conflicting_call_since_s is None:
            self._conflicting_call_since_s = context.now_s

    def _remaining_extension_s(self, context: DecisionContext) -> float | None:
        """Longest time any lane of the stage still extends the green; None once every lane's
        stop-bar gap exceeds its allowed gap (the gap-out condition).

        A lane without an observation cannot extend the green: extending on missing data could
        hold the stage forever while others wait.
        """
        remaining: float | None = None
        for lane_id in self._plan.stages[context.stage_index].lane_ids:
            observation = context.lanes.get(lane_id)
            if observation is None:
                continue
            gap_s = 0.0 if observation.stop_bar_occupied else observation.stop_bar_gap_s
            lane_remaining_s = self.allowed_gap_s(self._passage_of_lane[lane_id], context.now_s) - gap_s
            if lane_remaining_s >= 0 and (remaining is None or lane_remaining_s > remaining):
                remaining = lane_remaining_s
        return remaining
