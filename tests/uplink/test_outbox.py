"""The Redis Streams outbox against the real Redis (db 15), and its in-memory fallback."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from rsu.uplink.outbox import BufferedOutbox, Outbox, OutboxUnavailable, redact_url
from rsu_tools.testing.tcp_proxy import ByteCountingProxy

pytestmark = pytest.mark.services

UNIT = "rsu-test-001"


def fast_client(url: str) -> redis.Redis:
    """No retries and short timeouts: an outage shows at once instead of after seconds of back-off."""
    return redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    connection = fast_client(redis_url)
    assert connection.connection_pool.connection_kwargs["db"] == 15, "tests only ever touch db 15"
    connection.flushdb()
    yield connection
    connection.flushdb()
    connection.close()


@pytest.fixture
def proxy(redis_url: str) -> Iterator[ByteCountingProxy]:
    parts = urlsplit(redis_url)
    forwarder = ByteCountingProxy(parts.hostname or "127.0.0.1", parts.port or 6379)
    forwarder.start()
    yield forwarder
    forwarder.stop()


def test_append_and_peek_preserve_order(client: redis.Redis) -> None:
    outbox = Outbox(client, UNIT, max_records=1000)
    ids = [outbox.append(f"record {i}".encode()) for i in range(20)]
    assert ids == sorted(ids, key=lambda entry: tuple(int(part) for part in entry.split("-")))
    peeked = outbox.peek(5)
    assert [payload for _, payload in peeked] == [f"record {i}".encode() for i in range(5)]
    assert [entry_id for entry_id, _ in peeked] == ids[:5]
    assert outbox.backlog() == 20
    assert outbox.trimmed_total() == 0


def test_binary_payloads_round_trip(client: redis.Redis) -> None:
    outbox = Outbox(client, UNIT, max_records=10)
    payload = bytes(range(256)) * 4
    outbox.append(payload)
    assert outbox.peek(1)[0][1] == payload


def test_ack_removes_delivered_records(client: redis.Redis) -> None:
    outbox = Outbox(client, UNIT, max_records=1000)
    ids = [outbox.append(f"{i}".encode()) for i in range(3)]
    assert outbox.ack(ids[0]) is True
    assert outbox.ack(ids[0]) is False  # already gone
    assert [payload for _, payload in outbox.peek(10)] == [b"1", b"2"]
    assert outbox.backlog() == 2


def test_trimming_is_counted(client: redis.Redis) -> None:
    # MAXLEN ~ trims whole stream nodes (100 entries by default), so the backlog may exceed the cap
    # by up to a node; what it drops must all be counted.
    outbox = Outbox(client, UNIT, max_records=10)
    appended = 450
    for i in range(appended):
        outbox.append(f"{i}".encode())
    backlog, trimmed = outbox.backlog(), outbox.trimmed_total()
    assert trimmed > 0
    assert backlog + trimmed == appended
    assert 10 <= backlog <= 10 + 200
    # The newest records are the ones kept, oldest first.
    assert outbox.peek(1)[0][1] == f"{trimmed}".encode()


def test_units_do_not_share_a_stream(client: redis.Redis) -> None:
    first, second = Outbox(client, "unit-a", 100), Outbox(client, "unit-b", 100)
    first.append(b"a")
    assert (first.backlog(), second.backlog()) == (1, 0)


def test_unreachable_redis_raises_naming_the_url() -> None:
    outbox = Outbox(fast_client("redis://127.0.0.1:6390/15"), UNIT, max_records=100)
    for operation in (lambda: outbox.append(b"x"), lambda: outbox.peek(1), outbox.backlog, outbox.trimmed_total):
        with pytest.raises(OutboxUnavailable, match=r"redis://127\.0\.0\.1:6390/15") as caught:
            operation()
        assert caught.value.url == "redis://127.0.0.1:6390/15"


def test_from_url_never_shows_the_password() -> None:
    outbox = Outbox.from_url("redis://:hunter2@127.0.0.1:6390/15", UNIT, 100, timeout_s=0.2, retries=0)
    with pytest.raises(OutboxUnavailable) as caught:
        outbox.append(b"x")
    assert "hunter2" not in str(caught.value)
    assert "127.0.0.1:6390" in str(caught.value)
    assert redact_url("redis://user:pw@host:1/2") == "redis://user:***@host:1/2"


def test_rejects_a_decoding_client() -> None:
    with pytest.raises(ValueError, match="decode_responses"):
        Outbox(redis.Redis(port=6390, decode_responses=True), UNIT, 100)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_buffered_outbox_keeps_records_through_an_outage_and_flushes_in_order(
    client: redis.Redis, proxy: ByteCountingProxy, redis_url: str
) -> None:
    via_proxy = fast_client(f"redis://127.0.0.1:{proxy.port}/15")
    clock = FakeClock()
    outbox = BufferedOutbox(Outbox(via_proxy, UNIT, max_records=1000), max_buffered=100, clock=clock)
    assert outbox.append(b"0") is not None

    proxy.stop()  # Redis goes away
    assert [outbox.append(f"{i}".encode()) for i in range(1, 6)] == [None] * 5
    assert (outbox.buffered, outbox.available) == (5, False)
    assert outbox.last_error is not None and f"127.0.0.1:{proxy.port}" in outbox.last_error
    assert outbox.flush_buffer() == 0

    proxy.start()  # and comes back; appends still queue behind the buffer until it is flushed
    assert outbox.append(b"6") is None  # within the retry interval: not even tried
    clock.now += 1.0
    entry_id = outbox.append(b"7")  # retries: flushes the buffer first, then stores this one
    assert entry_id is not None
    assert (outbox.buffered, outbox.available, outbox.last_error) == (0, True, None)
    stored = Outbox(client, UNIT, max_records=1000).peek(100)
    assert [payload for _, payload in stored] == [f"{i}".encode() for i in range(8)]
    via_proxy.close()


def test_explicit_flush_after_redis_returns(client: redis.Redis, proxy: ByteCountingProxy) -> None:
    via_proxy = fast_client(f"redis://127.0.0.1:{proxy.port}/15")
    outbox = BufferedOutbox(Outbox(via_proxy, UNIT, max_records=1000), clock=FakeClock())
    proxy.stop()
    for i in range(3):
        outbox.append(f"{i}".encode())
    with pytest.raises(OutboxUnavailable, match=f"127.0.0.1:{proxy.port}"):
        outbox.peek(10)  # within the retry interval: fails at once, without a connection attempt
    proxy.start()
    assert outbox.flush_buffer() == 0  # still within the retry interval
    assert outbox.flush_buffer(force=True) == 3
    assert [payload for _, payload in outbox.peek(10)] == [b"0", b"1", b"2"]
    assert outbox.backlog() == 3
    assert outbox.ack(outbox.peek(1)[0][0]) is True
    via_proxy.close()


def test_buffer_is_bounded_and_drops_the_oldest() -> None:
    outbox = BufferedOutbox(Outbox(fast_client("redis://127.0.0.1:6390/15"), UNIT, 100), max_buffered=3)
    for i in range(5):
        assert outbox.append(f"{i}".encode()) is None
    assert (outbox.buffered, outbox.dropped_total) == (3, 2)
    assert list(outbox._buffer) == [b"2", b"3", b"4"]
