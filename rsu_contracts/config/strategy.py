"""The signal strategies' parameters: one block per strategy under ``controller`` in the site file.

Each block is plain, immutable data that the strategy (signal_control.strategies) takes as it is: the
site file, the unit and the signal bench all pass the same model. A field's default is the value the
strategy was tuned with; its bounds refuse values that would make the strategy meaningless (a
negative headway, a starvation guard shorter than a cycle), and unknown keys are refused, so a typo
fails at start with the field's name.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rsu_contracts.config.errors import FieldError


class _Parameters(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FixedTimeParameters(_Parameters):
    """fixed_time: the Webster split used when ``controller.design_flows_vph`` is given."""

    saturation_flow_vph_per_lane: float = Field(
        default=1800.0,
        ge=600.0,
        le=2400.0,
        description="Saturation flow of one lane, vehicles per hour of green (HCM base 1900 less typical "
        "adjustments); a stage's critical ratio is its busiest lane's design flow over it.",
    )
    min_cycle_s: float = Field(default=30.0, ge=20.0, le=240.0, description="Shortest Webster cycle, seconds.")
    max_cycle_s: float = Field(
        default=150.0, ge=20.0, le=240.0, description="Longest Webster cycle, seconds; at least min_cycle_s."
    )

    @model_validator(mode="after")
    def _check_cycle_bounds(self) -> FixedTimeParameters:
        if self.max_cycle_s < self.min_cycle_s:
            raise FieldError(
                ("max_cycle_s",), f"max_cycle_s ({self.max_cycle_s}) is below min_cycle_s ({self.min_cycle_s})"
            )
        return self


class ActuatedParameters(_Parameters):
    """actuated: gap-out on each lane's passage time (the signal group's ``passage_s``), with optional
    NEMA gap reduction (volume-density): once a conflicting call has waited
    ``time_before_reduction_s``, the allowed gap falls linearly to ``minimum_gap_s`` over
    ``time_to_reduce_s``, so a long green under steady light arrivals ends sooner."""

    minimum_gap_s: float | None = Field(
        default=None,
        ge=0.2,
        le=10.0,
        description="Gap reduction's floor, seconds (never above a group's own passage_s); none: no gap "
        "reduction, every lane extends by its group's passage_s.",
    )
    time_before_reduction_s: float = Field(
        default=10.0,
        ge=0.0,
        le=120.0,
        description="With minimum_gap_s: how long a conflicting call waits during the green before the gap "
        "starts to fall, seconds.",
    )
    time_to_reduce_s: float = Field(
        default=15.0,
        ge=0.0,
        le=120.0,
        description="With minimum_gap_s: how long the gap takes to fall from passage_s to minimum_gap_s, "
        "seconds (0: at once).",
    )


class _PermissiveLeftParameters(_Parameters):
    """The permissive-left model the planning strategies share (signal_control.permissive): how many lefts
    turn in the through's green, and the HCM gap acceptance that decides it."""

    permissive_max_vehicles: int = Field(
        default=6,
        ge=0,
        le=30,
        description="Protected/permissive lefts: most vehicles per lane expected to turn permissively in the "
        "through's green, vehicles.",
    )
    critical_gap_s: float = Field(
        default=4.5,
        ge=2.0,
        le=10.0,
        description="Permissive left: shortest gap in the opposing flow a driver accepts, seconds (HCM).",
    )
    follow_up_s: float = Field(
        default=2.5,
        ge=1.0,
        le=6.0,
        description="Permissive left: headway of the lefts turning through one gap, seconds (HCM); at most "
        "critical_gap_s.",
    )
    sneakers_per_green: int = Field(
        default=2,
        ge=0,
        le=5,
        description="Permissive left: vehicles turning at the end of the through's green, per green.",
    )

    @model_validator(mode="after")
    def _check_gaps(self) -> _PermissiveLeftParameters:
        _check_follow_up(self.critical_gap_s, self.follow_up_s)
        return self


class AdaptiveParameters(_PermissiveLeftParameters):
    """adaptive: delay-weighed extension from what the camera sees (signal_control.strategies.adaptive)."""

    discharge_gap_s: float = Field(
        default=1.3,
        ge=0.2,
        le=5.0,
        description="A stop-bar zone free for less than this still counts as a discharging queue, seconds "
        "(queued vehicles follow at about 2 s; over an 8 m zone a flowing queue leaves gaps under 1.5 s).",
    )
    watched_length_m: float = Field(
        default=110.0,
        ge=10.0,
        le=500.0,
        description="How far upstream the camera watches approaching vehicles, metres (arrival rates, and "
        "arrival times when the caller gives no lookahead).",
    )
    stop_penalty_s: float = Field(
        default=4.0,
        ge=0.0,
        le=30.0,
        description="Delay a vehicle cut off by the end of green suffers on top of its red (stopping and "
        "starting again), seconds.",
    )
    yellow_pass_s: float = Field(
        default=1.0,
        ge=0.0,
        le=3.0,
        description="A vehicle this close to the stop line at the start of yellow goes through, seconds.",
    )
    headway_s: float = Field(
        default=2.0, ge=1.2, le=4.0, description="Saturation headway per lane of a discharging queue, seconds."
    )
    startup_s: float = Field(default=2.0, ge=0.0, le=5.0, description="Start-up lost time of a green, seconds.")
    flow_time_constant_s: float = Field(
        default=120.0, ge=10.0, le=3600.0, description="Time constant of the smoothed arrival rate per lane, seconds."
    )
    red_arrival_share: float = Field(
        default=1.0,
        ge=0.0,
        le=1.0,
        description="Share (0-1) of a rotation over which vehicles arriving on red before their green weigh "
        "against holding the green.",
    )
    max_wait_s: float = Field(
        default=120.0,
        ge=20.0,
        le=600.0,
        description="Starvation guard: a road user on red that has waited this long forces the green off "
        "(after its minimum), seconds.",
    )
    skip_max_vehicles: int = Field(
        default=1,
        ge=0,
        le=10,
        description="A stage without pedestrians and at most this many vehicles may be passed over once while "
        "its call is young, vehicles (0: never passed over for lightness).",
    )
    skip_max_call_age_s: float = Field(
        default=15.0,
        ge=0.0,
        le=120.0,
        description="A light stage is passed over only while its call is younger than this, seconds.",
    )
    min_platoon_speed_mps: float = Field(
        default=3.0,
        ge=0.0,
        le=15.0,
        description="Approaching vehicles slower than this are creeping into a queue, not a platoon, m/s.",
    )
    permissive_max_wait_s: float = Field(
        default=60.0,
        ge=5.0,
        le=600.0,
        description="Protected/permissive lefts: the protected stage is served once a left has waited this "
        "long, seconds.",
    )


class ScheduleParameters(_PermissiveLeftParameters):
    """schedule: schedule-driven control over clusters of vehicles (signal_control.strategies.schedule)."""

    headway_s: float = Field(
        default=2.0, ge=1.2, le=4.0, description="Saturation headway per lane of a discharging queue, seconds."
    )
    startup_s: float = Field(
        default=2.0, ge=0.0, le=5.0, description="Start-up lost time of a green with a standing queue, seconds."
    )
    cluster_gap_s: float = Field(
        default=3.0,
        ge=0.5,
        le=10.0,
        description="Vehicles whose free departures lie further apart than this form separate clusters, seconds.",
    )
    max_clusters_per_stage: int = Field(
        default=3,
        ge=1,
        le=5,
        description="Clusters planned per stage, clusters (the rest joins the last); bounds the plan's states "
        "and its decision time.",
    )
    replan_interval_s: float = Field(
        default=1.0, ge=0.1, le=5.0, description="The schedule is planned again this often, seconds."
    )
    future_horizon_s: float = Field(
        default=10.0,
        ge=0.0,
        le=60.0,
        description="Arrivals predicted beyond the camera's view from each lane's measured rate, over this "
        "long, seconds (0: none).",
    )
    lookahead_s: float = Field(
        default=8.0,
        ge=0.0,
        le=30.0,
        description="How far ahead the camera's view reaches, seconds of travel; predicted arrivals start there.",
    )
    watched_length_m: float = Field(
        default=110.0,
        ge=10.0,
        le=500.0,
        description="How far upstream the camera watches approaching vehicles, metres (arrival rates).",
    )
    flow_time_constant_s: float = Field(
        default=120.0, ge=10.0, le=3600.0, description="Time constant of the smoothed arrival rate per lane, seconds."
    )
    min_platoon_speed_mps: float = Field(
        default=3.0,
        ge=0.0,
        le=15.0,
        description="Without lookahead: approaching vehicles slower than this are creeping into a queue, m/s.",
    )
    yellow_pass_s: float = Field(
        default=1.0,
        ge=0.0,
        le=3.0,
        description="A vehicle this close to the stop line when the green ends goes through on yellow, seconds.",
    )
    max_wait_s: float = Field(
        default=90.0,
        ge=20.0,
        le=600.0,
        description="Starvation guard: a stage called, or a lane on red waiting, this long ends the green, seconds.",
    )
    pedestrian_weight_vehicles: float = Field(
        default=2.0,
        ge=0.0,
        le=20.0,
        description="Delay weight of a waiting pedestrian group, in vehicles.",
    )
    wait_weight_per_min: float = Field(
        default=1.0,
        ge=0.0,
        le=20.0,
        description="A standing queue's vehicles weigh 1 + this x the lane's longest wait in minutes (the "
        "longer a lane has waited, the dearer each further second).",
    )
    permissive_max_wait_s: float = Field(
        default=60.0,
        ge=5.0,
        le=600.0,
        description="Protected/permissive lefts: the protected stage is planned once a left has waited this "
        "long, seconds.",
    )


def _check_follow_up(critical_gap_s: float, follow_up_s: float) -> None:
    # Gap acceptance: the lefts after the first need less than a critical gap each.
    if follow_up_s > critical_gap_s:
        raise FieldError(("follow_up_s",), f"follow_up_s ({follow_up_s}) exceeds critical_gap_s ({critical_gap_s})")
