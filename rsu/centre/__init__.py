"""The traffic centre: collector and store (SQLite or PostgreSQL) for the units' interval aggregates."""

from rsu.centre.collector import CentreCollector, CollectorStats, add_centre_parser
from rsu.centre.store import (
    AddResult,
    AggregateStore,
    IntervalRow,
    StoreError,
    StoreIntegrityError,
    StoreUnavailable,
    UnitCounters,
)

__all__ = [
    "AddResult",
    "AggregateStore",
    "CentreCollector",
    "CollectorStats",
    "IntervalRow",
    "StoreError",
    "StoreIntegrityError",
    "StoreUnavailable",
    "UnitCounters",
    "add_centre_parser",
]
