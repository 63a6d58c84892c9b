"""The perception stage: camera detections in, tracks and per-lane detector states out.

Two sources feed the same pipeline (tracking onward): the simulated camera's detections arriving
over MQTT, or frames from a real camera run through the object detector on this box.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import numpy as np

from rsu.perception.detections import Detections
from rsu.perception.pipeline import PerceptionOutput, PerceptionPipeline
from rsu.runtime.bus import MqttBus
from rsu.runtime.input_guard import InputGuard, TopicRule
from rsu.runtime.latency import (
    PUBLISH_WAIT_S,
    RealtimeSection,
    freeze_startup_objects,
    tune_interpreter_for_latency,
)
from rsu.runtime.stage import StageContext
from rsu.stages.outlet import Outlet
from rsu.web.preview import CameraPreview
from rsu_contracts.config.model import CameraConfig
from rsu_contracts.enums import CameraSource
from rsu_contracts.messages import CameraDetections, DetectorStates, TrackList
from rsu_contracts.topics import CAMERA_PREVIEW, DETECTORS, SIM_CAMERA, TRACKS, Topics

log = logging.getLogger(__name__)

# Without camera data for this long, detector states go out marked invalid so the controller
# falls back to recall instead of acting on a frozen picture.
SOURCE_SILENT_AFTER_S = 1.0


def detections_from_message(message: CameraDetections) -> Detections:
    objects = message.objects
    return Detections(
        capture_time_s=message.capture_time_s,
        ground_xy_m=np.array([[o.x_m, o.y_m] for o in objects], dtype=float).reshape(-1, 2),
        road_user=tuple(o.road_user for o in objects),
        confidence=np.array([o.confidence for o in objects], dtype=float),
        camera_id=message.camera_id,
    )


def simulated_camera(ctx: StageContext, bus: MqttBus, topics: Topics) -> Iterator[Detections | None]:
    """Detections from the simulated camera; None when the camera has gone silent.

    Every frame counts for the tracker (no newest-only), and the simulated camera runs on simulated
    time (no wall-clock freshness): the input guard checks the bounded schema and counts refusals."""
    bus.subscribe(topics.sim_camera, qos=SIM_CAMERA.qos)
    guard = InputGuard("perception", [TopicRule.of(topics, SIM_CAMERA, newest_only=False, check_age=False)])
    while not ctx.stopping:
        ctx.report_inputs(guard.report())
        item = bus.get(timeout_s=SOURCE_SILENT_AFTER_S)
        if item is None:
            yield None
            continue
        if item.topic != topics.sim_camera:
            continue
        message = guard.admit(item.topic, item.payload, None)
        if isinstance(message, CameraDetections):
            yield detections_from_message(message)


def video_camera(
    ctx: StageContext, camera: CameraConfig, preview: CameraPreview | None = None
) -> Iterator[Detections | None]:
    from rsu.detectors.factory import build_detector
    from rsu.sensors.video import VideoSource

    detector = build_detector(camera, config_dir=ctx.site_path.parent)
    source = VideoSource.from_camera(camera, config_dir=ctx.site_path.parent)
    for frame in source.frames():
        if ctx.stopping:
            return
        if frame is None:
            yield None
            continue
        detections = detector.detect(frame.image, frame.capture_time_s)
        if preview is not None:
            preview.hold(frame.image, detections)
        yield detections


def run(ctx: StageContext) -> None:
    site = ctx.site
    camera = site.cameras[0]
    topics = Topics.for_site(site)
    bus = MqttBus(site.mqtt, ctx.client_id())
    # The network thread and the work after the detector (tracking, zones, publishing) jump the
    # queue on a busy box; the detector does not.
    warning_path = RealtimeSection(site.v2x.realtime_priority, "perception stage")
    with warning_path:
        bus.connect()  # the network thread started here keeps the priority
    outlet = Outlet(bus, site.unit_id)
    pipeline = PerceptionPipeline(site, camera.id)
    # The web page's annotated camera view: video cameras only, on a local-only topic.
    preview = (
        CameraPreview(site, camera, lambda jpeg: bus.publish_to(topics.route(CAMERA_PREVIEW), jpeg))
        if camera.source is CameraSource.VIDEO
        else None
    )
    source = (
        simulated_camera(ctx, bus, topics)
        if camera.source is CameraSource.SIMULATION
        else video_camera(ctx, camera, preview)
    )
    tune_interpreter_for_latency()
    # At raised priority the track list must be on the wire before the section ends (see Outlet).
    realtime = site.v2x.realtime_priority > 0
    frozen = False
    try:
        for detections in source:
            ctx.beat()
            if not frozen:  # the detector is built by the first frame
                freeze_startup_objects()
                frozen = True
            if detections is None:
                # In lock-step simulation silence only means the world is waiting; live, it is a fault.
                if ctx.options.realtime:
                    publish_invalid(outlet, topics, camera.id)
                continue
            with warning_path:
                try:
                    output = pipeline.process(detections)
                except ValueError as exc:
                    log.warning("dropping detections at %.2f: %s", detections.capture_time_s, exc)
                    continue
                publish_time = time.time() if ctx.options.realtime else detections.capture_time_s
                publish_output(outlet, topics, camera.id, output, publish_time, wait_for_tracks=realtime)
            if preview is not None:
                preview.publish(output)
    finally:
        bus.close()


def publish_output(
    outlet: Outlet,
    topics: Topics,
    camera_id: str,
    output: PerceptionOutput,
    publish_time: float,
    wait_for_tracks: bool = False,
) -> None:
    tracks = outlet.build(TrackList, output.time_s, publish_time, camera_id=camera_id, objects=output.tracks)
    if wait_for_tracks:
        outlet.send_and_wait(topics.route(TRACKS), tracks, PUBLISH_WAIT_S)
    else:
        outlet.send(topics.route(TRACKS), tracks)
    states = outlet.build(
        DetectorStates,
        output.time_s,
        publish_time,
        camera_id=camera_id,
        valid=True,
        lanes=output.lanes,
        crosswalks=output.crosswalks,
        crossings=output.crossings,
        movements=output.movements,
    )
    outlet.send(topics.route(DETECTORS), states)


def publish_invalid(outlet: Outlet, topics: Topics, camera_id: str) -> None:
    now = time.time()
    states = outlet.build(DetectorStates, now, now, camera_id=camera_id, valid=False, lanes=[])
    outlet.send(topics.route(DETECTORS), states)
