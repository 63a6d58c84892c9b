"""Control strategies: when to end the current stage and which stage to serve next.

Each takes its parameters as plain data: the site file's ``controller.<strategy>`` block
(rsu_contracts.config.strategy), re-exported here for library use.
"""

from rsu_contracts.config.strategy import ActuatedParameters, FixedTimeParameters
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
    "ActuatedParameters",
    "ActuatedStrategy",
    "AdaptiveParameters",
    "AdaptiveStrategy",
    "Decision",
    "DecisionContext",
    "FixedTimeParameters",
    "FixedTimeStrategy",
    "ScheduleParameters",
    "ScheduleStrategy",
    "Strategy",
    "Termination",
    "next_called_stage",
]
