"""Control strategies: when to end the current stage and which stage to serve next."""

from signal_control.strategies.actuated import ActuatedStrategy
from signal_control.strategies.adaptive import AdaptiveParameters, AdaptiveStrategy
from signal_control.strategies.base import (
    Action,
    Decision,
    DecisionContext,
    Strategy,
    Termination,
    next_called_stage,
)
from signal_control.strategies.fixed_time import FixedTimeStrategy
from signal_control.strategies.schedule import ScheduleParameters, ScheduleStrategy

__all__ = [
    "Action",
    "ActuatedStrategy",
    "AdaptiveParameters",
    "AdaptiveStrategy",
    "Decision",
    "DecisionContext",
    "FixedTimeStrategy",
    "ScheduleParameters",
    "ScheduleStrategy",
    "Strategy",
    "Termination",
    "next_called_stage",
]
