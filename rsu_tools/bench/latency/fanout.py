"""Part (b), fan-out: many vehicle sessions subscribed to one unit's warnings, each delivery timed from
the publish call."""

from __future__ import annotations

import json
import multiprocessing
import multiprocessing.synchronize
import os
import queue
import selectors
import socket
import tempfile
import time
import uuid
from multiprocessing.queues import Queue as MpQueue
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from rsu.key_files import generate_key_files, signer_from_key_file
from rsu.runtime.bus import MqttBus
from rsu.samples import SAMPLE_SITE
from rsu.stages.v2x import wire_publisher
from rsu_contracts.config import SiteConfig, load_site_config
from rsu_contracts.config.model import MqttConfig
from rsu_contracts.enums import RoadUserType
from rsu_contracts.messages import (
    CollisionWarning,
    Participant,
    Severity,
    WarningKind,
    WarningStatus,
)
from rsu_tools.bench.latency.plan import READY_TIMEOUT_S, LatencyOptions, _bench_site
from rsu_tools.bench.latency.statistics import FanoutResult, _fanout_result
from rsu_tools.testing.mqtt_packets import (
    PUBLISH,
    SUBACK,
    connect_packet,
    packet_type,
    puback_packet,
    publish_qos,
    split_packet,
    subscribe_packet,
)
from v2x.wire import MessageClass, TopicLayout


def _paho_fanout_worker(
    host: str,
    port: int,
    topic: str,
    client_ids: list[str],
    results: MpQueue[tuple[str, Any]],
    ready: multiprocessing.synchronize.Event,
    stop: multiprocessing.synchronize.Event,
) -> None:
    """paho clients, one network loop over all their sockets: note (seq, time of on_message)."""
    received: list[tuple[int, float]] = []
    subscribed = 0

    def on_connect(client: mqtt.Client, *_: Any) -> None:
        client.subscribe(topic, qos=1)

    def on_subscribe(*_: Any) -> None:
        nonlocal subscribed
        subscribed += 1

    def on_message(client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        now = time.time()
        seq = json.loads(message.payload)["seq"]
        received.append((int(seq), now))

    selector = selectors.DefaultSelector()
    clients = []
    try:
        for client_id in client_ids:
            client = mqtt.Client(
                callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
            )
            client.on_connect = on_connect
            client.on_subscribe = on_subscribe
            client.on_message = on_message
            client.connect(host, port, keepalive=60)
            sock = client.socket()
            if isinstance(sock, socket.socket):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                selector.register(sock, selectors.EVENT_READ, client)
            clients.append(client)
        last_misc = time.monotonic()
        while not stop.is_set():
            for key, _ in selector.select(timeout=0.05):
                key.data.loop_read()
            for client in clients:
                if client.want_write():
                    client.loop_write()
            if subscribed >= len(clients) and not ready.is_set():
                ready.set()
            if time.monotonic() - last_misc > 1.0:
                last_misc = time.monotonic()
                for client in clients:
                    client.loop_misc()
    finally:
        results.put(("received", received))
        for client in clients:
            client.disconnect()
        selector.close()


_SEQ_FIELD = b'"seq":'


def seq_of(payload: bytes) -> int:
    """The envelope's seq from a JSON payload, without parsing the rest."""
    start = payload.index(_SEQ_FIELD) + len(_SEQ_FIELD)
    while payload[start : start + 1] == b" ":
        start += 1
    end = start
    while payload[end : end + 1].isdigit():
        end += 1
    return int(payload[start:end])


class _RawSubscriber:
    """A minimal MQTT v5 subscriber (QoS 1, PUBACK sent): the receive time is taken when the bytes
    arrive; only packet framing, the topic length and the envelope's seq are read."""

    def __init__(self, host: str, port: int, client_id: str, topic: str) -> None:
        self.sock = socket.create_connection((host, port), timeout=10.0)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # One write: CONNECT, then SUBSCRIBE (packet id 1) to the topic at QoS 1.
        self.sock.sendall(connect_packet(client_id) + subscribe_packet(1, topic, qos=1))
        self.sock.setblocking(False)
        self.buffer = bytearray()
        self.subscribed = False

    def read(self, received: list[tuple[int, float]]) -> None:
        try:
            data = self.sock.recv(1 << 16)
        except BlockingIOError:
            return
        now = time.time()
        self.buffer += data
        acks = bytearray()
        while True:
            packet = split_packet(self.buffer)
            if packet is None:
                break
            kind, body = packet
            if packet_type(kind) == PUBLISH:
                topic_length = int.from_bytes(body[:2], "big")
                offset = 2 + topic_length
                if publish_qos(kind):
                    acks += puback_packet(body[offset : offset + 2])
                    offset += 2
                # The rest is the properties, then the payload: seq_of finds the payload's seq in the bytes.
                received.append((seq_of(bytes(body[offset:])), now))
            elif packet_type(kind) == SUBACK:
                self.subscribed = True
        if acks:
            self.sock.sendall(acks)


def _raw_fanout_worker(
    host: str,
    port: int,
    topic: str,
    client_ids: list[str],
    results: MpQueue[tuple[str, Any]],
    ready: multiprocessing.synchronize.Event,
    stop: multiprocessing.synchronize.Event,
) -> None:
    """Raw MQTT v5 subscribers, one select loop over all their sockets: note (seq, arrival time)."""
    received: list[tuple[int, float]] = []
    selector = selectors.DefaultSelector()
    subscribers = []
    try:
        for client_id in client_ids:
            subscriber = _RawSubscriber(host, port, client_id, topic)
            selector.register(subscriber.sock, selectors.EVENT_READ, subscriber)
            subscribers.append(subscriber)
        while not stop.is_set():
            for key, _ in selector.select(timeout=0.05):
                key.data.read(received)
            if not ready.is_set() and all(s.subscribed for s in subscribers):
                ready.set()
    finally:
        results.put(("received", received))
        for subscriber in subscribers:
            subscriber.sock.close()
        selector.close()


def run_fanout(options: LatencyOptions, mqtt_config: MqttConfig, notes: list[str]) -> FanoutResult:
    site = load_site_config(SAMPLE_SITE)
    unit_id = f"bench-fanout-{uuid.uuid4().hex[:8]}"
    site = _bench_site(site, unit_id, mqtt_config)
    warnings_topic = TopicLayout(prefix=site.mqtt.topic_prefix).topic(unit_id, MessageClass.WARNINGS)
    context = multiprocessing.get_context("spawn")
    results: MpQueue[tuple[str, Any]] = context.Queue()
    stop = context.Event()
    shares = np.array_split(np.arange(options.clients), options.client_processes)
    readies = [context.Event() for _ in shares]
    loop = _raw_fanout_worker if options.client_kind == "raw" else _paho_fanout_worker
    workers = [
        context.Process(
            target=loop,
            args=(
                mqtt_config.host,
                mqtt_config.port,
                warnings_topic,
                [f"{unit_id}-vehicle-{n}" for n in share.tolist()],
                results,
                ready,
                stop,
            ),
            name=f"bench-fanout-{index}",
            daemon=True,
        )
        for index, (share, ready) in enumerate(zip(shares, readies, strict=True))
    ]
    for worker in workers:
        worker.start()
    published: dict[int, float] = {}
    received: list[tuple[int, float]] = []
    with tempfile.TemporaryDirectory(prefix="rsu-bench-fanout-") as folder:
        private_key, public_key = Path(folder) / "unit.pem", Path(folder) / "unit.pub.pem"
        generate_key_files(private_key, public_key)
        bus = MqttBus(site.mqtt, f"{unit_id}-v2x-{os.getpid()}")
        try:
            deadline = time.monotonic() + READY_TIMEOUT_S
            for ready in readies:
                if not ready.wait(max(0.1, deadline - time.monotonic())):
                    raise RuntimeError(
                        f"{options.clients} clients did not all subscribe within {READY_TIMEOUT_S:.0f} s"
                    )
            bus.connect()
            wire = wire_publisher(site, bus, signer_from_key_file(private_key, unit_id))
            period_s = 1.0 / options.fanout_rate_hz
            start_s = time.monotonic()
            for seq in range(options.fanout_messages):
                delay_s = start_s + seq * period_s - time.monotonic()
                if delay_s > 0:
                    time.sleep(delay_s)
                now = time.time()
                warning = _fanout_warning(site, seq, now)
                published[seq] = time.time()
                wire.publish(warning)
            expected = options.fanout_messages * options.clients
            time.sleep(min(5.0, 1.0 + 0.01 * expected / max(options.fanout_rate_hz, 1.0)))
        finally:
            stop.set()
            bus.close()
            for _ in workers:
                try:
                    kind, payload = results.get(timeout=10.0)
                except queue.Empty:
                    notes.append("a fan-out process did not report its deliveries")
                    continue
                if kind == "received":
                    received.extend(payload)
            for worker in workers:
                worker.join(timeout=5.0)
                if worker.is_alive():
                    worker.terminate()
    return _fanout_result(options, published, received)


def _fanout_warning(site: SiteConfig, seq: int, now_s: float) -> CollisionWarning:
    participant = Participant(
        track_id=seq, road_user=RoadUserType.CAR, x_m=-4.8, y_m=30.0, speed_mps=12.0, heading_deg=180.0
    )
    return CollisionWarning(
        unit_id=site.unit_id,
        seq=seq,
        capture_time_s=now_s,
        publish_time_s=now_s,
        warning_id=f"rear_end-{seq}-{seq + 1}-{round(now_s * 1000)}",
        kind=WarningKind.REAR_END,
        severity=Severity.CRITICAL,
        status=WarningStatus.NEW,
        ttc_s=1.2,
        conflict_x_m=-4.8,
        conflict_y_m=20.0,
        conflict_latitude_deg=site.geo_reference.latitude_deg,
        conflict_longitude_deg=site.geo_reference.longitude_deg,
        participants=[participant, participant.model_copy(update={"track_id": seq + 1, "y_m": 22.0})],
    )
