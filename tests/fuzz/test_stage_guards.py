"""Fuzz every stage's input path from raw bytes: the stage's own input guard, then its handler.

test_stage_inputs.py feeds decoded messages straight to the pure handlers; here the bytes go the
way a stage's loop takes them off the bus: a drained backlog of hostile, mutated and genuine
payloads on the stage's subscribed topics, through that stage's InputGuard (decode, freshness on
a hostile clock, newest-only, the V2X stage's conflict check), and what it admits into the same
handler the loop calls (V2X `handle`, the controller's step, the uplink's `absorb`, the perception
pipeline of the simulated camera, the web page's LiveHub). The guard documents no exception for a
delivery on a ruled topic, nor do the handlers for an admitted one (the perception pipeline's
ValueError is the stage's documented drop), so any other exception is a crash.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from rsu.perception.pipeline import PerceptionPipeline
from rsu.runtime.input_guard import InputGuard, TopicRule
from rsu.stages import controller as controller_stage
from rsu.stages import uplink as uplink_stage
from rsu.stages import v2x as v2x_stage
from rsu.stages.perception import detections_from_message
from rsu.uplink.aggregator import IntervalAggregator
from rsu.web.hub import LiveHub
from rsu.web.state import PAGE_TOPICS
from rsu_contracts.messages import CameraDetections, CameraObject, DetectorStates, Message
from rsu_contracts.messages.warnings import WarningStatus
from rsu_contracts.topics import SIGNAL_STATE, SIM_CAMERA, Topics
from signal_control.controller import SignalController
from tests.fuzz.strategies import FUZZ_SETTINGS, NOW_S, SITE, encode_json, hostile_payloads, message_documents
from tests.fuzz.test_stage_inputs import genuine_detectors, mutated
from tests.v2x.test_stage_output import FakeBus, conflicting_tracks, signal
from tests.v2x_wire.builders import warning
from v2x.signing import UnitSigner

TOPICS = Topics.for_site(SITE)


@dataclass(frozen=True)
class Delivery:
    """What a stage drains from its bus (rsu.runtime.bus.Received): topic and raw payload."""

    topic: str
    payload: bytes


def genuine_camera(now_s: float) -> CameraDetections:
    objects = [
        CameraObject(x_m=-30.0 + 3.0 * k, y_m=2.0 * (k % 3), road_user="car" if k % 4 else "pedestrian", confidence=0.8)
        for k in range(12)
    ]
    return CameraDetections(
        unit_id=SITE.unit_id, seq=1, capture_time_s=now_s, publish_time_s=now_s,
        camera_id=SITE.cameras[0].id, objects=objects,
    )  # fmt: skip


GENUINE: dict[str, Message] = {
    TOPICS.signal_state: signal(SITE, NOW_S),
    TOPICS.tracks: conflicting_tracks(SITE, NOW_S),
    TOPICS.detectors: genuine_detectors(SITE, NOW_S),
    TOPICS.warnings_sent: warning(SITE.unit_id, now_s=NOW_S, status=WarningStatus.NEW),
    TOPICS.sim_camera: genuine_camera(NOW_S),
}


def payloads_for(topic: str) -> st.SearchStrategy[bytes]:
    """Genuine, mutated-genuine, schema-shaped and raw hostile payloads for one topic."""
    genuine = GENUINE.get(topic)
    if genuine is None:
        spec = TOPICS.spec_of(topic)
        schema = spec.schema if spec is not None else None
        if schema is None:
            return hostile_payloads
        return st.one_of(message_documents(schema).map(encode_json), hostile_payloads)
    document = genuine.model_dump(mode="json")
    return st.one_of(
        st.just(genuine.to_json()),
        mutated(document).map(encode_json),
        mutated(document).map(encode_json),
        message_documents(type(genuine)).map(encode_json),
        hostile_payloads,
    )


def backlogs(topics: list[str]) -> st.SearchStrategy[list[Delivery]]:
    delivery = st.sampled_from(topics).flatmap(lambda topic: payloads_for(topic).map(lambda p: Delivery(topic, p)))
    return st.lists(delivery, min_size=1, max_size=8)


# The stage's own clock: plausible, or far off (a wrong clock must not crash a stage either); None
# is lock-step simulation, where message time is the only time.
stage_clocks = st.one_of(
    st.none(),
    st.floats(min_value=NOW_S - 5.0, max_value=NOW_S + 5.0),
    st.floats(min_value=NOW_S - 1e6, max_value=NOW_S + 1e6),
)


@FUZZ_SETTINGS
@given(st.lists(st.tuples(backlogs([TOPICS.signal_state, TOPICS.tracks]), stage_clocks), min_size=1, max_size=4))
def test_v2x_stage_input_path(drains: list[tuple[list[Delivery], float | None]]) -> None:
    output = v2x_stage.V2XOutput(
        SITE, v2x_stage.wire_publisher(SITE, FakeBus(), UnitSigner(Ed25519PrivateKey.generate(), SITE.unit_id))
    )
    for backlog, clock_s in drains:
        for admitted in output.guard.take(backlog, clock_s):
            v2x_stage.handle(output, TOPICS, admitted, realtime=False)  # type: ignore[arg-type]
    output.guard.report()


@FUZZ_SETTINGS
@given(st.lists(st.tuples(backlogs([TOPICS.detectors]), st.floats(0.01, 5.0)), min_size=1, max_size=6))
def test_controller_stage_input_path(drains: list[tuple[list[Delivery], float]]) -> None:
    guard = controller_stage.input_guard(SITE)
    controller = SignalController(SITE)
    now_s = NOW_S
    newest: DetectorStates | None = None
    for backlog, delta_s in drains:
        now_s += delta_s
        for admitted in guard.take(backlog, now_s):
            if isinstance(admitted.message, DetectorStates):
                newest = admitted.message
        fresh = newest is not None and newest.valid and now_s - newest.capture_time_s <= 2.0
        if fresh and newest is not None:
            controller.step(now_s, newest.lanes, newest.crosswalks, arrivals_s=controller_stage.lookahead_of(newest))
        else:
            controller.step(now_s, None)
    guard.report()


@FUZZ_SETTINGS
@given(
    backlogs([TOPICS.detectors, TOPICS.signal_state, TOPICS.warnings_sent]),
    stage_clocks,
    st.floats(min_value=NOW_S - 3_600, max_value=NOW_S + 3_600),
)
def test_uplink_stage_input_path(backlog: list[Delivery], clock_s: float | None, seal_s: float) -> None:
    guard = uplink_stage.input_guard(SITE)
    aggregators = [IntervalAggregator(SITE, 60.0)]
    for delivery in backlog:
        uplink_stage.absorb(aggregators, TOPICS, delivery.topic, delivery.payload, guard, clock_s)
    for body in aggregators[0].seal_until(seal_s):
        assert body is not None


@FUZZ_SETTINGS
@given(backlogs([TOPICS.sim_camera]))
def test_perception_stage_input_path(backlog: list[Delivery]) -> None:
    # The perception stage's guard for the simulated camera (rsu.stages.perception.simulated_camera).
    guard = InputGuard("perception", [TopicRule.of(TOPICS, SIM_CAMERA, newest_only=False, check_age=False)])
    pipeline = PerceptionPipeline(SITE, SITE.cameras[0].id)
    for delivery in backlog:
        message = guard.admit(delivery.topic, delivery.payload, None)
        if isinstance(message, CameraDetections):
            with contextlib.suppress(ValueError):  # the stage logs and drops such detections
                pipeline.process(detections_from_message(message))


@FUZZ_SETTINGS
@given(backlogs([TOPICS.signal_state]))
def test_world_stage_input_guard(backlog: list[Delivery]) -> None:
    # The world stage's guard (rsu.stages.world); what it admits drives SUMO's heads, which refuse
    # conflicting greens themselves (tests/sim), so the fuzz stops at the admitted message.
    guard = InputGuard("world", [TopicRule.of(TOPICS, SIGNAL_STATE, newest_only=False, check_age=False)])
    for delivery in backlog:
        guard.admit(delivery.topic, delivery.payload, None)


# Every topic the page reads, plus its status and camera-preview topics (text and raw JPEG bytes).
WEB_TOPICS = sorted({TOPICS.topic(spec) for spec in PAGE_TOPICS} | {TOPICS.status, TOPICS.camera_preview})


@FUZZ_SETTINGS
@given(backlogs(WEB_TOPICS), st.booleans())
def test_web_page_feed_input_path(backlog: list[Delivery], realtime: bool) -> None:
    hub = LiveHub(SITE, realtime=realtime, wall_clock=lambda: NOW_S)
    for delivery in backlog:
        hub.absorb(delivery.topic, delivery.payload)
    hub.snapshot_json()
    hub.metrics.render()
