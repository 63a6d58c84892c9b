"""The store's schema is versioned and migrated on opening; the database is chosen by target."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import psycopg
import pytest

from rsu.centre.schema import LATEST_VERSION, MIGRATIONS, SQLITE, SchemaTooNew
from rsu.centre.store import AddResult, AggregateStore, StoreUnavailable
from tests.centre.conftest import T0, Database, fresh_postgres_schema, make_aggregate

# The SQLite shape before the interval length joined the key (commit f8b0f21), written out here so
# the test builds an old database without the code that migrates it: (unit_id, seq) keys, no
# headways, no force-offs / arrivals / split failures, no turning movements, no schema_version.
_COUNTS = ", ".join(
    f"{name} INTEGER NOT NULL DEFAULT 0" for name in ("car", "truck", "bus", "motorcycle", "bicycle", "pedestrian")
)
LEGACY_SCHEMA = f"""
CREATE TABLE intervals (
    id INTEGER PRIMARY KEY, unit_id TEXT NOT NULL, seq INTEGER NOT NULL, interval_start_s REAL NOT NULL,
    interval_s REAL NOT NULL, publish_time_s REAL NOT NULL, received_time_s REAL NOT NULL,
    stored_time_s REAL NOT NULL, detector_valid_ratio REAL NOT NULL, UNIQUE (unit_id, seq));
CREATE INDEX intervals_by_start ON intervals (unit_id, interval_start_s);
CREATE TABLE lane_aggregates (
    unit_id TEXT NOT NULL, seq INTEGER NOT NULL, interval_start_s REAL NOT NULL, interval_s REAL NOT NULL,
    lane_id TEXT NOT NULL, {_COUNTS}, other INTEGER NOT NULL DEFAULT 0, mean_speed_mps REAL, speed_p85_mps REAL,
    occupancy_ratio REAL NOT NULL, mean_queue_m REAL NOT NULL, max_queue_m REAL NOT NULL,
    mean_queue_vehicles REAL NOT NULL, PRIMARY KEY (unit_id, seq, lane_id),
    FOREIGN KEY (unit_id, seq) REFERENCES intervals (unit_id, seq));
CREATE TABLE line_counts (
    unit_id TEXT NOT NULL, seq INTEGER NOT NULL, interval_start_s REAL NOT NULL, interval_s REAL NOT NULL,
    line_id TEXT NOT NULL, {_COUNTS}, other INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (unit_id, seq, line_id),
    FOREIGN KEY (unit_id, seq) REFERENCES intervals (unit_id, seq));
CREATE TABLE phase_aggregates (
    unit_id TEXT NOT NULL, seq INTEGER NOT NULL, interval_start_s REAL NOT NULL, interval_s REAL NOT NULL,
    signal_group TEXT NOT NULL, green_time_s REAL NOT NULL, green_starts INTEGER NOT NULL,
    gap_outs INTEGER NOT NULL, max_outs INTEGER NOT NULL, PRIMARY KEY (unit_id, seq, signal_group),
    FOREIGN KEY (unit_id, seq) REFERENCES intervals (unit_id, seq));
CREATE TABLE warnings_by_kind (
    unit_id TEXT NOT NULL, seq INTEGER NOT NULL, interval_start_s REAL NOT NULL, interval_s REAL NOT NULL,
    kind TEXT NOT NULL, count INTEGER NOT NULL, PRIMARY KEY (unit_id, seq, kind),
    FOREIGN KEY (unit_id, seq) REFERENCES intervals (unit_id, seq));
CREATE TABLE unit_counters (
    unit_id TEXT PRIMARY KEY, stored INTEGER NOT NULL DEFAULT 0, duplicates INTEGER NOT NULL DEFAULT 0,
    seq_conflicts INTEGER NOT NULL DEFAULT 0, last_received_time_s REAL);
CREATE TABLE seq_conflicts (
    unit_id TEXT NOT NULL, seq INTEGER NOT NULL, interval_start_s REAL NOT NULL, received_time_s REAL NOT NULL,
    payload TEXT NOT NULL);
"""


def _legacy_database(path: Path) -> None:
    """An old centre database holding two minutes of unit u1, as the old collector wrote them."""
    with sqlite3.connect(path) as old:
        old.executescript(LEGACY_SCHEMA)
        for seq in (0, 1):
            start_s = T0 + 60 * seq
            old.execute(
                "INSERT INTO intervals (unit_id, seq, interval_start_s, interval_s, publish_time_s, received_time_s, "
                "stored_time_s, detector_valid_ratio) VALUES ('u1', ?, ?, 60, ?, ?, ?, 1.0)",
                (seq, start_s, start_s + 60.1, start_s + 61, start_s + 61),
            )
            old.execute(
                "INSERT INTO lane_aggregates (unit_id, seq, interval_start_s, interval_s, lane_id, car, truck, "
                "occupancy_ratio, mean_queue_m, max_queue_m, mean_queue_vehicles) "
                "VALUES ('u1', ?, ?, 60, 'north_left', ?, 1, 0.2, 3.0, 8.0, 0.5)",
                (seq, start_s, 10 + seq),
            )
            old.execute(
                "INSERT INTO phase_aggregates (unit_id, seq, interval_start_s, interval_s, signal_group, "
                "green_time_s, green_starts, gap_outs, max_outs) VALUES ('u1', ?, ?, 60, '2', 24.0, 1, 1, 0)",
                (seq, start_s),
            )
        old.execute("INSERT INTO unit_counters (unit_id, stored, duplicates) VALUES ('u1', 2, 5)")


def test_a_database_made_before_the_interval_length_key_is_migrated_keeping_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "old-centre.sqlite"
    _legacy_database(path)

    with AggregateStore(path) as store:
        assert store.migrations_applied == [m.version for m in MIGRATIONS]
        assert store.schema_version() == LATEST_VERSION
        assert [(row.seq, row.interval_start_s, row.observed_s) for row in store.intervals("u1")] == [
            (0, T0, None),
            (1, T0 + 60, None),
        ]
        assert store.query("SELECT seq, car, truck, mean_headway_s FROM lane_aggregates ORDER BY seq") == [
            (0, 10, 1, None),
            (1, 11, 1, None),
        ]
        assert store.query("SELECT seq, green_time_s, force_offs, split_failures FROM phase_aggregates") == [
            (0, 24.0, 0, 0),
            (1, 24.0, 0, 0),
        ]
        assert store.counters("u1").duplicates == 5
        # The new key: seq 1 of the 15-minute series is not a repeat of seq 1 of the minutes.
        assert store.add(make_aggregate("u1", 1, interval_s=900.0), 2.0) == AddResult(stored=1)
        assert store.add(make_aggregate("u1", 1), 2.0) == AddResult(duplicates=1)
        assert store.add(make_aggregate("u1", 2), 2.0) == AddResult(stored=1)
        assert store.query("PRAGMA foreign_key_check") == []
        assert store.query("PRAGMA foreign_keys") == [(1,)]

    with sqlite3.connect(path) as engineer:
        unique_keys = [
            sorted(column for (_, _, column) in engineer.execute(f"PRAGMA index_info('{name}')"))
            for (_, name, unique, *_) in engineer.execute("PRAGMA index_list(intervals)")
            if unique
        ]
        assert unique_keys == [["interval_s", "seq", "unit_id"]]


def test_an_unversioned_database_of_the_interval_length_shape_is_adopted(tmp_path: Path) -> None:
    path = tmp_path / "centre.sqlite"
    # The shape main wrote before versioned migrations: version 1's tables, no schema_version.
    with sqlite3.connect(path) as old:
        MIGRATIONS[0].apply(old.cursor(), SQLITE)  # type: ignore[arg-type]
        assert old.execute("SELECT name FROM sqlite_master WHERE name = 'schema_version'").fetchall() == []
    with AggregateStore(path) as store:
        store.add(make_aggregate("u1", 0), 1.0)

    with AggregateStore(path) as reopened:
        assert reopened.migrations_applied == []
        assert reopened.query("SELECT version FROM schema_version ORDER BY version") == [
            (m.version,) for m in MIGRATIONS
        ]
        assert reopened.add(make_aggregate("u1", 0), 2.0) == AddResult(duplicates=1)


def test_a_fresh_database_gets_every_migration_once(database: Database) -> None:
    with AggregateStore(database.target) as store:
        assert store.migrations_applied == [m.version for m in MIGRATIONS]
    with AggregateStore(database.target) as again:
        assert again.migrations_applied == []
        assert again.query("SELECT version, description FROM schema_version ORDER BY version") == [
            (m.version, m.description) for m in MIGRATIONS
        ]


def test_a_database_from_a_newer_rsu_is_refused(database: Database) -> None:
    with AggregateStore(database.target) as store:
        newer = LATEST_VERSION + 1
        if database.backend == "sqlite":
            with sqlite3.connect(database.target) as other:
                other.execute("INSERT INTO schema_version VALUES (?, 'from the future', 0)", (newer,))
        else:
            with psycopg.connect(database.target) as other:
                other.execute("INSERT INTO schema_version VALUES (%s, 'from the future', 0)", (newer,))
        store.close()

    with pytest.raises(SchemaTooNew, match=f"schema version {newer}"):
        AggregateStore(database.target)


def test_collectors_opening_one_postgresql_database_together_migrate_it_once(postgres_server: str) -> None:
    with fresh_postgres_schema(postgres_server) as url:
        applied: list[list[int]] = []
        errors: list[BaseException] = []

        def open_store() -> None:
            try:
                with AggregateStore(url) as store:
                    applied.append(store.migrations_applied)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=open_store) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)

        assert errors == []
        assert sorted(applied, key=len) == [[], [], [], [m.version for m in MIGRATIONS]]


def test_the_target_chooses_the_backend(tmp_path: Path, postgres_server: str) -> None:
    with AggregateStore(str(tmp_path / "bare.sqlite")) as bare:
        assert bare.dialect.name == "sqlite"
    with AggregateStore(f"sqlite:///{tmp_path}/url.sqlite") as by_url:
        assert by_url.dialect.name == "sqlite" and by_url.label == f"{tmp_path}/url.sqlite"
    assert (tmp_path / "bare.sqlite").is_file() and (tmp_path / "url.sqlite").is_file()
    with fresh_postgres_schema(postgres_server) as url, AggregateStore(url) as server:
        assert server.dialect.name == "postgresql"
    with pytest.raises(ValueError, match="unknown database URL"):
        AggregateStore("mysql://centre/db")


def test_a_postgresql_store_reconnects_after_losing_its_connection(postgres_server: str) -> None:
    with fresh_postgres_schema(postgres_server) as url, AggregateStore(url) as store:
        store.add(make_aggregate("u1", 0), 1.0)
        (pid,) = store.query("SELECT pg_backend_pid()")[0]
        with psycopg.connect(postgres_server, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))

        # The write that meets the dead connection stores nothing and says so; the next one works.
        with pytest.raises(StoreUnavailable):
            store.add(make_aggregate("u1", 1), 2.0)
        assert store.add(make_aggregate("u1", 1), 3.0) == AddResult(stored=1)
        assert [row.seq for row in store.intervals("u1")] == [0, 1]
