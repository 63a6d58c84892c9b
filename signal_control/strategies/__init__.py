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

__all__ = [
    "Action",
    "ActuatedStrategy",
    "AdaptiveParameters",
    "AdaptiveStrategy",
    "Decision",
    "DecisionContext",
    "FixedTimeStrategy",
    "Strategy",
    "Termination",
    "next_called_stage",
]
