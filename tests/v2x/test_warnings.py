"""Warning lifecycle: one warning per conflict, rate-limited updates, hysteresis on the end."""

from __future__ import annotations

import pytest

from rsu_contracts.config.model import GeoReference, SiteConfig, WarningConfig
from rsu_contracts.messages import CollisionWarning, Sequencer
from rsu_contracts.messages.warnings import Severity, WarningKind, WarningStatus
from tests.v2x.builders import EAST, NORTH, NOW_S, track
from v2x.conflicts import Conflict, find_conflicts
from v2x.geo import LocalFrame
from v2x.warnings import WarningEvent, WarningTracker

REFERENCE = GeoReference(latitude_deg=48.137154, longitude_deg=11.576124, altitude_m=520.0)
# Confirmation off: these tests are about the rest of the lifecycle (see the confirm tests below).
CONFIG = WarningConfig(clear_after_s=1.0, confirm_s=0.0)
STEP_S = 0.1


def crossing(severity: Severity = Severity.WARNING, ttc_s: float = 2.0, ids: tuple[int, int] = (1, 2)) -> Conflict:
    a = track(ids[0], -20.0, 0.0, 10.0, EAST)
    b = track(ids[1], 0.0, -20.0, 10.0, NORTH)
    return Conflict(WarningKind.CROSSING, severity, ttc_s, 3.0, 4.0, (a, b))


def run(
    tracker: WarningTracker, frames: list[list[Conflict]], start_s: float = NOW_S
) -> list[tuple[float, WarningEvent]]:
    """Feed one snapshot per 0.1 s; return (time, event) pairs."""
    events: list[tuple[float, WarningEvent]] = []
    for n, conflicts in enumerate(frames):
        now = start_s + n * STEP_S
        events.extend((now, event) for event in tracker.update(conflicts, now))
    return events


def statuses(events: list[tuple[float, WarningEvent]]) -> list[WarningStatus]:
    return [event.status for _, event in events]


def test_new_then_ended_after_clear_after_s() -> None:
    tracker = WarningTracker(CONFIG, REFERENCE)
    events = run(tracker, [[crossing()]] * 5 + [[]] * 15)
    assert statuses(events) == [WarningStatus.NEW, WarningStatus.ENDED]
    (start, new), (end, ended) = events
    assert start == NOW_S
    # Last seen at +0.4 s; ends once absent for 1.0 s.
    assert end == pytest.approx(NOW_S + 1.4)
    assert new.warning_id == ended.warning_id
    assert ended.ttc_s is None
    assert tracker.active_count == 0


def test_flickering_conflict_keeps_one_warning() -> None:
    # Present 0.3 s, absent 0.2 s, repeatedly, for 3 s: detection dropouts, not new conflicts.
    frames = ([[crossing()]] * 3 + [[]] * 2) * 6
    tracker = WarningTracker(CONFIG, REFERENCE)
    events = run(tracker, frames)
    assert [e.status for _, e in events if e.status is not WarningStatus.UPDATE] == [WarningStatus.NEW]
    assert len({e.warning_id for _, e in events}) == 1
    assert tracker.active_count == 1


def test_updates_at_most_every_second_while_severity_is_steady() -> None:
    tracker = WarningTracker(CONFIG, REFERENCE)
    events = run(tracker, [[crossing()]] * 31)  # 0.0 .. 3.0 s
    assert statuses(events) == [WarningStatus.NEW] + [WarningStatus.UPDATE] * 3
    assert [t - NOW_S for t, _ in events] == pytest.approx([0.0, 1.0, 2.0, 3.0])


def test_severity_rise_is_reported_at_once_and_fall_only_with_the_refresh() -> None:
    tracker = WarningTracker(CONFIG, REFERENCE)
    warning, critical = crossing(Severity.WARNING, 2.0), crossing(Severity.CRITICAL, 1.2)
    frames = [[warning], [warning], [critical], [warning], [critical], [warning]] + [[warning]] * 10
    events = run(tracker, frames)
    reported = [(round(t - NOW_S, 1), e.status, e.severity) for t, e in events]
    assert reported == [
        (0.0, WarningStatus.NEW, Severity.WARNING),
        (0.2, WarningStatus.UPDATE, Severity.CRITICAL),
        # No flapping back and forth: the lower severity waits for the 1 s refresh after the last update.
        (1.2, WarningStatus.UPDATE, Severity.WARNING),
    ]


def test_separate_conflicts_get_separate_stable_ids() -> None:
    tracker = WarningTracker(CONFIG, REFERENCE)
    events = run(tracker, [[crossing(ids=(1, 2)), crossing(ids=(3, 4))]] * 12)
    ids = {e.warning_id for _, e in events}
    assert ids == {f"crossing-1-2-{round(NOW_S * 1000)}", f"crossing-3-4-{round(NOW_S * 1000)}"}


def test_participant_order_does_not_change_the_warning() -> None:
    tracker = WarningTracker(CONFIG, REFERENCE)
    events = run(tracker, [[crossing(ids=(1, 2))], [crossing(ids=(2, 1))]])
    assert statuses(events) == [WarningStatus.NEW]


def test_a_conflict_returning_after_its_end_is_a_new_warning() -> None:
    tracker = WarningTracker(CONFIG, REFERENCE)
    events = run(tracker, [[crossing()]] + [[]] * 11 + [[crossing()]])
    assert statuses(events) == [WarningStatus.NEW, WarningStatus.ENDED, WarningStatus.NEW]
    assert events[0][1].warning_id != events[2][1].warning_id


def test_clear_after_zero_ends_on_the_first_absent_snapshot() -> None:
    tracker = WarningTracker(WarningConfig(clear_after_s=0.0, confirm_s=0.0), REFERENCE)
    assert statuses(run(tracker, [[crossing()], []])) == [WarningStatus.NEW, WarningStatus.ENDED]


def test_duplicate_conflicts_in_one_snapshot_keep_the_most_severe() -> None:
    tracker = WarningTracker(CONFIG, REFERENCE)
    [(_, event)] = run(tracker, [[crossing(Severity.WARNING, 2.5), crossing(Severity.CRITICAL, 1.0)]])
    assert (event.severity, event.ttc_s) == (Severity.CRITICAL, 1.0)


def test_state_is_bounded() -> None:
    tracker = WarningTracker(CONFIG, REFERENCE, max_active=4)
    first = [crossing(ids=(i, i + 100)) for i in range(4)]
    run(tracker, [first])
    # All four are live in the next snapshot too, so a fifth finds no room and is counted.
    events = tracker.update([*first, crossing(ids=(50, 150))], NOW_S + 0.1)
    assert tracker.active_count == 4
    assert tracker.dropped_total == 1
    assert all(e.status is not WarningStatus.NEW for e in events)
    # Once some are stale (absent, not yet cleared), a newcomer replaces the least recently seen.
    tracker.update(first[1:], NOW_S + 0.2)
    events = tracker.update([*first[1:], crossing(ids=(50, 150))], NOW_S + 0.3)
    assert [(e.status, e.participants[0].track_id) for e in events if e.status is not WarningStatus.UPDATE] == [
        (WarningStatus.ENDED, 0),
        (WarningStatus.NEW, 50),
    ]
    assert tracker.active_count == 4


def test_end_all_and_clock_going_back() -> None:
    tracker = WarningTracker(CONFIG, REFERENCE)
    run(tracker, [[crossing(ids=(1, 2)), crossing(ids=(3, 4))]])
    assert statuses([(0.0, e) for e in tracker.end_all(NOW_S + 0.1)]) == [WarningStatus.ENDED] * 2
    assert tracker.active_count == 0
    run(tracker, [[crossing()]])
    events = tracker.update([crossing()], NOW_S - 100.0)  # a replay restarted
    assert statuses([(0.0, e) for e in events]) == [WarningStatus.ENDED, WarningStatus.NEW]


def test_event_builds_a_collision_warning_with_geodetic_conflict_point() -> None:
    tracker = WarningTracker(CONFIG, REFERENCE)
    [event] = tracker.update([crossing()], NOW_S)
    header = Sequencer("rsu-test").header(capture_time_s=NOW_S, publish_time_s=NOW_S + 0.01)
    message = CollisionWarning(**header, **event.fields())
    assert message.status is WarningStatus.NEW
    assert message.kind is WarningKind.CROSSING
    assert (message.conflict_x_m, message.conflict_y_m) == (3.0, 4.0)
    lat, lon = LocalFrame.from_reference(REFERENCE).to_geodetic(3.0, 4.0)
    assert (message.conflict_latitude_deg, message.conflict_longitude_deg) == (lat, lon)
    assert message.conflict_latitude_deg == pytest.approx(48.137154 + 4.0 / 111_200, abs=1e-6)
    assert [(p.track_id, p.x_m, p.y_m, p.speed_mps, p.heading_deg) for p in message.participants] == [
        (1, -20.0, 0.0, 10.0, 90.0),
        (2, 0.0, -20.0, 10.0, 0.0),
    ]
    assert CollisionWarning.model_validate_json(message.to_json()) == message


def test_two_cars_driving_through_the_junction_give_one_warning_lifecycle(sample_site: SiteConfig) -> None:
    """find_conflicts + WarningTracker over a moving scene: one NEW, refreshes, one ENDED."""
    tracker = WarningTracker(sample_site.v2x.warnings, sample_site.reference)
    events: list[WarningEvent] = []
    for step in range(80):  # 8 s at 10 Hz; the cars would meet at (0, 0) after 4 s
        t = step * STEP_S
        eastbound = track(1, -60.0 + 15.0 * t, 0.0, 15.0, EAST)
        northbound = track(2, 0.0, -40.0 + 10.0 * t, 10.0, NORTH)
        conflicts = find_conflicts([eastbound, northbound], None, sample_site, sample_site.v2x.warnings, NOW_S + t)
        events += tracker.update(conflicts, NOW_S + t)
    lifecycle = [e.status for e in events if e.status is not WarningStatus.UPDATE]
    assert lifecycle == [WarningStatus.NEW, WarningStatus.ENDED]
    assert len({e.warning_id for e in events}) == 1
    assert Severity.CRITICAL in {e.severity for e in events}
    assert tracker.active_count == 0


def test_a_warning_needs_to_last_confirm_s_unless_it_is_critical() -> None:
    tracker = WarningTracker(WarningConfig(clear_after_s=1.0, confirm_s=0.1), REFERENCE)
    # Seen once, gone: never a warning.
    assert run(tracker, [[crossing()], [], [], [crossing(ids=(3, 4))]]) == []
    # Seen in two consecutive snapshots: NEW on the second.
    events = run(tracker, [[crossing(ids=(5, 6))], [crossing(ids=(5, 6))]], start_s=NOW_S + 1.0)
    assert [(round(t - NOW_S, 1), e.status) for t, e in events] == [(1.1, WarningStatus.NEW)]
    # Critical: at once.
    [(_, event)] = run(tracker, [[crossing(Severity.CRITICAL, 1.0, ids=(7, 8))]], start_s=NOW_S + 2.0)
    assert event.status is WarningStatus.NEW


def test_default_confirmation_is_two_frames_at_ten_hertz(sample_site: SiteConfig) -> None:
    assert sample_site.v2x.warnings.confirm_s == pytest.approx(STEP_S)
