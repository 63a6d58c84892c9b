"""The pieces the fault tests put together: a unit on its own services, a listener, a centre.

A fault test runs the real unit (every stage a supervised process, the simulated junction in
lock-step) against its own throwaway local broker, Redis and centre broker, so it can stop any of
them without disturbing anyone, and watches it from outside the way a connected vehicle, an
operator and the traffic centre would.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from rsu.centre.collector import CentreCollector
from rsu.centre.store import AggregateStore
from rsu.runtime.stage import RunOptions
from rsu.samples import SAMPLE_SITE
from rsu.unit import Unit
from rsu_contracts.config.model import MqttConfig
from rsu_contracts.topics import Topics
from rsu_tools.testing.mosquitto import EphemeralMosquitto


def wait_until(condition: Callable[[], bool], timeout_s: float, poll_s: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(poll_s)
    return condition()


def interval_boundary_after(time_s: float, interval_s: float) -> float:
    """The first interval boundary at or after time_s."""
    return math.ceil(time_s / interval_s) * interval_s


@dataclass(frozen=True)
class FaultSite:
    path: Path
    unit_id: str
    topics: Topics
    interval_s: float


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_site(
    folder: Path,
    *,
    local_broker: EphemeralMosquitto,
    centre_host: str,
    centre_port: int,
    redis_url: str,
    interval_s: float | None = None,
    outbox_max_records: int | None = None,
) -> FaultSite:
    """A copy of the sample site with its own unit id, brokers and Redis (interval_s None: the site's)."""
    raw: dict[str, Any] = yaml.safe_load(SAMPLE_SITE.read_text())
    unit_id = f"rsu-fault-{uuid.uuid4().hex[:8]}"
    raw["unit_id"] = unit_id
    for key in ("network", "routes"):
        raw["simulation"][key] = str(SAMPLE_SITE.parent / raw["simulation"][key])
    raw["mqtt"] = {"host": local_broker.host, "port": local_broker.port}
    raw["redis"] = {"url": redis_url}
    raw["web"] = {"port": free_port()}  # never the default 8080 another unit may hold
    uplink = raw.setdefault("uplink", {})
    uplink["mqtt"] = {"host": centre_host, "port": centre_port}
    if interval_s is not None:
        uplink["interval_s"] = interval_s
    if outbox_max_records is not None:
        uplink["outbox_max_records"] = outbox_max_records
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "site.yaml"
    path.write_text(yaml.safe_dump(raw))
    return FaultSite(path, unit_id, Topics(unit_id), float(uplink["interval_s"]))


class RunningUnit:
    """The whole unit in lock-step (simulated time runs as fast as the stages go), supervised."""

    def __init__(self, site: FaultSite, sim_epoch_s: float, duration_s: float) -> None:
        self.sim_epoch_s = sim_epoch_s
        self.unit = Unit(site.path, RunOptions(realtime=False, duration_s=duration_s, sim_epoch_s=sim_epoch_s))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._supervise, name="unit-supervisor", daemon=True)
        self._stopped = False

    def start(self) -> None:
        self.unit.preflight()
        self.unit.start()
        self._thread.start()

    def _supervise(self) -> None:
        while not self._stop.is_set():
            self.unit.tick()
            time.sleep(0.1)

    @property
    def world_finished(self) -> bool:
        return self.unit.supervisor.is_completed("world")

    def restarts(self) -> dict[str, int]:
        return {stage.name: stage.restarts for stage in self.unit.supervisor.health()}

    def crash(self) -> None:
        """SIGKILL every stage process at once, like a power cut: nothing gets to clean up."""
        self._stop_supervising()
        for stage in self.unit.supervisor.health():
            pid = self.unit.supervisor.pid(stage.name)
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self.stop()

    def stop(self) -> None:
        """Stop every stage (those still running get the stop flag first); idempotent."""
        self._stop_supervising()
        if not self._stopped:
            self._stopped = True
            self.unit.stop()

    def _stop_supervising(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5.0)


@dataclass
class Heard:
    """What the listener on the unit's local broker heard (times are capture times, epoch seconds)."""

    signal_state_times: list[float] = field(default_factory=list)
    spat_times: list[float] = field(default_factory=list)
    new_warning_times: list[float] = field(default_factory=list)
    # Sensor-sharing messages: the V2X stage sends one per track snapshot it has checked for conflicts.
    objects_times: list[float] = field(default_factory=list)
    # Sizes of the aggregates heard, when the centre topic is on this broker (the demo's setup).
    aggregate_payload_bytes: list[int] = field(default_factory=list)
    # (capture time of the newest signal state at that moment, redis_connected) per health message
    redis_health: list[tuple[float, bool]] = field(default_factory=list)


class LocalListener:
    """A plain paho subscriber on the unit's broker, like a vehicle and an operator's dashboard."""

    def __init__(self, broker: EphemeralMosquitto, topics: Topics) -> None:
        self.topics = topics
        self.heard = Heard()
        self._lock = threading.Lock()
        self._client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"fault-listener-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5,
        )
        self._client.on_message = self._on_message
        self._client.reconnect_delay_set(min_delay=1, max_delay=2)
        self._client.connect(broker.host, broker.port)
        for topic in (
            topics.signal_state,
            topics.spat,
            topics.warnings,
            topics.objects,
            topics.health,
            topics.aggregates,
        ):
            self._client.subscribe(topic, qos=0)
        self._client.loop_start()

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        body = json.loads(message.payload)
        with self._lock:
            heard = self.heard
            if message.topic == self.topics.signal_state:
                heard.signal_state_times.append(body["capture_time_s"])
            elif message.topic == self.topics.spat:
                heard.spat_times.append(body["capture_time_s"])
            elif message.topic == self.topics.warnings:
                if body.get("status") == "new":
                    heard.new_warning_times.append(body["capture_time_s"])
            elif message.topic == self.topics.objects:
                heard.objects_times.append(body["capture_time_s"])
            elif message.topic == self.topics.aggregates:
                heard.aggregate_payload_bytes.append(len(message.payload))
            elif message.topic == self.topics.health:
                newest = heard.signal_state_times[-1] if heard.signal_state_times else 0.0
                heard.redis_health.append((newest, bool(body["redis_connected"])))

    @property
    def newest_time_s(self) -> float:
        """Capture time of the newest signal state: the unit's clock, seen from outside."""
        with self._lock:
            return self.heard.signal_state_times[-1] if self.heard.signal_state_times else 0.0

    def wait_for_time(self, time_s: float, timeout_s: float) -> None:
        if not wait_until(lambda: self.newest_time_s >= time_s, timeout_s):
            raise AssertionError(
                f"the unit's clock did not reach {time_s:.1f} within {timeout_s:.0f} s (at {self.newest_time_s:.1f})"
            )

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


class Centre:
    """The traffic centre: CentreCollector with a persistent session into SQLite, in a thread."""

    def __init__(self, broker_host: str, broker_port: int, db_path: Path) -> None:
        self.store = AggregateStore(db_path)
        self.collector = CentreCollector(
            MqttConfig(host=broker_host, port=broker_port, keepalive_s=5),
            self.store,
            client_id=f"fault-centre-{uuid.uuid4().hex[:8]}",
            session_expiry_s=600,
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.collector.run, args=(self._stop,), daemon=True)

    def start(self) -> None:
        self.collector.start()
        self._thread.start()

    def seqs_in_arrival_order(self, unit_id: str) -> list[int]:
        return [
            row[0] for row in self.store.query("SELECT seq FROM intervals WHERE unit_id = ? ORDER BY id", (unit_id,))
        ]

    def has_seq(self, unit_id: str, seq: int) -> bool:
        return bool(self.store.query("SELECT 1 FROM intervals WHERE unit_id = ? AND seq = ?", (unit_id, seq)))

    def wait_for_seq(self, unit_id: str, seq: int, timeout_s: float) -> None:
        if not wait_until(lambda: self.has_seq(unit_id, seq), timeout_s, poll_s=0.2):
            arrived = self.seqs_in_arrival_order(unit_id)
            raise AssertionError(
                f"interval {seq} did not reach the centre within {timeout_s:.0f} s; "
                f"{len(arrived)} arrived, last {arrived[-5:]}"
            )

    def valid_ratio_by_seq(self, unit_id: str) -> dict[int, float]:
        rows = self.store.query("SELECT seq, detector_valid_ratio FROM intervals WHERE unit_id = ?", (unit_id,))
        return {seq: ratio for seq, ratio in rows}

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10.0)
        self.store.close()


def sim_epoch_for(interval_s: float) -> float:
    """Simulated time zero on an interval boundary just after now, as `rsu demo` does."""
    return interval_boundary_after(time.time(), interval_s)
