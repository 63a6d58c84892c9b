"""The two databases under the centre's store: an SQLite file and a PostgreSQL server.

A backend gives the store transactions (a cursor with `?` placeholders on both), read queries and
its SQL dialect, and turns the driver's errors into the store's two kinds: StoreIntegrityError (a
record breaks a constraint and never will be stored) and StoreUnavailable (the database cannot be
written now: retry). Chosen by target: `postgresql://...` (or `postgres://`), `sqlite:///path`,
or a bare path meaning SQLite.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from rsu.centre.schema import POSTGRESQL, SQLITE, Cursor, Dialect


class StoreError(Exception):
    """The store could not do what was asked."""


class StoreIntegrityError(StoreError):
    """A record breaks a constraint of the tables (e.g. a lane listed twice): it will never be stored."""


class StoreUnavailable(StoreError):
    """The database cannot be written now (server down, disk full, locked): nothing was committed."""


class Backend(Protocol):
    dialect: Dialect
    label: str

    def transaction(self) -> Any:
        """Context manager: a cursor inside BEGIN ... COMMIT (ROLLBACK on any error), writers serialised
        where the database needs it; driver errors come out as StoreError."""
        ...

    def query(self, sql: str, parameters: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    def migration_lock(self, cursor: Cursor) -> None:
        """Inside a transaction: keep other collectors out of the schema until it commits."""
        ...

    def after_migrations(self) -> None: ...

    def close(self) -> None: ...


def is_postgresql(target: str | Path) -> bool:
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


def sqlite_path(target: str | Path) -> Path:
    """The file of an SQLite target: sqlite:///relative/path, sqlite:////absolute/path or a bare path."""
    if isinstance(target, Path):
        return target
    if target.startswith("sqlite:"):
        if not target.startswith("sqlite:///"):
            raise ValueError(f"an SQLite URL is sqlite:///path (three slashes), not {target!r}")
        return Path(target[len("sqlite:///") :])
    if "://" in target:
        raise ValueError(f"unknown database URL {target!r}: use postgresql://... or sqlite:///path")
    return Path(target)


def open_backend(target: str | Path) -> Backend:
    if is_postgresql(target):
        return PostgresBackend(str(target))
    return SqliteBackend(sqlite_path(target))


class SqliteBackend:
    """SQLite in WAL mode; one connection guarded by a lock (SQLite serialises writers anyway)."""

    dialect = SQLITE

    def __init__(self, path: Path) -> None:
        self.path = path
        self.label = str(path)
        self._connection = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._connection.execute("PRAGMA journal_mode=WAL")
            # FULL: the collector acknowledges a message to the broker only after the commit,
            # so a commit must survive a power cut or the interval is lost for good.
            self._connection.execute("PRAGMA synchronous=FULL")
            # Off while migrating (rebuilding a table is drop and rename); on from after_migrations.
            self._connection.execute("PRAGMA foreign_keys=OFF")

    @contextmanager
    def transaction(self) -> Iterator[Cursor]:
        with self._lock:
            cursor = _SqliteCursor(self._connection.cursor())
            try:
                cursor.execute("BEGIN IMMEDIATE")
                yield cursor
                cursor.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise _sqlite_error(exc) from exc
            except BaseException:
                self._rollback()
                raise

    def _rollback(self) -> None:
        if self._connection.in_transaction:
            self._connection.execute("ROLLBACK")

    def query(self, sql: str, parameters: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return list(self._connection.execute(sql, parameters).fetchall())
            except sqlite3.Error as exc:
                raise _sqlite_error(exc) from exc

    def migration_lock(self, cursor: Cursor) -> None:
        pass  # BEGIN IMMEDIATE already holds the database's write lock

    def after_migrations(self) -> None:
        with self._lock:
            problems = self._connection.execute("PRAGMA foreign_key_check").fetchall()
            if problems:
                raise StoreIntegrityError(f"{self.label}: rows without their interval after migrating: {problems[:5]}")
            self._connection.execute("PRAGMA foreign_keys=ON")

    def close(self) -> None:
        with self._lock:
            self._connection.close()


class _SqliteCursor:
    """An sqlite3 cursor behind the store's Cursor protocol."""

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    def execute(self, sql: str, parameters: Sequence[Any] = ()) -> _SqliteCursor:
        self._cursor.execute(sql, parameters)
        return self

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._cursor.executemany(sql, rows)

    def fetchone(self) -> tuple[Any, ...] | None:
        row = self._cursor.fetchone()
        return None if row is None else tuple(row)

    def fetchall(self) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in self._cursor.fetchall()]

    def insert_rows(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        placeholders = ", ".join("?" for _ in columns)
        self._cursor.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})", rows)


def _sqlite_error(exc: sqlite3.Error) -> StoreError:
    if isinstance(exc, sqlite3.IntegrityError):
        return StoreIntegrityError(str(exc))
    return StoreUnavailable(str(exc))


_PLACEHOLDER = re.compile(r"\?")


def _pg_sql(sql: str) -> str:
    # The store's SQL uses SQLite's `?`; psycopg wants `%s` (and a literal % doubled).
    return _PLACEHOLDER.sub("%s", sql.replace("%", "%%"))


class _PgCursor:
    """A psycopg cursor behind the store's Cursor protocol (`?` placeholders)."""

    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor

    @property
    def rowcount(self) -> int:
        return int(self._cursor.rowcount)

    def execute(self, sql: str, parameters: Sequence[Any] = ()) -> _PgCursor:
        if parameters:
            self._cursor.execute(_pg_sql(sql), tuple(parameters))
        else:
            self._cursor.execute(sql)
        return self

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self._cursor.executemany(_pg_sql(sql), rows)

    def fetchone(self) -> tuple[Any, ...] | None:
        row = self._cursor.fetchone()
        return None if row is None else tuple(row)

    def fetchall(self) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in self._cursor.fetchall()]

    def insert_rows(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        # COPY: one stream per table instead of a statement per row (5x faster for a batch's lanes,
        # lines and phases); a key it breaks fails the transaction like an INSERT would.
        if not rows:
            return
        with self._cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)


# Any constant: the advisory lock the collectors take while migrating one database.
_MIGRATION_LOCK_KEY = 0x52535543  # "RSUC"


class PostgresBackend:
    """One PostgreSQL connection (autocommit outside the store's explicit transactions), guarded by a
    lock; reconnects on the next call after the server went away."""

    dialect = POSTGRESQL

    def __init__(self, url: str, connect_timeout_s: int = 10) -> None:
        import psycopg  # the driver only where PostgreSQL is used

        self._psycopg = psycopg
        self.url = url
        self.label = _without_password(url)
        self._connect_timeout_s = connect_timeout_s
        self._lock = threading.Lock()
        self._connection: Any = None
        with self._lock:
            self._ensure_connection()

    def _ensure_connection(self) -> Any:
        connection = self._connection
        if connection is None or connection.closed or connection.broken:
            if connection is not None:
                connection.close()
            self._connection = None
            try:
                self._connection = self._psycopg.connect(
                    self.url, autocommit=True, connect_timeout=self._connect_timeout_s
                )
            except self._psycopg.Error as exc:
                raise StoreUnavailable(f"cannot connect to {self.label}: {exc}") from exc
        return self._connection

    @contextmanager
    def transaction(self) -> Iterator[Cursor]:
        psycopg = self._psycopg
        with self._lock:
            connection = self._ensure_connection()
            try:
                with connection.transaction(), connection.cursor() as cursor:
                    yield _PgCursor(cursor)
            except psycopg.IntegrityError as exc:
                raise StoreIntegrityError(str(exc)) from exc
            except psycopg.Error as exc:
                raise StoreUnavailable(str(exc)) from exc

    def query(self, sql: str, parameters: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self.transaction() as cursor:
            return cursor.execute(sql, parameters).fetchall()

    def migration_lock(self, cursor: Cursor) -> None:
        cursor.execute(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK_KEY})")

    def after_migrations(self) -> None:
        pass

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))
