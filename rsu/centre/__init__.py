"""The traffic centre: collector and store for the units' interval aggregates."""

from rsu.centre.collector import CentreCollector, CollectorStats, add_centre_parser
from rsu.centre.store import AddResult, AggregateStore, IntervalRow, UnitCounters

__all__ = [
    "AddResult",
    "AggregateStore",
    "CentreCollector",
    "CollectorStats",
    "IntervalRow",
    "UnitCounters",
    "add_centre_parser",
]
