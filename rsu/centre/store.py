"""The traffic centre's SQLite store of interval aggregates, shaped for plain SQL.

One row per unit and interval in `intervals`; child tables repeat unit_id, seq and the interval
times so an engineer can query a lane, line or phase without a join, e.g.

    SELECT datetime(interval_start_s, 'unixepoch') AS start, car, truck, speed_p85_mps
    FROM lane_aggregates WHERE unit_id = 'rsu-demo-001' AND lane_id = 'north_left'
    ORDER BY interval_start_s;

Units forward at least once, so (unit_id, interval_s, seq) is UNIQUE and a repeat is dropped and
counted (a unit seals several interval lengths, 1 and 15 minutes by default, each numbered by its
own interval index; filter on interval_s to read one series).
A repeat of a seq with a *different* interval is not a duplicate but a sequence collision (a unit
that lost its counter); it is kept aside in `seq_conflicts` instead of being silently dropped.
Times are seconds since the Unix epoch (use datetime(x, 'unixepoch') to read them).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from rsu_contracts.enums import RoadUserType
from rsu_contracts.messages.aggregates import Aggregate

# Counts by class become columns; a class outside this list is added to `other`.
CLASS_COLUMNS: tuple[str, ...] = tuple(road_user.value for road_user in RoadUserType)

_Repeat = Literal["duplicate", "conflict"]

# Two interval starts closer than this share one interval (clock jitter, float rounding).
_SAME_START_TOLERANCE_S = 1e-3

_COUNT_COLUMNS_SQL = ",\n    ".join(f"{name} INTEGER NOT NULL DEFAULT 0" for name in (*CLASS_COLUMNS, "other"))

SCHEMA_SQL = f"""
CREATE TABLE IF NOT EXISTS intervals (
    id INTEGER PRIMARY KEY,              -- arrival order at the centre
    unit_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    interval_start_s REAL NOT NULL,
    interval_s REAL NOT NULL,
    publish_time_s REAL NOT NULL,        -- when the unit sealed the interval
    received_time_s REAL NOT NULL,       -- when the collector received it
    stored_time_s REAL NOT NULL,         -- when the transaction holding it committed
    detector_valid_ratio REAL NOT NULL,
    UNIQUE (unit_id, interval_s, seq)
);
CREATE INDEX IF NOT EXISTS intervals_by_start ON intervals (unit_id, interval_start_s);

CREATE TABLE IF NOT EXISTS lane_aggregates (
    unit_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    interval_start_s REAL NOT NULL,
    interval_s REAL NOT NULL,
    lane_id TEXT NOT NULL,
    {_COUNT_COLUMNS_SQL},
    mean_speed_mps REAL,
    speed_p85_mps REAL,
    occupancy_ratio REAL NOT NULL,
    mean_queue_m REAL NOT NULL,
    max_queue_m REAL NOT NULL,
    mean_queue_vehicles REAL NOT NULL,
    mean_headway_s REAL,
    PRIMARY KEY (unit_id, interval_s, seq, lane_id),
    FOREIGN KEY (unit_id, interval_s, seq) REFERENCES intervals (unit_id, interval_s, seq)
);
CREATE INDEX IF NOT EXISTS lanes_by_start ON lane_aggregates (unit_id, lane_id, interval_start_s);

CREATE TABLE IF NOT EXISTS line_counts (
    unit_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    interval_start_s REAL NOT NULL,
    interval_s REAL NOT NULL,
    line_id TEXT NOT NULL,
    {_COUNT_COLUMNS_SQL},
    PRIMARY KEY (unit_id, interval_s, seq, line_id),
    FOREIGN KEY (unit_id, interval_s, seq) REFERENCES intervals (unit_id, interval_s, seq)
);
CREATE INDEX IF NOT EXISTS lines_by_start ON line_counts (unit_id, line_id, interval_start_s);

CREATE TABLE IF NOT EXISTS phase_aggregates (
    unit_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    interval_start_s REAL NOT NULL,
    interval_s REAL NOT NULL,
    signal_group TEXT NOT NULL,
    green_time_s REAL NOT NULL,
    green_starts INTEGER NOT NULL,
    gap_outs INTEGER NOT NULL,
    max_outs INTEGER NOT NULL,
    force_offs INTEGER NOT NULL DEFAULT 0,
    arrivals INTEGER NOT NULL DEFAULT 0,
    arrivals_on_green INTEGER NOT NULL DEFAULT 0,
    arrivals_on_green_ratio REAL,
    split_failures INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (unit_id, interval_s, seq, signal_group),
    FOREIGN KEY (unit_id, interval_s, seq) REFERENCES intervals (unit_id, interval_s, seq)
);
CREATE INDEX IF NOT EXISTS phases_by_start ON phase_aggregates (unit_id, signal_group, interval_start_s);

CREATE TABLE IF NOT EXISTS warnings_by_kind (
    unit_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    interval_start_s REAL NOT NULL,
    interval_s REAL NOT NULL,
    kind TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (unit_id, interval_s, seq, kind),
    FOREIGN KEY (unit_id, interval_s, seq) REFERENCES intervals (unit_id, interval_s, seq)
);

CREATE TABLE IF NOT EXISTS movement_counts (
    unit_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    interval_start_s REAL NOT NULL,
    interval_s REAL NOT NULL,
    entry_line_id TEXT NOT NULL,
    exit_line_id TEXT NOT NULL,
    movement TEXT NOT NULL,             -- left / through / right / uturn
    {_COUNT_COLUMNS_SQL},
    PRIMARY KEY (unit_id, interval_s, seq, entry_line_id, exit_line_id),
    FOREIGN KEY (unit_id, interval_s, seq) REFERENCES intervals (unit_id, interval_s, seq)
);
CREATE INDEX IF NOT EXISTS movements_by_start ON movement_counts (unit_id, entry_line_id, interval_start_s);

CREATE TABLE IF NOT EXISTS unit_counters (
    unit_id TEXT PRIMARY KEY,
    stored INTEGER NOT NULL DEFAULT 0,
    duplicates INTEGER NOT NULL DEFAULT 0,
    seq_conflicts INTEGER NOT NULL DEFAULT 0,
    last_received_time_s REAL
);

CREATE TABLE IF NOT EXISTS seq_conflicts (
    unit_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    interval_start_s REAL NOT NULL,
    received_time_s REAL NOT NULL,
    payload TEXT NOT NULL               -- the whole aggregate, so the interval can be recovered
);
"""


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


@dataclass(frozen=True)
class UnitCounters:
    unit_id: str
    stored: int
    duplicates: int
    seq_conflicts: int
    last_received_time_s: float | None


class AggregateStore:
    """SQLite in WAL mode; each add_many is one transaction. Safe to share between threads."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        # One connection guarded by a lock: the collector writes from one thread, queries may
        # come from others, and SQLite serialises writers anyway.
        self._connection = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        self.totals = AddResult()
        with self._lock:
            self._connection.execute("PRAGMA journal_mode=WAL")
            # FULL: the collector acknowledges a message to the broker only after the commit,
            # so a commit must survive a power cut or the interval is lost for good.
            self._connection.execute("PRAGMA synchronous=FULL")
            self._connection.execute("PRAGMA foreign_keys=ON")
            self._connection.executescript(SCHEMA_SQL)

    # writing

    def add(self, aggregate: Aggregate, received_time_s: float) -> AddResult:
        return self.add_many([(aggregate, received_time_s)])

    def add_many(self, items: Sequence[tuple[Aggregate, float]]) -> AddResult:
        """Store (aggregate, received_time_s) pairs in one transaction; drop repeats by (unit, seq)."""
        if not items:
            return AddResult()
        duplicates = conflicts = 0
        rows = _ChildRows()
        with self._lock:
            cursor = self._connection.cursor()
            cursor.execute("BEGIN IMMEDIATE")
            try:
                stored_time_s = time.time()
                for aggregate, received_time_s in items:
                    if self._insert_interval(cursor, aggregate, received_time_s, stored_time_s):
                        rows.add(aggregate, received_time_s)
                    elif self._record_repeat(cursor, aggregate, received_time_s) == "duplicate":
                        duplicates += 1
                    else:
                        conflicts += 1
                # One statement per table per batch: most of the rows are lanes, lines and phases.
                rows.write(cursor)
                for unit_id, (count, last_received_time_s) in rows.stored_by_unit.items():
                    self._bump(cursor, unit_id, "stored", last_received_time_s, count)
                cursor.execute("COMMIT")
            except BaseException:
                cursor.execute("ROLLBACK")
                raise
        result = AddResult(rows.stored, duplicates, conflicts)
        self.totals = self.totals + result
        return result

    @staticmethod
    def _insert_interval(
        cursor: sqlite3.Cursor, aggregate: Aggregate, received_time_s: float, stored_time_s: float
    ) -> bool:
        """Insert the interval row; False if (unit_id, seq) is already there."""
        cursor.execute(
            "INSERT OR IGNORE INTO intervals (unit_id, seq, interval_start_s, interval_s, publish_time_s, "
            "received_time_s, stored_time_s, detector_valid_ratio) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                aggregate.unit_id,
                aggregate.seq,
                aggregate.interval_start_s,
                aggregate.interval_s,
                aggregate.publish_time_s,
                received_time_s,
                stored_time_s,
                aggregate.detector_valid_ratio,
            ),
        )
        return cursor.rowcount == 1

    def _record_repeat(self, cursor: sqlite3.Cursor, aggregate: Aggregate, received_time_s: float) -> _Repeat:
        row = cursor.execute(
            "SELECT interval_start_s FROM intervals WHERE unit_id = ? AND interval_s = ? AND seq = ?",
            (aggregate.unit_id, aggregate.interval_s, aggregate.seq),
        ).fetchone()
        if row is not None and abs(row[0] - aggregate.interval_start_s) <= _SAME_START_TOLERANCE_S:
            self._bump(cursor, aggregate.unit_id, "duplicates", received_time_s)
            return "duplicate"
        cursor.execute(
            "INSERT INTO seq_conflicts (unit_id, seq, interval_start_s, received_time_s, payload) "
            "VALUES (?, ?, ?, ?, ?)",
            (
                aggregate.unit_id,
                aggregate.seq,
                aggregate.interval_start_s,
                received_time_s,
                aggregate.model_dump_json(),
            ),
        )
        self._bump(cursor, aggregate.unit_id, "seq_conflicts", received_time_s)
        return "conflict"

    @staticmethod
    def _bump(cursor: sqlite3.Cursor, unit_id: str, column: str, received_time_s: float, amount: int = 1) -> None:
        # column is one of three literals chosen in this module, never user input.
        cursor.execute(
            f"INSERT INTO unit_counters (unit_id, {column}, last_received_time_s) VALUES (?, ?, ?) "
            f"ON CONFLICT (unit_id) DO UPDATE SET {column} = {column} + excluded.{column}, "
            "last_received_time_s = MAX(COALESCE(last_received_time_s, 0), excluded.last_received_time_s)",
            (unit_id, amount, received_time_s),
        )

    # reading

    def query(self, sql: str, parameters: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one read-only SQL statement (the same SQL an engineer would type)."""
        with self._lock:
            return list(self._connection.execute(sql, parameters).fetchall())

    def units(self) -> list[str]:
        return [row[0] for row in self.query("SELECT DISTINCT unit_id FROM intervals ORDER BY unit_id")]

    def intervals(self, unit_id: str) -> list[IntervalRow]:
        """The unit's intervals in time order (ties broken by seq)."""
        rows = self.query(
            "SELECT unit_id, seq, interval_start_s, interval_s, publish_time_s, received_time_s, stored_time_s, "
            "detector_valid_ratio FROM intervals WHERE unit_id = ? ORDER BY interval_start_s, seq",
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
        with self._lock:
            self._connection.close()

    def __enter__(self) -> AggregateStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


_COUNT_COLUMNS = ", ".join((*CLASS_COLUMNS, "other"))
_COUNT_PLACEHOLDERS = ", ".join("?" for _ in (*CLASS_COLUMNS, "other"))
_INSERT_LANE = (
    f"INSERT INTO lane_aggregates (unit_id, seq, interval_start_s, interval_s, lane_id, {_COUNT_COLUMNS}, "
    "mean_speed_mps, speed_p85_mps, occupancy_ratio, mean_queue_m, max_queue_m, mean_queue_vehicles, "
    f"mean_headway_s) VALUES (?, ?, ?, ?, ?, {_COUNT_PLACEHOLDERS}, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_LINE = (
    f"INSERT INTO line_counts (unit_id, seq, interval_start_s, interval_s, line_id, {_COUNT_COLUMNS}) "
    f"VALUES (?, ?, ?, ?, ?, {_COUNT_PLACEHOLDERS})"
)
_INSERT_PHASE = (
    "INSERT INTO phase_aggregates (unit_id, seq, interval_start_s, interval_s, signal_group, "
    "green_time_s, green_starts, gap_outs, max_outs, force_offs, arrivals, arrivals_on_green, "
    "arrivals_on_green_ratio, split_failures) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_MOVEMENT = (
    "INSERT INTO movement_counts (unit_id, seq, interval_start_s, interval_s, entry_line_id, exit_line_id, "
    f"movement, {_COUNT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, {_COUNT_PLACEHOLDERS})"
)
_INSERT_WARNING = (
    "INSERT INTO warnings_by_kind (unit_id, seq, interval_start_s, interval_s, kind, count) VALUES (?, ?, ?, ?, ?, ?)"
)


class _ChildRows:
    """The per-lane, per-line, per-phase and per-kind rows of the newly stored intervals of a batch."""

    def __init__(self) -> None:
        self.lanes: list[tuple[Any, ...]] = []
        self.lines: list[tuple[Any, ...]] = []
        self.phases: list[tuple[Any, ...]] = []
        self.warnings: list[tuple[Any, ...]] = []
        self.movements: list[tuple[Any, ...]] = []
        self.stored = 0
        # unit_id -> (intervals stored, latest received time)
        self.stored_by_unit: dict[str, tuple[int, float]] = {}

    def add(self, aggregate: Aggregate, received_time_s: float) -> None:
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
        count, last_s = self.stored_by_unit.get(aggregate.unit_id, (0, received_time_s))
        self.stored_by_unit[aggregate.unit_id] = (count + 1, max(last_s, received_time_s))

    def write(self, cursor: sqlite3.Cursor) -> None:
        cursor.executemany(_INSERT_LANE, self.lanes)
        cursor.executemany(_INSERT_LINE, self.lines)
        cursor.executemany(_INSERT_PHASE, self.phases)
        cursor.executemany(_INSERT_WARNING, self.warnings)
        cursor.executemany(_INSERT_MOVEMENT, self.movements)


def _class_counts(counts_by_class: dict[str, int]) -> tuple[int, ...]:
    known = tuple(counts_by_class.get(name, 0) for name in CLASS_COLUMNS)
    other = sum(count for name, count in counts_by_class.items() if name not in CLASS_COLUMNS)
    return (*known, other)
