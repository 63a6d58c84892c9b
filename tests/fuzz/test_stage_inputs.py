"""Fuzz the pure handlers the stages call with decoded inputs: hostile but schema-valid messages.

Each example takes genuine messages (the ones the replay and stage tests use), replaces some of
their values with hostile ones (huge, tiny, NaN/inf, future and ancient timestamps, long strings,
long lists), keeps only what `rsu_contracts.messages.decode` accepts (what a stage would hand on),
and feeds the result to the stage logic: V2XOutput.on_signal_state / on_tracks (with the real
encoders and signer behind it, JSON and UPER), SignalController.step and IntervalAggregator.
None of these documents an exception for a decoded message, so any exception is a crash.
"""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import event, given
from hypothesis import strategies as st

from rsu.stages.controller import lookahead_of
from rsu.stages.v2x import V2XOutput, wire_publisher
from rsu.uplink.aggregator import IntervalAggregator
from rsu_contracts.config.model import SiteConfig, V2XConfig, V2XEncodings
from rsu_contracts.messages import (
    CollisionWarning,
    CrosswalkObservation,
    DetectorStates,
    LaneObservation,
    Message,
    MessageError,
    SignalState,
    TrackList,
    decode,
)
from rsu_contracts.messages.warnings import WarningStatus
from signal_control.controller import SignalController
from tests.fuzz.strategies import (
    FUZZ_SETTINGS,
    MAX_LIST,
    NOW_S,
    SITE,
    encode_json,
    hostile_floats,
    hostile_ints,
    hostile_text,
    hostile_timestamps,
    message_documents,
)
from tests.v2x.test_stage_output import FakeBus, conflicting_tracks, signal
from tests.v2x_wire.builders import warning
from v2x.signing import UnitSigner

UPER_SITE = SITE.model_copy(update={"v2x": V2XConfig(encodings=V2XEncodings(spat="uper", map="uper", warnings="uper"))})


def genuine_detectors(site: SiteConfig, now_s: float) -> DetectorStates:
    lanes = [
        LaneObservation(
            lane_id=lane.id,
            stop_bar_occupied=index % 2 == 0,
            queue_length_m=6.0 * index,
            queued_vehicles=index,
            approaching_vehicles=1,
            approaching_speed_mean_mps=9.0,
            stop_bar_gap_s=2.5,
            max_wait_s=12.0,
            arrival_times_s=[3.0, 7.5],
        )
        for approach in site.approaches
        for index, lane in enumerate(approach.lanes)
    ]
    crosswalks = [
        CrosswalkObservation(crosswalk_id=crosswalk.id, pedestrians=2, waiting_pedestrians=1)
        for crosswalk in site.crosswalks
    ]
    return DetectorStates(
        unit_id=site.unit_id,
        seq=1,
        capture_time_s=now_s,
        publish_time_s=now_s,
        camera_id=site.cameras[0].id,
        valid=True,
        lanes=lanes,
        crosswalks=crosswalks,
    )


def _is_timestamp(key: str) -> bool:
    return key.endswith("_time_s") or key in {"since_s", "time_s"}


@st.composite
def mutated(draw: st.DrawFn, value: Any, key: str = "") -> Any:
    """`value` with some leaves replaced by hostile ones and some lists grown."""
    if isinstance(value, dict):
        return {name: draw(mutated(item, name)) for name, item in value.items()}
    if isinstance(value, list):
        items = [draw(mutated(item, key)) for item in value]
        if items and draw(st.integers(0, 5)) == 0:
            items = items * draw(st.integers(2, MAX_LIST))  # a long list
        return items
    if draw(st.integers(0, 24)):
        return value  # most values stay genuine, so the message still decodes
    if isinstance(value, bool):
        return draw(st.booleans())
    if isinstance(value, int):
        return draw(hostile_ints)
    if isinstance(value, float):
        return draw(hostile_timestamps if _is_timestamp(key) else hostile_floats)
    if isinstance(value, str):
        return draw(hostile_text)
    return value


def decoded_or_none(model: type[Message], document: dict[str, Any]) -> Any:
    """What a stage would hand on: the decoded message, or None when decode rejects it."""
    try:
        message = decode(model, encode_json(document))
    except MessageError:
        event(f"{model.__name__}: rejected by decode")
        return None
    event(f"{model.__name__}: decoded")
    return message


def hostile_messages(model: type[Message], genuine: Message) -> st.SearchStrategy[Any]:
    genuine_document = genuine.model_dump(mode="json")
    # Mostly mutated genuine messages: random documents rarely decode, so they seldom reach the logic.
    mutants = mutated(genuine_document)
    return st.one_of(mutants, mutants, mutants, message_documents(model)).map(
        lambda document: decoded_or_none(model, document)
    )


# ---------------------------------------------------------------------------------------- V2X stage


@FUZZ_SETTINGS
@given(
    st.sampled_from([SITE, UPER_SITE]),
    st.lists(
        st.one_of(
            hostile_messages(SignalState, signal(SITE, NOW_S)),
            hostile_messages(TrackList, conflicting_tracks(SITE, NOW_S)),
        ),
        min_size=1,
        max_size=6,
    ),
)
def test_v2x_output_handles_hostile_decoded_inputs(site: SiteConfig, messages: list[Any]) -> None:
    bus = FakeBus()
    output = V2XOutput(site, wire_publisher(site, bus, UnitSigner(Ed25519PrivateKey.generate(), site.unit_id)))
    output.maybe_publish_map(NOW_S, NOW_S)
    for message in messages:
        if isinstance(message, SignalState):
            output.on_signal_state(message, message.publish_time_s)
        elif isinstance(message, TrackList):
            output.on_tracks(message, message.publish_time_s)
    output.end_all(NOW_S + 10.0, NOW_S + 10.0)


def _tracks_with(capture_time_s: float, follower_speed_mps: float) -> TrackList:
    genuine = conflicting_tracks(SITE, NOW_S).model_dump(mode="json")
    genuine["capture_time_s"] = capture_time_s
    genuine["objects"][1]["speed_mps"] = follower_speed_mps
    return decode(TrackList, encode_json(genuine))


def test_a_track_list_stamped_past_any_plausible_time_is_rejected_at_decode() -> None:
    # Shrunk fuzz example: capture_time_s = 1e308 reached round(now_s * 1000) in WarningTracker._start
    # (OverflowError) before timestamps were bounded in the envelope.
    with pytest.raises(MessageError, match="capture_time_s"):
        _tracks_with(1e308, 15.0)


def test_an_absurd_speed_is_rejected_at_decode() -> None:
    # Shrunk fuzz example: speed_mps = 1.34e154 reached closing**2 in prediction.rear_end_drac
    # (OverflowError) before speeds were bounded in the track model.
    with pytest.raises(MessageError, match="speed_mps"):
        _tracks_with(NOW_S, 1.3407807929942597e154)


# ------------------------------------------------------------------------------------ controller


@FUZZ_SETTINGS
@given(
    st.lists(
        st.tuples(
            st.floats(min_value=0.01, max_value=30.0),
            hostile_messages(DetectorStates, genuine_detectors(SITE, NOW_S)),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_controller_steps_on_hostile_lane_observations(steps: list[tuple[float, DetectorStates | None]]) -> None:
    # The wall-clock mode of the controller stage: now_s is the unit's own (increasing) clock,
    # lanes, crosswalks and the lookahead come from the newest decoded detector message.
    controller = SignalController(SITE)
    now_s = NOW_S
    for delta_s, states in steps:
        now_s += delta_s
        if states is None or not states.valid:
            controller.step(now_s, None)
            continue
        controller.step(now_s, states.lanes, states.crosswalks, arrivals_s=lookahead_of(states))


# ------------------------------------------------------------------------------------ uplink


@FUZZ_SETTINGS
@given(
    st.lists(
        st.one_of(
            hostile_messages(DetectorStates, genuine_detectors(SITE, NOW_S)),
            hostile_messages(SignalState, signal(SITE, NOW_S)),
            hostile_messages(CollisionWarning, warning(SITE.unit_id, now_s=NOW_S, status=WarningStatus.NEW)),
        ),
        min_size=1,
        max_size=8,
    ),
    st.lists(st.floats(min_value=NOW_S - 3_600, max_value=NOW_S + 3_600), min_size=1, max_size=3),
)
def test_aggregator_handles_hostile_decoded_inputs(messages: list[Any], seal_times_s: list[float]) -> None:
    aggregator = IntervalAggregator(SITE, 60.0)
    for message in messages:
        if isinstance(message, DetectorStates):
            aggregator.add_detectors(message)
        elif isinstance(message, SignalState):
            aggregator.add_signal(message)
        elif isinstance(message, CollisionWarning):
            aggregator.add_warning(message)
    for seal_s in sorted(seal_times_s):
        for body in aggregator.seal_until(seal_s):
            # The sealed body must serialise: it is what the uplink publishes to the centre.
            assert body is not None
