"""The input guard on its own: plain data in, decisions and counts out (no broker, no clock)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pytest

from rsu.runtime.input_guard import FUTURE_TOLERANCE_S, InputGuard, Rejection, TopicRule
from rsu_contracts.messages import DetectorStates, LaneObservation, Message, TrackList
from rsu_contracts.topics import DETECTORS, TRACKS, Topics

TOPICS = Topics("guard-test")
NOW_S = 1_700_000_000.0


@dataclass(frozen=True)
class Delivery:
    topic: str
    payload: bytes


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def detectors(capture_s: float, seq: int = 0, queued: int = 0) -> bytes:
    lane = LaneObservation(
        lane_id="north_in", stop_bar_occupied=False, queue_length_m=0.0, queued_vehicles=queued,
        approaching_vehicles=0, stop_bar_gap_s=1.0,
    )  # fmt: skip
    return DetectorStates(
        unit_id="guard-test", seq=seq, capture_time_s=capture_s, publish_time_s=capture_s,
        camera_id="cam", valid=True, lanes=[lane],
    ).to_json()  # fmt: skip


def tracks(capture_s: float, seq: int = 0) -> bytes:
    return TrackList(
        unit_id="guard-test", seq=seq, capture_time_s=capture_s, publish_time_s=capture_s, camera_id="cam", objects=[]
    ).to_json()


def guard(clock: Clock | None = None, newest_only: bool = True, log_period_s: float = 10.0) -> InputGuard:
    return InputGuard(
        "test",
        [TopicRule.of(TOPICS, DETECTORS, newest_only=newest_only), TopicRule.of(TOPICS, TRACKS, newest_only=False)],
        log_period_s=log_period_s,
        monotonic=clock or Clock(),
    )


def test_a_fresh_valid_message_is_admitted_and_nothing_is_counted() -> None:
    checked = guard()
    message = checked.admit(TOPICS.detectors, detectors(NOW_S - 0.1), NOW_S)
    assert isinstance(message, DetectorStates)
    assert not checked.counts
    assert checked.report().rejections == () and checked.report().problem is None


@pytest.mark.parametrize(
    ("capture_s", "reason"),
    [
        (NOW_S + 1e6, Rejection.FUTURE),
        (NOW_S + FUTURE_TOLERANCE_S + 0.01, Rejection.FUTURE),
        (NOW_S - (DETECTORS.stale_after_s or 0.0) - 0.01, Rejection.STALE),
    ],
)
def test_future_and_stale_capture_times_are_dropped_and_counted(capture_s: float, reason: Rejection) -> None:
    checked = guard()
    assert checked.admit(TOPICS.detectors, detectors(capture_s), NOW_S) is None
    assert checked.count(TOPICS.detectors, reason) == 1
    assert checked.report().problem is not None and reason.value in checked.report().problem


def test_a_capture_time_within_the_tolerance_is_admitted() -> None:
    assert guard().admit(TOPICS.detectors, detectors(NOW_S + FUTURE_TOLERANCE_S - 0.01), NOW_S) is not None
    assert guard().admit(TOPICS.detectors, detectors(NOW_S - 1.9), NOW_S) is not None


def test_without_a_clock_only_the_schema_and_the_order_are_checked() -> None:
    checked = guard()
    assert checked.admit(TOPICS.detectors, detectors(NOW_S + 1e6), None) is not None
    assert checked.admit(TOPICS.detectors, detectors(NOW_S), None) is None
    assert checked.count(TOPICS.detectors, Rejection.OUT_OF_ORDER) == 1


@pytest.mark.parametrize(
    "payload",
    [
        b"not json at all",
        b'{"schema_name": "rsu.detectors"}',
        detectors(NOW_S).replace(b'"queued_vehicles":0', b'"queued_vehicles":1e20'),
        detectors(NOW_S).replace(b'"queue_length_m":0.0', b'"queue_length_m":Infinity'),
        detectors(NOW_S).replace(b'"queue_length_m":0.0', b'"queue_length_m":NaN'),
    ],
)
def test_invalid_and_out_of_bounds_payloads_are_counted_as_invalid(payload: bytes) -> None:
    checked = guard()
    assert checked.admit(TOPICS.detectors, payload, NOW_S) is None
    assert checked.count(TOPICS.detectors, Rejection.INVALID) == 1


def test_a_backlog_of_a_state_topic_is_acted_on_once_for_its_newest_message() -> None:
    checked = guard()
    backlog = [Delivery(TOPICS.detectors, detectors(NOW_S - 1.0 + k * 0.0004, seq=k)) for k in range(2_000)]
    admitted = checked.take(backlog, NOW_S)
    assert len(admitted) == 1
    message = admitted[0].message
    assert isinstance(message, DetectorStates) and message.seq == 1_999
    assert checked.count(TOPICS.detectors, Rejection.SUPERSEDED) == 1_999
    # A superseded backlog is routine under load: not a problem health reports.
    assert checked.report().problem is None
    # What was skipped is never replayed: the next drain has only what came since.
    assert checked.take([], NOW_S) == []


def test_a_bad_newest_message_does_not_hide_the_genuine_one_before_it() -> None:
    checked = guard()
    backlog = [
        Delivery(TOPICS.detectors, detectors(NOW_S - 0.2, seq=1)),
        Delivery(TOPICS.detectors, detectors(NOW_S - 0.1, seq=2)),
        Delivery(TOPICS.detectors, detectors(NOW_S + 1e6, seq=3)),
    ]
    admitted = checked.take(backlog, NOW_S)
    assert [item.message.seq for item in admitted if item.message is not None] == [2]
    assert checked.count(TOPICS.detectors, Rejection.FUTURE) == 1
    assert checked.count(TOPICS.detectors, Rejection.SUPERSEDED) == 1


def test_a_state_older_than_one_acted_on_is_refused() -> None:
    checked = guard()
    assert checked.take([Delivery(TOPICS.detectors, detectors(NOW_S - 0.1))], NOW_S)
    assert checked.take([Delivery(TOPICS.detectors, detectors(NOW_S - 0.5))], NOW_S) == []
    assert checked.count(TOPICS.detectors, Rejection.OUT_OF_ORDER) == 1
    # The same capture time again (the controller decides twice on one detector state) is fine.
    assert checked.take([Delivery(TOPICS.detectors, detectors(NOW_S - 0.1))], NOW_S)


def test_event_topics_keep_every_message_and_unruled_topics_pass_through_in_order() -> None:
    checked = guard()
    other = Delivery("rsu/guard-test/priority/request", b"signed elsewhere")
    backlog = [
        Delivery(TOPICS.tracks, tracks(NOW_S - 0.3, seq=1)),
        other,
        Delivery(TOPICS.tracks, tracks(NOW_S - 0.2, seq=2)),
        Delivery(TOPICS.detectors, detectors(NOW_S - 0.2, seq=7)),
        Delivery(TOPICS.tracks, tracks(NOW_S + 5.0, seq=3)),
    ]
    admitted = checked.take(backlog, NOW_S)
    assert [item.delivery for item in admitted] == [backlog[0], other, backlog[2], backlog[3]]
    assert admitted[1].message is None
    assert checked.count(TOPICS.tracks, Rejection.FUTURE) == 1


def test_refusals_are_logged_once_per_topic_and_reason_per_period(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    checked = guard(clock, log_period_s=5.0)
    with caplog.at_level(logging.WARNING):
        for _ in range(1_000):
            checked.admit(TOPICS.detectors, detectors(NOW_S + 1e6), NOW_S)
            checked.admit(TOPICS.detectors, b"garbage", NOW_S)
        assert len(caplog.records) == 2
        clock.now += 5.0
        checked.admit(TOPICS.detectors, detectors(NOW_S + 1e6), NOW_S)
    assert len(caplog.records) == 3
    assert "999 more since the last line" in caplog.records[-1].getMessage()
    assert checked.count(TOPICS.detectors, Rejection.FUTURE) == 1_001
    report = {(entry.topic, entry.reason): entry.count for entry in checked.report().rejections}
    assert report == {(TOPICS.detectors, "future"): 1_001, (TOPICS.detectors, "invalid"): 1_000}


def test_the_health_note_clears_once_refusals_stop() -> None:
    clock = Clock()
    checked = guard(clock)
    checked.admit(TOPICS.detectors, detectors(NOW_S + 1e6), NOW_S)
    assert checked.report().problem is not None
    clock.now += 60.0
    assert checked.report().problem is None
    assert checked.report().rejections  # the counts stay


def test_a_stage_check_refuses_at_admission_so_a_forged_newest_falls_back_to_the_genuine_one() -> None:
    def no_queues(message: Message, now_s: float | None) -> tuple[Rejection, str] | None:
        assert isinstance(message, DetectorStates)
        return (Rejection.INVALID, "queue seen") if message.lanes[0].queued_vehicles else None

    checked = InputGuard("test", [TopicRule.of(TOPICS, DETECTORS, newest_only=True, check=no_queues)])
    backlog = [
        Delivery(TOPICS.detectors, detectors(NOW_S - 0.2, seq=1)),
        Delivery(TOPICS.detectors, detectors(NOW_S - 0.1, seq=2, queued=5)),
    ]
    admitted = checked.take(backlog, NOW_S)
    assert [item.message.seq for item in admitted if item.message is not None] == [1]
    assert checked.count(TOPICS.detectors, Rejection.INVALID) == 1
