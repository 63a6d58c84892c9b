"""`rsu bench latency`: how long a warning takes from the camera to a vehicle, and fan-out to many.

(a) Camera to vehicle, on real footage with the real detector, laid out as in the unit:

    this process:  frame -> detector -> tracker (PerceptionPipeline) -> TrackList --MQTT-->
    V2X process:   V2XOutput (conflicts, warning lifecycle, SPaT, objects) -> encode, sign --MQTT-->
    vehicle process: VehicleClient (verify signature, decode) -> received

through the broker named by --broker (default: the site's, the real Mosquitto). Frames are
released at --fps in wall time as a live camera would deliver them (a frame whose slot has passed
while the pipeline was busy is dropped, as the unit's live source does); "capture" is that
release time. The clip may show no conflict, so every frame's track list gets one synthetic
pair of tracks on a rear-end course far outside the junction (critical: no confirmation delay),
under fresh track ids each frame: every frame therefore produces one NEW warning, and that
message is the one timed, frame by frame. The other warnings, SPaT (10 Hz, from a synthetic
signal state) and the sensor-sharing objects message go out as in the unit and load it the same.

Stages (each one's p50 / p99 and its share of the mean end-to-end time):
detect (detector.detect), track (tracker, zones, TrackList to JSON), tracks hop (publish until
the V2X process has the message off its queue), warning logic (decode, conflicts, lifecycle,
message build), sign (encode, Ed25519), delivery (paho hands it to the broker, the broker to the
vehicle process, which checks the signature and decodes). "after detector" is all but detect.

(b) Fan-out: --clients vehicle clients subscribe (QoS 1) to one unit's warnings topic; the bench
publishes --fanout-messages signed warnings at --fanout-rate-hz and times each delivery from the
publish call. Each client is its own MQTT v5 session (TCP connection, QoS 1 subscription, PUBACK
for every message); --client-processes processes each run one select loop over their share of
the sockets. By default they are raw sessions that note the time the bytes arrive and read only
the envelope's seq: 200 full Python MQTT clients on the same 2 cores as the broker would measure
their own parsing (about 150 µs of CPU per delivery, 30 ms per warning), not the delivery;
--client-kind paho uses paho clients instead. Neither verifies signatures (part (a) does).

Bounded: frames, clients and messages are capped, everything has a timeout, loopback brokers only.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import multiprocessing
import multiprocessing.synchronize
import os
import queue
import selectors
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from multiprocessing.queues import Queue as MpQueue
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from datasets import SAMPLE_SITE
from rsu.config import SiteConfig, load_site_config
from rsu.config.model import CameraConfig, CameraSource, MqttConfig, RoadUserType
from rsu.messages import (
    CollisionWarning,
    ControllerMode,
    Indication,
    Message,
    Participant,
    Severity,
    SignalGroupState,
    SignalState,
    TrackedObject,
    TrackList,
    WarningKind,
    WarningStatus,
    decode,
)
from rsu.runtime.bus import BrokerUnavailable, MqttBus
from rsu.runtime.latency import (
    PUBLISH_WAIT_S,
    RealtimeSection,
    freeze_startup_objects,
    set_thread_realtime_priority,
    tune_interpreter_for_latency,
)
from rsu.stages.v2x import V2XOutput, configure_stage_process, wire_publisher
from rsu.topics import TRACKS, Topics
from v2x.signing import UnitSigner, generate_key_files
from v2x.wire import MessageClass, TopicLayout, WirePublisher, encode_for_topic, message_class_of

log = logging.getLogger(__name__)

OTC_SITE = SAMPLE_SITE.parent.parent / "opentrafficcam" / "site.yaml"
# Synthetic conflicting pair: track ids above anything a tracker hands out in a short run, placed
# 200 m from the junction so no real road user is involved.
SYNTHETIC_ID_BASE = 2_000_000
SYNTHETIC_POSITION_M = (-200.0, -200.0)
WARMUP_FRAMES = 10
MAX_FRAMES = 5000
MAX_CLIENTS = 1000
MAX_FANOUT_MESSAGES = 2000
READY_TIMEOUT_S = 60.0
TARGET_END_TO_END_P50_MS = 60.0
TARGET_END_TO_END_P99_MS = 100.0
TARGET_AFTER_DETECTOR_P99_MS = 10.0
TARGET_FANOUT_P99_MS = 50.0
# (source, capture time, first time, second time) noted by a worker.
Record = tuple[str, float, float, float]
STAGES = ("detect", "track", "tracks hop", "warning logic", "sign", "delivery")


@dataclass(frozen=True)
class LatencyOptions:
    site: Path = OTC_SITE
    clip: str | None = None  # default: the site camera's uri
    fps: float = 10.0
    frames: int = 200
    # Detector input size; None keeps the site's. 320 keeps detection within the warning budget
    # on 2 cores (yolo11n on CPU: about 35 ms at 320, 75 ms at 640 for an 800x600 frame).
    imgsz: int | None = 320
    threads: int | None = None
    broker: str | None = None  # HOST:PORT; default: the site's MQTT broker
    clients: int = 200
    client_processes: int = 4
    fanout_messages: int = 100
    fanout_rate_hz: float = 10.0
    # raw: minimal MQTT v5 sessions that note arrival; paho: paho clients (their parsing, in Python,
    # for 200 clients on 2 cores, dominates what is measured).
    client_kind: str = "raw"
    run_path: bool = True
    run_fanout: bool = True
    timeout_s: float = 600.0
    # SCHED_RR priority of the warning path (site v2x.realtime_priority) and of the vehicle process,
    # which stands in for the vehicle's own computer; None: the site's setting.
    realtime_priority: int | None = None

    def check(self) -> None:
        if self.realtime_priority is not None and not 0 <= self.realtime_priority <= 99:
            raise ValueError(f"--realtime-priority must be in [0, 99], got {self.realtime_priority}")
        if not 0 < self.fps <= 60:
            raise ValueError(f"--fps must be in (0, 60], got {self.fps}")
        if not WARMUP_FRAMES < self.frames <= MAX_FRAMES:
            raise ValueError(f"--frames must be in ({WARMUP_FRAMES}, {MAX_FRAMES}], got {self.frames}")
        if not 1 <= self.clients <= MAX_CLIENTS:
            raise ValueError(f"--clients must be in [1, {MAX_CLIENTS}], got {self.clients}")
        if not 1 <= self.client_processes <= min(32, self.clients):
            raise ValueError("--client-processes must be between 1 and min(32, clients)")
        if not 1 <= self.fanout_messages <= MAX_FANOUT_MESSAGES:
            raise ValueError(f"--fanout-messages must be in [1, {MAX_FANOUT_MESSAGES}]")
        if not 0 < self.fanout_rate_hz <= 1000:
            raise ValueError("--fanout-rate-hz must be in (0, 1000]")
        if self.client_kind not in ("raw", "paho"):
            raise ValueError(f"--client-kind must be raw or paho, got {self.client_kind!r}")


@dataclass
class Figure:
    p50_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    samples: int


@dataclass
class StageFigure:
    stage: str
    p50_ms: float
    p99_ms: float
    share_of_mean: float  # this stage's mean over the end-to-end mean


@dataclass
class PathResult:
    measured: str
    clip: str
    detector: dict[str, Any]
    fps: float
    frames_released: int
    frames_dropped: int
    warnings_timed: int
    warnings_lost: int
    end_to_end: Figure
    after_detector: Figure
    stages: list[StageFigure]
    targets_ms: dict[str, float]
    passed: dict[str, bool]


@dataclass
class FanoutResult:
    measured: str
    clients: int
    client_kind: str
    client_processes: int
    messages: int
    deliveries_expected: int
    deliveries: int
    delivery: Figure
    target_p99_ms: float
    passed: bool


@dataclass
class LatencyResult:
    broker: str
    cpu_count: int
    load_average_start: list[float]
    load_average_end: list[float]
    path: PathResult | None = None
    fanout: FanoutResult | None = None
    notes: list[str] = field(default_factory=list)


def figure(values_s: Sequence[float]) -> Figure:
    values = np.asarray(values_s, dtype=float) * 1000.0
    if len(values) == 0:
        return Figure(math.nan, math.nan, math.nan, math.nan, 0)
    return Figure(
        p50_ms=float(np.percentile(values, 50)),
        p99_ms=float(np.percentile(values, 99)),
        max_ms=float(values.max()),
        mean_ms=float(values.mean()),
        samples=len(values),
    )


def broker_of(site: SiteConfig, broker: str | None) -> MqttConfig:
    """The broker to use: HOST:PORT if given, else the site's; loopback only."""
    config = site.mqtt
    if broker:
        host, _, port = broker.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"--broker must be HOST:PORT, got {broker!r}")
        config = config.model_copy(update={"host": host, "port": int(port)})
    if not _is_loopback(config.host):
        raise ValueError(f"the bench only talks to a loopback broker, not {config.host}")
    return config


def _is_loopback(host: str) -> bool:
    try:
        return all(str(info[4][0]).startswith(("127.", "::1")) for info in socket.getaddrinfo(host, None))
    except OSError:
        return False


def _bench_site(
    site: SiteConfig, unit_id: str, mqtt_config: MqttConfig, realtime_priority: int | None = None
) -> SiteConfig:
    update: dict[str, Any] = {"unit_id": unit_id, "mqtt": mqtt_config}
    if realtime_priority is not None:
        update["v2x"] = site.v2x.model_copy(update={"realtime_priority": realtime_priority})
    return site.model_copy(update=update)


def _note_priority_problem(problem: str | None) -> None:
    if problem:
        print(f"rsu bench latency: {problem}; normal scheduling", file=sys.stderr)


# ---------------------------------------------------------------------------------- (a) the path


def synthetic_pair(frame_index: int, capture_time_s: float) -> list[TrackedObject]:
    """A follower at 15 m/s 7.5 m behind a stopped car: TTC 0.5 s, a critical rear-end conflict."""
    x, y = SYNTHETIC_POSITION_M
    base = SYNTHETIC_ID_BASE + 2 * frame_index
    common = {"road_user": RoadUserType.CAR, "y_m": y, "heading_deg": 90.0, "age_s": 2.0}
    return [
        TrackedObject(track_id=base, x_m=x, speed_mps=0.0, **common),
        TrackedObject(track_id=base + 1, x_m=x - 12.0, speed_mps=15.0, **common),
    ]


def synthetic_signal(site: SiteConfig, now_s: float) -> SignalState:
    """All groups red for the next 30 s: enough for SPaT to carry realistic content."""
    groups = [
        SignalGroupState(
            signal_group=group.id,
            indication=Indication.RED,
            since_s=now_s - 5.0,
            min_end_time_s=now_s + 5.0,
            max_end_time_s=now_s + 30.0,
            likely_time_s=now_s + 10.0,
        )
        for group in site.signal_groups
    ]
    return SignalState(
        unit_id=site.unit_id,
        seq=0,
        capture_time_s=now_s,
        publish_time_s=now_s,
        mode=ControllerMode.NORMAL,
        strategy="bench",
        groups=groups,
    )


class _TimedWire:
    """The stage's WirePublisher.publish, step by step, noting for the NEW warning of each synthetic
    pair when the logic handed it over, when it was encoded and signed, and when paho had it."""

    def __init__(self, wire: WirePublisher, records: list[Record]) -> None:
        self.wire = wire
        self.records = records

    def publish(self, message: Message) -> object:
        wire = self.wire
        logic_done = time.time()
        encoded = encode_for_topic(message, wire.encoding_for(message_class_of(message)), wire.layout, wire.identity)
        properties = wire.signer.sign(encoded.topic, encoded.payload, encoded.properties)
        signed = time.time()
        result = wire.bus.publish(
            encoded.topic, encoded.payload, qos=encoded.qos, retain=encoded.retain, user_properties=properties
        )
        if (
            isinstance(message, CollisionWarning)
            and message.status is WarningStatus.NEW
            and message.participants[0].track_id >= SYNTHETIC_ID_BASE
        ):
            self.records.append(("v2x", message.capture_time_s, logic_done, signed))
        return result


def _v2x_worker(
    site_path: str,
    unit_id: str,
    mqtt_config: dict[str, Any],
    key_path: str,
    realtime_priority: int,
    batches: MpQueue[list[Record]],
    ready: multiprocessing.synchronize.Event,
    stop: multiprocessing.synchronize.Event,
) -> None:
    """The V2X stage's logic behind a real MqttBus, as in the unit (one process). Its timestamps
    are kept here and sent once at the end: a queue's feeder thread would compete for the GIL."""
    records: list[Record] = []
    configure_stage_process()
    site = _bench_site(load_site_config(site_path), unit_id, MqttConfig(**mqtt_config), realtime_priority)
    if realtime_priority:  # as the V2X stage does, before any thread starts
        _note_priority_problem(set_thread_realtime_priority(realtime_priority))
    topics = Topics.for_site(site)  # _bench_site gave it unit_id
    bus = MqttBus(site.mqtt, f"{unit_id}-v2x-{os.getpid()}")
    bus.subscribe(topics.tracks, qos=TRACKS.qos)
    bus.connect()
    wire = _TimedWire(wire_publisher(site, bus, UnitSigner.from_key_file(key_path, unit_id)), records)
    output = V2XOutput(site, wire)
    freeze_startup_objects()
    ready.set()
    try:
        while not stop.is_set():
            item = bus.get(timeout_s=0.2)
            if item is None:
                continue
            received = time.time()
            tracks = decode(TrackList, item.payload)
            records.append(("v2x-in", tracks.capture_time_s, received, received))
            output.on_tracks(tracks, time.time())
            # SPaT as the unit sends it (its own input in the unit, here after the warnings).
            output.on_signal_state(synthetic_signal(site, tracks.capture_time_s), time.time())
    finally:
        bus.close()
        batches.put(records)


def _vehicle_worker(
    host: str,
    port: int,
    unit_id: str,
    public_key_path: str,
    realtime_priority: int,
    batches: MpQueue[list[Record]],
    ready: multiprocessing.synchronize.Event,
    stop: multiprocessing.synchronize.Event,
) -> None:
    """A vehicle: VehicleClient verifying and decoding; notes when each synthetic NEW warning is in
    (kept here, sent once at the end)."""
    from v2x.sdk import VehicleClient, VehicleMessage

    records: list[Record] = []

    def on_message(message: VehicleMessage) -> None:
        warning = message.decoded.message
        if (
            isinstance(warning, CollisionWarning)
            and warning.status is WarningStatus.NEW
            and warning.participants[0].track_id >= SYNTHETIC_ID_BASE
        ):
            records.append(("vehicle", warning.capture_time_s, message.received_time_s, time.time()))

    if realtime_priority:
        _note_priority_problem(set_thread_realtime_priority(realtime_priority))
    client = VehicleClient(host, port, unit_id, public_key_path, on_message=on_message, queue_size=10)
    client.connect()
    client.wait_subscribed()
    ready.set()
    try:
        while not stop.is_set():
            client.get(timeout_s=0.2)  # keep the bounded queue drained
    finally:
        client.close()
        batches.put(records)


@dataclass
class _FrameTimes:
    capture_s: float
    detected_s: float
    tracked_s: float


def run_path(options: LatencyOptions, mqtt_config: MqttConfig, notes: list[str]) -> PathResult:
    # torch's OpenMP threads otherwise spin for a while after each inference, on both cores, just
    # when the frame's warning is on its way through the other processes.
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    notes.append(f"detector process: OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}")
    site_path = options.site.resolve()
    site = load_site_config(site_path)
    camera = next((c for c in site.cameras if c.source is CameraSource.VIDEO), None)
    if camera is None:
        raise ValueError(f"{site_path}: the latency path needs a video camera")
    if options.clip:
        camera = camera.model_copy(update={"uri": options.clip})
    detector_config = camera.detector
    if options.imgsz is not None:
        detector_config = detector_config.model_copy(update={"imgsz": options.imgsz})
    if options.threads is not None:
        detector_config = detector_config.model_copy(update={"threads": options.threads})
    camera = camera.model_copy(update={"detector": detector_config})
    unit_id = f"bench-latency-{uuid.uuid4().hex[:8]}"
    bench_site = _bench_site(site, unit_id, mqtt_config, options.realtime_priority)
    priority = bench_site.v2x.realtime_priority
    notes.append(
        f"scheduling: SCHED_RR {priority} for the V2X process, the perception network thread and the vehicle process"
        if priority
        else "scheduling: normal (SCHED_OTHER) everywhere"
    )

    context = multiprocessing.get_context("spawn")  # no fork of a process that will hold torch
    batches: MpQueue[list[Record]] = context.Queue()
    stop = context.Event()
    with tempfile.TemporaryDirectory(prefix="rsu-bench-latency-") as folder:
        private_key, public_key = Path(folder) / "unit.pem", Path(folder) / "unit.pub.pem"
        generate_key_files(private_key, public_key)
        v2x_ready, vehicle_ready = context.Event(), context.Event()
        workers = [
            context.Process(
                target=_v2x_worker,
                args=(
                    str(site_path),
                    unit_id,
                    mqtt_config.model_dump(),
                    str(private_key),
                    priority,
                    batches,
                    v2x_ready,
                    stop,
                ),
                name="bench-v2x",
                daemon=True,
            ),
            context.Process(
                target=_vehicle_worker,
                args=(
                    mqtt_config.host,
                    mqtt_config.port,
                    unit_id,
                    str(public_key),
                    priority,
                    batches,
                    vehicle_ready,
                    stop,
                ),
                name="bench-vehicle",
                daemon=True,
            ),
        ]
        for worker in workers:
            worker.start()
        try:
            for event, name in ((v2x_ready, "V2X"), (vehicle_ready, "vehicle")):
                if not event.wait(READY_TIMEOUT_S):
                    raise RuntimeError(f"the {name} process did not come up within {READY_TIMEOUT_S:.0f} s")
            frames, released, dropped = _run_frames(options, site_path, bench_site, camera)
            time.sleep(1.0)  # the last frames' warnings are still on their way
        finally:
            stop.set()
            collected = _collect(batches, len(workers))
            for worker in workers:
                worker.join(timeout=5.0)
                if worker.is_alive():
                    worker.terminate()
    return _path_result(options, camera, frames, collected, released, dropped, notes)


def _run_frames(
    options: LatencyOptions, site_path: Path, site: SiteConfig, camera: CameraConfig
) -> tuple[dict[float, _FrameTimes], int, int]:
    from rsu.perception.pipeline import PerceptionPipeline
    from rsu.sensors.video import VideoSource, expand_uri
    from rsu.sensors.yolo import build_detector

    detector = build_detector(camera, config_dir=site_path.parent)
    pipeline = PerceptionPipeline(site, camera.id)
    topics = Topics.for_site(site)
    bus = MqttBus(site.mqtt, f"{site.unit_id}-perception-{os.getpid()}")
    # As the perception stage does: the network thread and the work after the detector, never the detector.
    warning_path = RealtimeSection(site.v2x.realtime_priority, "perception")
    with warning_path:
        bus.connect()
    tune_interpreter_for_latency()  # as the perception stage does
    freeze_startup_objects()
    uri = expand_uri(camera.uri or "", site_path.parent)
    period_s = 1.0 / options.fps
    frames: dict[float, _FrameTimes] = {}
    released = dropped = 0
    seq = 0
    start_s = time.time() + 0.5
    slot = 0
    try:
        while released < options.frames:
            with VideoSource(uri, live=False) as source:
                stride = max(1, round((source.fps or options.fps) / options.fps))
                for index, frame in enumerate(source):
                    if index % stride:
                        continue
                    capture_s = start_s + slot * period_s
                    slot += 1
                    wait_s = capture_s - time.time()
                    if wait_s > 0:
                        time.sleep(wait_s)
                    elif -wait_s > period_s:
                        dropped += 1  # its slot passed while the pipeline was busy: a live source drops it
                        continue
                    detections = detector.detect(frame.image, capture_s)
                    detected_s = time.time()
                    with warning_path:  # as the perception stage does
                        output = pipeline.process(detections)
                        objects = [*output.tracks, *synthetic_pair(released, capture_s)]
                        message = TrackList(
                            unit_id=site.unit_id,
                            seq=seq,
                            capture_time_s=capture_s,
                            publish_time_s=time.time(),
                            camera_id=camera.id,
                            objects=objects,
                        )
                        payload = message.to_json()
                        tracked_s = time.time()
                        if warning_path.priority:  # as the perception stage does
                            bus.publish_to_and_wait(topics.route(TRACKS), payload, timeout_s=PUBLISH_WAIT_S)
                        else:
                            bus.publish_to(topics.route(TRACKS), payload)
                    seq += 1
                    frames[capture_s] = _FrameTimes(capture_s, detected_s, tracked_s)
                    released += 1
                    if released >= options.frames:
                        break
            if released == 0:
                raise RuntimeError(f"no frame could be read from {uri}")
    finally:
        bus.close()
    return frames, released, dropped


def _collect(batches: MpQueue[list[Record]], count: int) -> dict[str, dict[float, tuple[float, float]]]:
    """Records of the workers by source ("v2x-in", "v2x", "vehicle") and capture time."""
    collected: dict[str, dict[float, tuple[float, float]]] = {"v2x-in": {}, "v2x": {}, "vehicle": {}}
    for _ in range(count):
        try:
            batch = batches.get(timeout=15.0)
        except queue.Empty:
            break
        for source, capture_s, first, second in batch:
            collected[source].setdefault(capture_s, (first, second))
    return collected


def _path_result(
    options: LatencyOptions,
    camera: CameraConfig,
    frames: dict[float, _FrameTimes],
    collected: dict[str, dict[float, tuple[float, float]]],
    released: int,
    dropped: int,
    notes: list[str],
) -> PathResult:
    stage_values: dict[str, list[float]] = {name: [] for name in STAGES}
    end_to_end: list[float] = []
    after_detector: list[float] = []
    timed = lost = 0
    for n, capture_s in enumerate(sorted(frames)):
        times = frames[capture_s]
        received_in = collected["v2x-in"].get(capture_s)
        published = collected["v2x"].get(capture_s)
        at_vehicle = collected["vehicle"].get(capture_s)
        if received_in is None or published is None or at_vehicle is None:
            lost += 1
            continue
        if n < WARMUP_FRAMES:
            continue
        timed += 1
        in_s = received_in[0]
        logic_done_s, signed_s = published
        vehicle_s = at_vehicle[1]
        parts = {
            "detect": times.detected_s - capture_s,
            "track": times.tracked_s - times.detected_s,
            "tracks hop": in_s - times.tracked_s,
            "warning logic": logic_done_s - in_s,
            "sign": signed_s - logic_done_s,
            "delivery": vehicle_s - signed_s,
        }
        for name, value in parts.items():
            stage_values[name].append(value)
        end_to_end.append(vehicle_s - capture_s)
        after_detector.append(vehicle_s - times.detected_s)
    total = figure(end_to_end)
    stages = []
    for name in STAGES:
        stage = figure(stage_values[name])
        share = stage.mean_ms / total.mean_ms if total.samples and total.mean_ms > 0 else math.nan
        stages.append(StageFigure(name, stage.p50_ms, stage.p99_ms, share))
    after = figure(after_detector)
    if lost:
        notes.append(f"{lost} of {len(frames)} timed warnings did not reach the vehicle within the run")
    detector = camera.detector
    return PathResult(
        measured=(
            "per frame: the NEW warning of a synthetic critical rear-end pair injected into that frame's "
            "track list, from the frame's release (capture) to the vehicle process having verified and "
            f"decoded it; first {WARMUP_FRAMES} frames excluded"
        ),
        clip=str(camera.uri),
        detector={
            "type": detector.type,
            "weights": detector.weights,
            "imgsz": detector.imgsz,
            "threads": detector.threads,
        },
        fps=options.fps,
        frames_released=released,
        frames_dropped=dropped,
        warnings_timed=timed,
        warnings_lost=lost,
        end_to_end=total,
        after_detector=after,
        stages=stages,
        targets_ms={
            "end_to_end_p50": TARGET_END_TO_END_P50_MS,
            "end_to_end_p99": TARGET_END_TO_END_P99_MS,
            "after_detector_p99": TARGET_AFTER_DETECTOR_P99_MS,
        },
        passed={
            "end_to_end_p50": total.p50_ms < TARGET_END_TO_END_P50_MS,
            "end_to_end_p99": total.p99_ms < TARGET_END_TO_END_P99_MS,
            "after_detector_p99": after.p99_ms < TARGET_AFTER_DETECTOR_P99_MS,
        },
    )


# ---------------------------------------------------------------------------------- (b) fan-out


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


def _mqtt_string(text: str) -> bytes:
    data = text.encode()
    return len(data).to_bytes(2, "big") + data


def mqtt_packet(first_byte: int, body: bytes) -> bytes:
    length, encoded = len(body), bytearray()
    while True:
        digit, length = length % 128, length // 128
        encoded.append(digit | (0x80 if length else 0))
        if not length:
            return bytes([first_byte]) + bytes(encoded) + body


def split_packet(buffer: bytearray) -> tuple[int, bytes] | None:
    """Take the first complete MQTT packet off the buffer: (first byte, body), or None if incomplete."""
    length, multiplier, index = 0, 1, 1
    while True:
        if index >= len(buffer):
            return None
        digit = buffer[index]
        length += (digit & 0x7F) * multiplier
        multiplier *= 128
        index += 1
        if not digit & 0x80:
            break
    if len(buffer) < index + length:
        return None
    kind, body = buffer[0], bytes(buffer[index : index + length])
    del buffer[: index + length]
    return kind, body


class _RawSubscriber:
    """A minimal MQTT v5 subscriber (QoS 1, PUBACK sent): the receive time is taken when the bytes
    arrive; only packet framing, the topic length and the envelope's seq are read."""

    def __init__(self, host: str, port: int, client_id: str, topic: str) -> None:
        self.sock = socket.create_connection((host, port), timeout=10.0)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # CONNECT: protocol "MQTT" level 5, clean start, keep-alive off, no properties.
        connect = _mqtt_string("MQTT") + bytes([5, 0x02, 0, 0, 0]) + _mqtt_string(client_id)
        # SUBSCRIBE packet id 1, no properties, the topic at QoS 1.
        subscribe = (1).to_bytes(2, "big") + bytes([0]) + _mqtt_string(topic) + bytes([1])
        self.sock.sendall(mqtt_packet(0x10, connect) + mqtt_packet(0x82, subscribe))
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
            if kind >> 4 == 3:  # PUBLISH
                topic_length = int.from_bytes(body[:2], "big")
                offset = 2 + topic_length
                if (kind >> 1) & 3:
                    acks += mqtt_packet(0x40, body[offset : offset + 2])
                    offset += 2
                received.append((seq_of(bytes(body[offset:])), now))
            elif kind >> 4 == 9:  # SUBACK
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
            wire = wire_publisher(site, bus, UnitSigner.from_key_file(private_key, unit_id))
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
    latencies = [at - published[seq] for seq, at in received if seq in published]
    delivery = figure(latencies)
    clients = (
        "raw MQTT v5 subscribers (QoS 1 with PUBACK; time taken when the bytes arrive)"
        if options.client_kind == "raw"
        else "paho clients (time taken in on_message)"
    )
    return FanoutResult(
        measured=(
            f"signed CollisionWarning JSON (QoS 1) from the publish call to each client: {clients}, "
            f"{options.client_processes} processes with one network loop each, no signature check"
        ),
        clients=options.clients,
        client_kind=options.client_kind,
        client_processes=options.client_processes,
        messages=options.fanout_messages,
        deliveries_expected=options.fanout_messages * options.clients,
        deliveries=len(latencies),
        delivery=delivery,
        target_p99_ms=TARGET_FANOUT_P99_MS,
        passed=len(latencies) == options.fanout_messages * options.clients and delivery.p99_ms < TARGET_FANOUT_P99_MS,
    )


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
        conflict_latitude_deg=site.reference.latitude_deg,
        conflict_longitude_deg=site.reference.longitude_deg,
        participants=[participant, participant.model_copy(update={"track_id": seq + 1, "y_m": 22.0})],
    )


# ---------------------------------------------------------------------------------- command


def run_bench(options: LatencyOptions) -> LatencyResult:
    options.check()
    site = load_site_config(options.site)
    mqtt_config = broker_of(site, options.broker)
    probe = MqttBus(mqtt_config, f"bench-latency-probe-{os.getpid()}")
    probe.connect()
    probe.close()
    result = LatencyResult(
        broker=f"{mqtt_config.host}:{mqtt_config.port}",
        cpu_count=os.cpu_count() or 0,
        load_average_start=list(os.getloadavg()),
        load_average_end=[],
    )
    if options.run_path:
        result.path = run_path(options, mqtt_config, result.notes)
    if options.run_fanout:
        result.fanout = run_fanout(options, mqtt_config, result.notes)
    result.load_average_end = list(os.getloadavg())
    return result


def render_table(result: LatencyResult) -> str:
    lines = [
        "",
        f"rsu bench latency: broker {result.broker}, {result.cpu_count} CPUs, load average "
        f"{' '.join(f'{v:.2f}' for v in result.load_average_start)} at start, "
        f"{' '.join(f'{v:.2f}' for v in result.load_average_end)} at end",
    ]
    path = result.path
    if path is not None:
        detector = path.detector
        lines += [
            "",
            f"(a) camera to vehicle: {path.clip}",
            f"    detector {detector['type']} {Path(str(detector['weights'])).name} imgsz {detector['imgsz']} "
            f"threads {detector['threads']}; {path.fps:g} fps, {path.frames_released} frames, "
            f"{path.frames_dropped} dropped, {path.warnings_timed} warnings timed, {path.warnings_lost} lost",
            f"    measured: {path.measured}",
            "",
            f"    {'stage':<16}{'p50 ms':>10}{'p99 ms':>10}{'share':>9}",
        ]
        for stage in path.stages:
            lines.append(f"    {stage.stage:<16}{stage.p50_ms:>10.2f}{stage.p99_ms:>10.2f}{stage.share_of_mean:>9.0%}")
        e2e, after = path.end_to_end, path.after_detector
        lines += [
            f"    {'end to end':<16}{e2e.p50_ms:>10.2f}{e2e.p99_ms:>10.2f}"
            f"   target p50 < {path.targets_ms['end_to_end_p50']:g}, p99 < {path.targets_ms['end_to_end_p99']:g}: "
            f"{_verdict(path.passed['end_to_end_p50'] and path.passed['end_to_end_p99'])}",
            f"    {'after detector':<16}{after.p50_ms:>10.2f}{after.p99_ms:>10.2f}"
            f"   target p99 < {path.targets_ms['after_detector_p99']:g}: {_verdict(path.passed['after_detector_p99'])}",
        ]
    fanout = result.fanout
    if fanout is not None:
        lines += [
            "",
            f"(b) fan-out: {fanout.clients} clients in {fanout.client_processes} processes, "
            f"{fanout.messages} warnings, {fanout.deliveries} of {fanout.deliveries_expected} deliveries",
            f"    measured: {fanout.measured}",
            f"    delivery from publish: p50 {fanout.delivery.p50_ms:.2f} ms, p99 {fanout.delivery.p99_ms:.2f} ms, "
            f"max {fanout.delivery.max_ms:.2f} ms   target p99 < {fanout.target_p99_ms:g}: {_verdict(fanout.passed)}",
        ]
    lines += [f"  note: {note}" for note in result.notes]
    return "\n".join(lines)


def _verdict(passed: bool) -> str:
    return "met" if passed else "NOT met"


def add_bench_latency_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser], name: str = "latency"
) -> argparse.ArgumentParser:
    """Add `rsu bench latency`."""
    defaults = LatencyOptions()
    parser = subparsers.add_parser(
        name,
        help="camera-to-vehicle warning latency on real footage, and warning fan-out to many vehicles",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument("--site", default=str(defaults.site), help="site file with a video camera (default: OTC)")
    parser.add_argument("--clip", default=None, help="video file instead of the site camera's uri")
    parser.add_argument("--fps", type=float, default=defaults.fps, help=f"frames per second (default {defaults.fps:g})")
    parser.add_argument(
        "--frames", type=int, default=defaults.frames, help=f"frames to run (default {defaults.frames})"
    )
    parser.add_argument(
        "--imgsz",
        default=str(defaults.imgsz),
        help=f"detector input size, or 'site' for the site file's (default {defaults.imgsz})",
    )
    parser.add_argument("--threads", type=int, default=None, help="detector threads (default: the site's)")
    parser.add_argument("--broker", default=None, help="HOST:PORT of a loopback broker (default: the site's)")
    parser.add_argument("--clients", type=int, default=defaults.clients, help=f"fan-out clients ({defaults.clients})")
    parser.add_argument("--client-processes", type=int, default=defaults.client_processes)
    parser.add_argument("--fanout-messages", type=int, default=defaults.fanout_messages)
    parser.add_argument("--fanout-rate-hz", type=float, default=defaults.fanout_rate_hz)
    parser.add_argument(
        "--client-kind",
        choices=["raw", "paho"],
        default=defaults.client_kind,
        help="fan-out clients: raw MQTT v5 sessions noting arrival (default) or paho clients",
    )
    parser.add_argument(
        "--realtime-priority",
        type=int,
        default=None,
        help="SCHED_RR priority of the warning path and the vehicle process (default: the site's "
        "v2x.realtime_priority; 0: normal scheduling)",
    )
    parser.add_argument("--no-path", action="store_true", help="skip (a), the camera-to-vehicle path")
    parser.add_argument("--no-fanout", action="store_true", help="skip (b), the fan-out")
    parser.add_argument("--json", default=None, help="write the figures here (default: a file in the temp folder)")
    parser.set_defaults(handler=run_bench_latency_command)
    return parser


def run_bench_latency_command(args: argparse.Namespace) -> int:
    try:
        options = LatencyOptions(
            site=Path(args.site),
            clip=args.clip,
            fps=args.fps,
            frames=args.frames,
            imgsz=None if args.imgsz == "site" else int(args.imgsz),
            threads=args.threads,
            broker=args.broker,
            clients=args.clients,
            client_processes=args.client_processes,
            fanout_messages=args.fanout_messages,
            fanout_rate_hz=args.fanout_rate_hz,
            client_kind=args.client_kind,
            run_path=not args.no_path,
            run_fanout=not args.no_fanout,
            realtime_priority=args.realtime_priority,
        )
        result = run_bench(options)
    except (ValueError, OSError, RuntimeError, BrokerUnavailable) as exc:
        print(f"rsu bench latency: error: {exc}", file=sys.stderr)
        return 2
    print(render_table(result))
    json_path = Path(args.json) if args.json else Path(tempfile.gettempdir()) / "rsu-bench-latency.json"
    json_path.write_text(json.dumps(asdict(result), indent=2) + "\n")
    print(f"  figures written to {json_path}")
    passed = [] if result.path is None else list(result.path.passed.values())
    if result.fanout is not None:
        passed.append(result.fanout.passed)
    return 0 if all(passed) else 1


def main(argv: list[str] | None = None) -> int:
    """`python -m rsu.bench.latency [options]`: the same as `rsu bench latency [options]`."""
    parser = argparse.ArgumentParser(prog="rsu")
    add_bench_latency_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["latency", *(sys.argv[1:] if argv is None else argv)])
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    return run_bench_latency_command(args)


if __name__ == "__main__":
    sys.exit(main())
