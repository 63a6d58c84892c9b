"""Durable store-and-forward outbox for uplink records, on a Redis Stream.

Records wait in the stream until the centre link confirms them (ack deletes them), so a backhaul
outage loses nothing. The stream is capped at about max_records (XADD MAXLEN ~, which trims whole
stream nodes at a time and so may keep somewhat more); trimming is silent in Redis, so the append
script compares XLEN before and after and adds the difference to a counter key.

Delivery is at least once: a record whose XADD reached Redis but whose reply was lost is kept in
memory and appended again, so receivers should de-duplicate (every message carries unit_id + seq).
How durable the stream is across a Redis restart depends on Redis' own persistence (AOF/RDB).

The outbox also keeps one mark beside the stream, sealed_until: the end of the newest interval the
unit has put into it. It outlives the records (they are deleted once delivered), so a restarted
unit knows where its previous run stopped sealing and can carry on without a gap.

Redis being unreachable (or refusing writes: loading, read-only, out of memory, failed snapshot)
raises OutboxUnavailable naming the URL. BufferedOutbox keeps such records in a bounded in-memory
queue, in order, and moves them into the stream once Redis answers again.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import MasterDownError
from redis.retry import Retry

log = logging.getLogger(__name__)

T = TypeVar("T")

PAYLOAD_FIELD = b"payload"

# XLEN before and after the capped XADD, in one atomic step; the difference is what XADD trimmed.
_APPEND_SCRIPT = """
local before = redis.call('XLEN', KEYS[1])
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'payload', ARGV[2])
local trimmed = before + 1 - redis.call('XLEN', KEYS[1])
if trimmed > 0 then
  redis.call('INCRBY', KEYS[2], trimmed)
end
return id
"""

# Errors that mean "cannot store right now" rather than a bad request. BusyLoadingError and
# AuthenticationError are ConnectionErrors already; MISCONF (snapshot failing) has no class.
_UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (
    redis.ConnectionError,
    redis.TimeoutError,
    redis.ReadOnlyError,
    redis.OutOfMemoryError,
    MasterDownError,
)
_UNAVAILABLE_REPLY_CODES = ("MISCONF", "BUSY ")


class OutboxUnavailable(RuntimeError):
    """Redis cannot take or give records right now; the message names the Redis URL."""

    def __init__(self, url: str, operation: str, cause: BaseException | str) -> None:
        super().__init__(f"uplink outbox at {url} is unavailable ({operation}): {cause}")
        self.url = url


class Outbox:
    """A capped Redis Stream of uplink records, oldest first."""

    def __init__(self, redis_client: redis.Redis, unit_id: str, max_records: int, url: str | None = None) -> None:
        if max_records < 1:
            raise ValueError(f"max_records must be at least 1, got {max_records}")
        kwargs = redis_client.connection_pool.connection_kwargs
        if kwargs.get("decode_responses"):
            raise ValueError("the outbox needs a Redis client with decode_responses=False (payloads are bytes)")
        self.client = redis_client
        self.unit_id = unit_id
        self.max_records = max_records
        self.url = redact_url(url) if url else _url_of(kwargs)
        self.stream_key = f"rsu:{unit_id}:uplink:outbox"
        self.trimmed_key = f"rsu:{unit_id}:uplink:outbox:trimmed"
        self.sealed_until_key = f"rsu:{unit_id}:uplink:sealed_until_s"
        self._append_script = redis_client.register_script(_APPEND_SCRIPT)

    @classmethod
    def from_url(cls, url: str, unit_id: str, max_records: int, timeout_s: float = 1.0, retries: int = 1) -> Outbox:
        """An outbox with short timeouts and few retries, so an outage costs the caller little time."""
        client = redis.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries),
        )
        return cls(client, unit_id, max_records, url=url)

    def append(self, payload: bytes) -> str:
        """Store one record; returns its stream entry id. Raises OutboxUnavailable."""
        with self._guard("append"):
            entry_id = self._append_script(keys=[self.stream_key, self.trimmed_key], args=[self.max_records, payload])
        return _text(entry_id)

    def peek(self, count: int) -> list[tuple[str, bytes]]:
        """Up to count records, oldest first, without removing them."""
        with self._guard("peek"):
            # decode_responses=False (checked in __init__): ids and fields come back as bytes.
            entries = cast(list[tuple[bytes, dict[bytes, bytes]]], self.client.xrange(self.stream_key, count=count))
        return [(_text(entry_id), fields[PAYLOAD_FIELD]) for entry_id, fields in entries]

    def ack(self, entry_id: str) -> bool:
        """Remove a delivered record; False if it was already gone (acked or trimmed)."""
        with self._guard("ack"):
            return bool(self.client.xdel(self.stream_key, entry_id))

    def backlog(self) -> int:
        with self._guard("backlog"):
            return int(self.client.xlen(self.stream_key))

    def trimmed_total(self) -> int:
        """Records dropped unsent because the stream reached max_records."""
        with self._guard("trimmed_total"):
            value = self.client.get(self.trimmed_key)
        return int(value) if value is not None else 0

    def mark_sealed_until(self, time_s: float) -> None:
        """Remember that every interval ending at or before time_s is in the stream (or delivered)."""
        with self._guard("mark_sealed_until"):
            self.client.set(self.sealed_until_key, repr(float(time_s)))

    def sealed_until(self) -> float | None:
        """The last mark_sealed_until time (a previous run's, after a restart); None if never marked."""
        with self._guard("sealed_until"):
            value = cast(bytes | None, self.client.get(self.sealed_until_key))
        return float(value) if value is not None else None

    @contextmanager
    def _guard(self, operation: str) -> Iterator[None]:
        try:
            yield
        except _UNAVAILABLE_ERRORS as exc:
            raise OutboxUnavailable(self.url, operation, exc) from exc
        except redis.ResponseError as exc:
            if str(exc).startswith(_UNAVAILABLE_REPLY_CODES):
                raise OutboxUnavailable(self.url, operation, exc) from exc
            raise


class BufferedOutbox:
    """An Outbox that keeps records in a bounded in-memory queue while Redis is unavailable.

    Order is preserved: while anything is buffered, new records queue behind it. When the buffer is
    full the oldest buffered record is dropped and counted in dropped_total. After a failure Redis
    is left alone for retry_interval_s (append buffers, flush_buffer does nothing, peek / ack /
    backlog raise OutboxUnavailable at once), so a loop calling them does not pay a connection
    timeout per call during an outage. flush_buffer(force=True) tries regardless.
    """

    def __init__(
        self,
        outbox: Outbox,
        max_buffered: int = 10_000,
        retry_interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_buffered < 1:
            raise ValueError(f"max_buffered must be at least 1, got {max_buffered}")
        self.outbox = outbox
        self.retry_interval_s = retry_interval_s
        self._clock = clock
        self._buffer: deque[bytes] = deque()
        self._max_buffered = max_buffered
        self._retry_at: float | None = None  # None while Redis is believed to be up
        self.dropped_total = 0
        self.last_error: str | None = None

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    @property
    def available(self) -> bool:
        """False from a failure until Redis answers again."""
        return self._retry_at is None

    def append(self, payload: bytes) -> str | None:
        """The stream entry id, or None when the record was kept in memory instead."""
        self.flush_buffer()
        if not self._buffer and self._may_try():
            try:
                entry_id = self.outbox.append(payload)
            except OutboxUnavailable as exc:
                self._went_down(exc)
            else:
                self._came_back()
                return entry_id
        self._keep(payload)
        return None

    def flush_buffer(self, force: bool = False) -> int:
        """Move buffered records into Redis in order; returns how many moved. Stops at the first failure."""
        if not self._buffer or not (force or self._may_try()):
            return 0
        moved = 0
        while self._buffer:
            try:
                self.outbox.append(self._buffer[0])
            except OutboxUnavailable as exc:
                self._went_down(exc)
                break
            self._buffer.popleft()
            moved += 1
        if moved:
            self._came_back()
        return moved

    def peek(self, count: int) -> list[tuple[str, bytes]]:
        return self._call("peek", lambda: self.outbox.peek(count))

    def ack(self, entry_id: str) -> bool:
        return self._call("ack", lambda: self.outbox.ack(entry_id))

    def backlog(self) -> int:
        """Records in Redis; buffered ones are counted by buffered."""
        return self._call("backlog", self.outbox.backlog)

    def trimmed_total(self) -> int:
        return self._call("trimmed_total", self.outbox.trimmed_total)

    def mark_sealed_until(self, time_s: float) -> None:
        """Outbox.mark_sealed_until; call it only while nothing is buffered, or the mark runs ahead."""
        self._call("mark_sealed_until", lambda: self.outbox.mark_sealed_until(time_s))

    def sealed_until(self) -> float | None:
        return self._call("sealed_until", self.outbox.sealed_until)

    def _call(self, operation: str, call: Callable[[], T]) -> T:
        if not self._may_try():
            raise OutboxUnavailable(self.outbox.url, operation, f"not retried yet after: {self.last_error}")
        try:
            result = call()
        except OutboxUnavailable as exc:
            self._went_down(exc)
            raise
        self._came_back()
        return result

    def _may_try(self) -> bool:
        return self._retry_at is None or self._clock() >= self._retry_at

    def _keep(self, payload: bytes) -> None:
        if len(self._buffer) >= self._max_buffered:
            self._buffer.popleft()
            self.dropped_total += 1
            if self.dropped_total == 1 or self.dropped_total % 1000 == 0:
                log.error(
                    "uplink buffer full (%d records): dropped %d oldest so far", self._max_buffered, self.dropped_total
                )
        self._buffer.append(payload)

    def _went_down(self, exc: OutboxUnavailable) -> None:
        if self._retry_at is None:
            log.warning("%s; keeping records in memory (up to %d)", exc, self._max_buffered)
        self.last_error = str(exc)
        self._retry_at = self._clock() + self.retry_interval_s

    def _came_back(self) -> None:
        if self._retry_at is not None:
            log.info("uplink outbox at %s is available again", self.outbox.url)
        self._retry_at = None
        self.last_error = None


def redact_url(url: str) -> str:
    """The URL without its password, fit for logs and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = f"{parts.username}:***@" if parts.username else ":***@"
    host = parts.hostname or ""
    netloc = f"{user}{host}:{parts.port}" if parts.port else f"{user}{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _url_of(kwargs: dict[str, Any]) -> str:
    """A password-free redis:// URL for a client's connection settings."""
    if kwargs.get("path"):
        return f"unix://{kwargs['path']}?db={kwargs.get('db', 0)}"
    return f"redis://{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
