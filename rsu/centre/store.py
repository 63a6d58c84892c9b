"""The traffic centre's store of interval aggregates, shaped for plain SQL, in SQLite or PostgreSQL.

One row per unit and interval in `intervals`; child tables repeat unit_id, seq and the interval
times so an engineer can query a lane, line or phase without a join, e.g.

    SELECT datetime(interval_start_s, 'unixepoch') AS start, car, truck, speed_p85_mps   -- SQLite
    FROM lane_aggregates WHERE unit_id = 'rsu-demo-001' AND lane_id = 'north_left'
    ORDER BY interval_start_s;

(to_timestamp(interval_start_s) in PostgreSQL). The store is chosen by target: an SQLite file (a
bare path or sqlite:///path, the embedded default) or postgresql://... (rsu.centre.backends); both
hold the same tables (rsu.centre.schema, migrated when the store opens) with the same guarantees.

Units forward at least once, so (unit_id, interval_s, seq) is UNIQUE and a repeat is dropped and
counted (a unit seals several interval lengths, 1 and 15 minutes by default, each numbered by its
own interval index; filter on interval_s to read one series).
A repeat of a seq with a *different* interval is not a duplicate but a sequence collision (a unit
that lost its counter); it is kept aside in `seq_conflicts` instead of being silently dropped.
Each add_many is one transaction: all of it is committed or none, so a caller that acknowledges
after add_many returns never acknowledges what is not stored.
Times are seconds since the Unix epoch.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Literal

from rsu.centre.backends import (
    Backend,
    StoreError,
    StoreIntegrityError,
    StoreUnavailable,
    open_backend,
)
from rsu.centre.schema import CLASS_COLUMNS, COUNT_COLUMNS, Cursor, Dialect, migrate
from rsu_contracts.messages.aggregates import Aggregate

__all__ = [
    "CLASS_COLUMNS",
    "AddResult",
    "AggregateStore",
    "IntervalRow",
    "StoreError",
    "StoreIntegrityError",
    "StoreUnavailable",
    "UnitCounters",
]

_Repeat = Literal["duplicate", "conflict"]

# Two interval starts closer than this share one interval (clock jitter, float rounding).
_SAME_START_TOLERANCE_S = 1e-3
# 9 parameters a row: well under SQLite's 32,766 and PostgreSQL's 65,535 parameters a statement.
_INTERVALS_PER_STATEMENT = 500


@dataclass(frozen=True)
class AddResult:
    """What one batch did: new intervals, exact repeats dropped, seq collisions set aside."""

    stored: int = 0
    duplicates: int = 0
    seq_conflicts: int = 0

    def __add__(self, other: AddResult) -> AddResult:
        return AddResult(
            self.stored + other.stored,
            self.duplicates + other.duplicates,
            self.seq_conflicts + other.seq_conflicts,
        )


@dataclass(frozen=True)
class IntervalRow:
    unit_id: str
    seq: int
    interval_start_s: float
    interval_s: float
    publish_time_s: float
    received_time_s: float
    stored_time_s: float
    detector_valid_ratio: float
    # Seconds with valid detector data (aggregate schema v2); None when the unit did not report it.
    observed_s: float | None = None


@dataclass(frozen=True)
class UnitCounters:
    unit_id: str
    stored: int
    duplicates: int
    seq_conflicts: int
    last_received_time_s: float | None


class AggregateStore:
    """The centre's store on one backend; each add_many is one transaction. Safe to share between threads.

    target: a path or sqlite:///path (SQLite, WAL mode), or postgresql://... . The schema is created
    or migrated on opening (rsu.centre.schema).
    """

    def __init__(self, target: str | Path) -> None:
        self.backend: Backend = open_backend(target)
        self.dialect: Dialect = self.backend.dialect
        self.totals = AddResult()
        try:
            with self.backend.transaction() as cursor:
                self.backend.migration_lock(cursor)
                self.migrations_applied = migrate(cursor, self.dialect)
            self.backend.after_migrations()
        except BaseException:
            self.backend.close()
            raise
        self._upsert_counters = (
            "INSERT INTO unit_counters (unit_id, stored, duplicates, seq_conflicts, last_received_time_s) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (unit_id) DO UPDATE SET "
            "stored = unit_counters.stored + excluded.stored, "
            "duplicates = unit_counters.duplicates + excluded.duplicates, "
            "seq_conflicts = unit_counters.seq_conflicts + excluded.seq_conflicts, "
            f"last_received_time_s = {self.dialect.greatest}("
            "COALESCE(unit_counters.last_received_time_s, 0), excluded.last_received_time_s)"
        )

    @property
    def label(self) -> str:
        """Where the data is (a file, or the server URL without its password), for messages."""
        return self.backend.label

    # writing

    def add(self, aggregate: Aggregate, received_time_s: float) -> AddResult:
        return self.add_many([(aggregate, received_time_s)])

    def add_many(self, items: Sequence[tuple[Aggregate, float]]) -> AddResult:
        """Store (aggregate, received_time_s) pairs in one transaction; drop repeats by (unit, interval_s, seq).

        Raises StoreIntegrityError (nothing stored: an aggregate breaks a constraint) or
        StoreUnavailable (nothing stored: the database cannot be written now).
        """
        if not items:
            return AddResult()
        rows = _ChildRows()
        counters = _CounterBumps()
        with self.backend.transaction() as cursor:
            stored_time_s = time.time()
            new_flags = self._insert_intervals(cursor, items, stored_time_s)
            for (aggregate, received_time_s), is_new in zip(items, new_flags, strict=True):
                if is_new:
                    rows.add(aggregate)
                    counters.bump(aggregate.unit_id, "stored", received_time_s)
                else:
                    repeat = self._record_repeat(cursor, aggregate, received_time_s)
                    counters.bump(aggregate.unit_id, repeat, received_time_s)
            # One bulk insert per table per batch: most of the rows are lanes, lines and phases.
            rows.write(cursor)
            # In unit order, so that collectors writing batches concurrently (PostgreSQL) lock the
            # counter rows in the same order and never deadlock on them.
            cursor.executemany(self._upsert_counters, counters.rows())
        result = AddResult(rows.stored, counters.total("duplicate"), counters.total("conflict"))
        self.totals = self.totals + result
        return result

    @staticmethod
    def _insert_intervals(cursor: Cursor, items: Sequence[tuple[Aggregate, float]], stored_time_s: float) -> list[bool]:
        """Insert the interval rows, a few hundred per statement (one round trip to a server, not one
        per interval); for each item, whether it is new (False: its key is already there, or was
        taken by an earlier item of the batch). Rows get their ids in the order of the items."""
        new_flags: list[bool] = []
        for first in range(0, len(items), _INTERVALS_PER_STATEMENT):
            chunk = items[first : first + _INTERVALS_PER_STATEMENT]
            parameters: list[Any] = []
            for aggregate, received_time_s in chunk:
                parameters.extend(
                    (
                        aggregate.unit_id,
                        aggregate.seq,
                        aggregate.interval_start_s,
                        aggregate.interval_s,
                        aggregate.publish_time_s,
                        received_time_s,
                        stored_time_s,
                        aggregate.detector_valid_ratio,
                        aggregate.observed_s,
                    )
                )
            values = ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?)"] * len(chunk))
            inserted = {
                (unit_id, float(interval_s), int(seq))
                for unit_id, interval_s, seq in cursor.execute(
                    "INSERT INTO intervals (unit_id, seq, interval_start_s, interval_s, publish_time_s, "
                    f"received_time_s, stored_time_s, detector_valid_ratio, observed_s) VALUES {values} "
                    "ON CONFLICT (unit_id, interval_s, seq) DO NOTHING RETURNING unit_id, interval_s, seq",
                    parameters,
                ).fetchall()
            }
            for aggregate, _ in chunk:
                key = (aggregate.unit_id, float(aggregate.interval_s), aggregate.seq)
                # The first item with a key is the one stored; a later one with the same key repeats it.
                new_flags.append(key in inserted)
                inserted.discard(key)
        return new_flags

    @staticmethod
    def _record_repeat(cursor: Cursor, aggregate: Aggregate, received_time_s: float) -> _Repeat:
        row = cursor.execute(
            "SELECT interval_start_s FROM intervals WHERE unit_id = ? AND interval_s = ? AND seq = ?",
            (aggregate.unit_id, aggregate.interval_s, aggregate.seq),
        ).fetchone()
        if row is not None and abs(row[0] - aggregate.interval_start_s) <= _SAME_START_TOLERANCE_S:
            return "duplicate"
        cursor.execute(
            "INSERT INTO seq_conflicts (unit_id, seq, interval_start_s, interval_s, received_time_s, payload) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (
                aggregate.unit_id,
                aggregate.seq,
                aggregate.interval_start_s,
                aggregate.interval_s,
                received_time_s,
                aggregate.model_dump_json(),
            ),
        )
        return "conflict"

    # reading

    def query(self, sql: str, parameters: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one read-only SQL statement (the same SQL an engineer would type; `?` placeholders)."""
        return self.backend.query(sql, parameters)

    def schema_version(self) -> int:
        return int(self.query("SELECT MAX(version) FROM schema_version")[0][0])

    def units(self) -> list[str]:
        return [row[0] for row in self.query("SELECT DISTINCT unit_id FROM intervals ORDER BY unit_id")]

    def intervals(self, unit_id: str) -> list[IntervalRow]:
        """The unit's intervals in time order (ties broken by seq)."""
        rows = self.query(
            "SELECT unit_id, seq, interval_start_s, interval_s, publish_time_s, received_time_s, stored_time_s, "
            "detector_valid_ratio, observed_s FROM intervals WHERE unit_id = ? ORDER BY interval_start_s, seq",
            (unit_id,),
        )
        return [IntervalRow(*row) for row in rows]

    def _series(self, unit_id: str, interval_s: float | None) -> float | None:
        """The interval length to look at: interval_s, or the unit's shortest stored one."""
        if interval_s is not None:
            return interval_s
        row = self.query("SELECT MIN(interval_s) FROM intervals WHERE unit_id = ?", (unit_id,))
        return row[0][0] if row else None

    def gaps(self, unit_id: str, limit: int = 10_000, interval_s: float | None = None) -> list[float]:
        """Start times of intervals missing between the unit's first and last stored interval.

        One series: intervals of length interval_s (default: the unit's shortest).
        """
        missing: list[float] = []
        previous: tuple[float, float] | None = None
        for start_s, length_s in self.query(
            "SELECT interval_start_s, interval_s FROM intervals WHERE unit_id = ? AND interval_s = ? "
            "ORDER BY interval_start_s",
            (unit_id, self._series(unit_id, interval_s)),
        ):
            if previous is not None:
                previous_start_s, step_s = previous
                k = 1
                # Step with the previous interval's length; half a step of slack absorbs jitter.
                while previous_start_s + k * step_s < start_s - step_s / 2:
                    if len(missing) >= limit:
                        return missing
                    missing.append(previous_start_s + k * step_s)
                    k += 1
            previous = (start_s, length_s)
        return missing

    def missing_seqs(self, unit_id: str, limit: int = 10_000, interval_s: float | None = None) -> list[int]:
        """Sequence numbers absent between the unit's lowest and highest stored seq of one interval length
        (interval_s, default the unit's shortest)."""
        missing: list[int] = []
        expected: int | None = None
        for (seq,) in self.query(
            "SELECT seq FROM intervals WHERE unit_id = ? AND interval_s = ? ORDER BY seq",
            (unit_id, self._series(unit_id, interval_s)),
        ):
            if expected is not None:
                for absent in range(expected, seq):
                    if len(missing) >= limit:
                        return missing
                    missing.append(absent)
            expected = seq + 1
        return missing

    def counters(self, unit_id: str) -> UnitCounters:
        row = self.query(
            "SELECT unit_id, stored, duplicates, seq_conflicts, last_received_time_s FROM unit_counters "
            "WHERE unit_id = ?",
            (unit_id,),
        )
        return UnitCounters(*row[0]) if row else UnitCounters(unit_id, 0, 0, 0, None)

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> AggregateStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


_HEAD = ("unit_id", "seq", "interval_start_s", "interval_s")
_LANE_COLUMNS = (
    *_HEAD,
    "lane_id",
    *COUNT_COLUMNS,
    "mean_speed_mps",
    "speed_p85_mps",
    "occupancy_ratio",
    "mean_queue_m",
    "max_queue_m",
    "mean_queue_vehicles",
    "mean_headway_s",
)
_LINE_COLUMNS = (*_HEAD, "line_id", *COUNT_COLUMNS)
_PHASE_COLUMNS = (
    *_HEAD,
    "signal_group",
    "green_time_s",
    "green_starts",
    "gap_outs",
    "max_outs",
    "force_offs",
    "arrivals",
    "arrivals_on_green",
    "arrivals_on_green_ratio",
    "split_failures",
)
_MOVEMENT_COLUMNS = (*_HEAD, "entry_line_id", "exit_line_id", "movement", *COUNT_COLUMNS)
_WARNING_COLUMNS = (*_HEAD, "kind", "count")


class _CounterBumps:
    """unit_counters changes of one batch, one row per unit."""

    _COLUMN: ClassVar[dict[str, int]] = {"stored": 0, "duplicate": 1, "conflict": 2}

    def __init__(self) -> None:
        # unit_id -> [stored, duplicates, seq_conflicts, latest received time]
        self._by_unit: dict[str, list[float]] = {}

    def bump(self, unit_id: str, what: Literal["stored", "duplicate", "conflict"], received_time_s: float) -> None:
        row = self._by_unit.setdefault(unit_id, [0, 0, 0, received_time_s])
        row[self._COLUMN[what]] += 1
        row[3] = max(row[3], received_time_s)

    def total(self, what: Literal["duplicate", "conflict"]) -> int:
        return int(sum(row[self._COLUMN[what]] for row in self._by_unit.values()))

    def rows(self) -> list[tuple[str, int, int, int, float]]:
        return [
            (unit_id, int(row[0]), int(row[1]), int(row[2]), row[3]) for unit_id, row in sorted(self._by_unit.items())
        ]


class _ChildRows:
    """The per-lane, per-line, per-phase and per-kind rows of the newly stored intervals of a batch."""

    def __init__(self) -> None:
        self.lanes: list[tuple[Any, ...]] = []
        self.lines: list[tuple[Any, ...]] = []
        self.phases: list[tuple[Any, ...]] = []
        self.warnings: list[tuple[Any, ...]] = []
        self.movements: list[tuple[Any, ...]] = []
        self.stored = 0

    def add(self, aggregate: Aggregate) -> None:
        head = (aggregate.unit_id, aggregate.seq, aggregate.interval_start_s, aggregate.interval_s)
        self.lanes.extend(
            (
                *head,
                lane.lane_id,
                *_class_counts(lane.counts_by_class),
                lane.mean_speed_mps,
                lane.speed_p85_mps,
                lane.occupancy_ratio,
                lane.mean_queue_m,
                lane.max_queue_m,
                lane.mean_queue_vehicles,
                lane.mean_headway_s,
            )
            for lane in aggregate.lanes
        )
        self.lines.extend((*head, line.line_id, *_class_counts(line.counts_by_class)) for line in aggregate.lines)
        self.phases.extend(
            (
                *head,
                phase.signal_group,
                phase.green_time_s,
                phase.green_starts,
                phase.gap_outs,
                phase.max_outs,
                phase.force_offs,
                phase.arrivals,
                phase.arrivals_on_green,
                phase.arrivals_on_green_ratio,
                phase.split_failures,
            )
            for phase in aggregate.phases
        )
        self.movements.extend(
            (*head, m.entry_line_id, m.exit_line_id, m.movement, *_class_counts(m.counts_by_class))
            for m in aggregate.movements
        )
        self.warnings.extend((*head, kind, count) for kind, count in aggregate.warnings_by_kind.items())
        self.stored += 1

    def write(self, cursor: Cursor) -> None:
        cursor.insert_rows("lane_aggregates", _LANE_COLUMNS, self.lanes)
        cursor.insert_rows("line_counts", _LINE_COLUMNS, self.lines)
        cursor.insert_rows("phase_aggregates", _PHASE_COLUMNS, self.phases)
        cursor.insert_rows("warnings_by_kind", _WARNING_COLUMNS, self.warnings)
        cursor.insert_rows("movement_counts", _MOVEMENT_COLUMNS, self.movements)


def _class_counts(counts_by_class: dict[str, int]) -> tuple[int, ...]:
    known = tuple(counts_by_class.get(name, 0) for name in CLASS_COLUMNS)
    other = sum(count for name, count in counts_by_class.items() if name not in CLASS_COLUMNS)
    return (*known, other)
