"""Part (a), driving the unit: real frames through the detector and tracker in this process, the V2X
stage's logic and a vehicle in their own processes, each noting when a frame's warning passed it."""

from __future__ import annotations

import multiprocessing
import multiprocessing.synchronize
import os
import queue
import sys
import tempfile
import time
import uuid
from multiprocessing.queues import Queue as MpQueue
from pathlib import Path
from typing import Any

from rsu.key_files import generate_key_files, signer_from_key_file
from rsu.runtime.bus import MqttBus
from rsu.runtime.latency import (
    PUBLISH_WAIT_S,
    RealtimeSection,
    freeze_startup_objects,
    set_thread_realtime_priority,
    tune_interpreter_for_latency,
)
from rsu.stages.v2x import V2XOutput, configure_stage_process, wire_publisher
from rsu_contracts.config import SiteConfig, load_site_config
from rsu_contracts.config.model import CameraConfig, MqttConfig
from rsu_contracts.enums import CameraSource, RoadUserType
from rsu_contracts.messages import (
    CollisionWarning,
    Message,
    SignalState,
    TrackedObject,
    TrackList,
    WarningStatus,
    decode,
)
from rsu_contracts.topics import TRACKS, Topics
from rsu_tools.bench.latency.plan import READY_TIMEOUT_S, LatencyOptions, _bench_site
from rsu_tools.bench.latency.statistics import PathResult, Record, _FrameTimes, _path_result
from rsu_tools.testing.signal_states import TimingWindows, steady_signal_state
from v2x.wire import WirePublisher, encode_for_topic, message_class_of

# Synthetic conflicting pair: track ids above anything a tracker hands out in a short run, placed
# 200 m from the junction so no real road user is involved.
SYNTHETIC_ID_BASE = 2_000_000
SYNTHETIC_POSITION_M = (-200.0, -200.0)


def _note_priority_problem(problem: str | None) -> None:
    if problem:
        print(f"rsu bench latency: {problem}; normal scheduling", file=sys.stderr)


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
    return steady_signal_state(site, now_s, green_group=None, windows=TimingWindows(-5.0, 5.0, 30.0, 10.0))


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
        properties = wire.signer.sign(
            encoded.topic, encoded.payload, encoded.properties, retained_max_age_s=wire.retained_max_age_s(encoded)
        )
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
    wire = _TimedWire(wire_publisher(site, bus, signer_from_key_file(key_path, unit_id)), records)
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
    from rsu_clients.vehicle import VehicleClient, VehicleMessage

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
    from rsu.detectors.factory import build_detector
    from rsu.perception.pipeline import PerceptionPipeline
    from rsu.sensors.video import VideoSource, expand_uri

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
