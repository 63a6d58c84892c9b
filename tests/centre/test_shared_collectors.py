"""Several collectors share the units' topics (MQTT v5 shared subscription) and one PostgreSQL: one
SIGKILLed mid-run and restarted by its supervisor loses nothing, and nothing is stored twice.

On a private Mosquitto, so the kill and the backlog touch nobody else's broker. Mosquitto keeps
handing the killed collector's share to its persistent session (it does not pass it to the
others); the restarted collector, same client id, gets that session back with everything unacked.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from rsu.centre.collector import shared_filter, topic_of_filter
from rsu.centre.store import AggregateStore
from rsu_tools.testing.mosquitto import EphemeralMosquitto
from tests.centre.conftest import Publisher, fresh_postgres_schema, make_aggregate, wait_until

pytestmark = pytest.mark.services

REPO_ROOT = Path(__file__).resolve().parents[2]
UNITS = [f"rsu-share-{index:02d}" for index in range(10)]
INTERVALS_PER_UNIT = 40  # 400 aggregates


def test_a_shared_filter_names_the_group_and_keeps_the_topic_the_units_publish_on() -> None:
    shared = shared_filter("centre", "centre/+/aggregates")

    assert shared == "$share/centre/centre/+/aggregates"
    assert topic_of_filter(shared) == "centre/+/aggregates"
    with pytest.raises(ValueError, match="share group"):
        shared_filter("a/b", "centre/+/aggregates")


class _Collector:
    """`rsu centre` in its own process, as a supervisor (systemd Restart=always) runs it."""

    def __init__(self, name: str, broker_port: int, db_url: str, log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._command = [
            sys.executable,
            "-c",
            "import sys; from rsu.centre.collector import main; sys.exit(main())",
            "--db",
            f"{db_url}&application_name=collector-{name}",
            "--port",
            str(broker_port),
            "--share-group",
            "centre",
            "--client-id",
            f"collector-{name}",
            "--session-expiry-s",
            "300",
        ]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
            self.process = subprocess.Popen(self._command, stdout=log, stderr=subprocess.STDOUT, env=env)

    def connected_count(self) -> int:
        return self.log().count("connected to centre MQTT broker")

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)
        self.process.wait(20)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.signal(signal.SIGTERM)


@pytest.fixture
def broker() -> Iterator[EphemeralMosquitto]:
    server = EphemeralMosquitto(name="shared-centre", max_queued_messages=10_000)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_two_collectors_share_the_load_and_one_killed_loses_nothing(
    broker: EphemeralMosquitto, postgres_server: str, tmp_path: Path
) -> None:
    with fresh_postgres_schema(postgres_server) as db_url:
        AggregateStore(db_url).close()  # migrate once before the collectors start
        first, second = (_Collector(name, broker.port, db_url, tmp_path) for name in ("a", "b"))
        collectors = (first, second)
        try:
            for collector in collectors:
                collector.start()
            assert wait_until(lambda: all(c.connected_count() == 1 for c in collectors), 20.0), [
                c.log() for c in collectors
            ]
            published = threading.Event()
            third_sent = threading.Event()

            def publish_all() -> None:
                publisher = Publisher(broker.host, broker.port)
                try:
                    for seq in range(INTERVALS_PER_UNIT):
                        if seq == INTERVALS_PER_UNIT // 3:
                            third_sent.set()
                        for unit in UNITS:
                            publisher.send(f"centre/{unit}/aggregates", make_aggregate(unit, seq).to_json())
                        time.sleep(0.02)
                finally:
                    publisher.close()
                    published.set()

            sender = threading.Thread(target=publish_all, daemon=True)
            sender.start()
            assert third_sent.wait(30.0)
            with psycopg.connect(db_url) as blocker:
                # Hold the collectors' inserts until the first one is caught with a batch received
                # but not committed, hence not acknowledged: then kill it (no DISCONNECT).
                blocker.execute("LOCK TABLE intervals IN SHARE ROW EXCLUSIVE MODE")
                assert wait_until(lambda: _waiting_on_lock(blocker, "collector-a"), 20.0)
                first.signal(signal.SIGKILL)
            time.sleep(1.0)  # the publisher goes on; the broker keeps the killed one's share
            first.start()  # its supervisor restarts it: same client id, same session
            assert published.wait(60.0)

            with AggregateStore(db_url) as store:
                total = len(UNITS) * INTERVALS_PER_UNIT
                assert wait_until(lambda: store.query("SELECT COUNT(*) FROM intervals")[0][0] == total, 30.0), (
                    store.query("SELECT COUNT(*) FROM intervals"),
                    first.log()[-2000:],
                )
                for unit in UNITS:
                    assert [row.seq for row in store.intervals(unit)] == list(range(INTERVALS_PER_UNIT)), unit
                    assert store.counters(unit).stored == INTERVALS_PER_UNIT
                    assert store.counters(unit).seq_conflicts == 0
                # Every interval once; a message the killed collector committed but had not acknowledged
                # comes back and is counted as a duplicate, never stored twice.
                assert store.query("SELECT COUNT(DISTINCT (unit_id, interval_s, seq)) FROM intervals") == [(total,)]
        finally:
            for collector in collectors:
                collector.stop()
        assert "(session resumed)" in first.log(), "the restarted collector took its session back"
        stored_by = {c.name: _stored(c.log()) for c in collectors}
        assert all(count > 0 for count in stored_by.values()), stored_by


def _waiting_on_lock(connection: psycopg.Connection[tuple[object, ...]], application_name: str) -> bool:
    rows = connection.execute(
        "SELECT 1 FROM pg_stat_activity WHERE application_name = %s AND wait_event_type = 'Lock'",
        (application_name,),
    ).fetchall()
    return bool(rows)


def _stored(log: str) -> int:
    """What the last run of a collector says it stored, from its final line."""
    finals = [line for line in log.splitlines() if line.startswith("centre: received")]
    return int(finals[-1].split("stored ")[1].split(",")[0]) if finals else 0
