"""Controller state -> J2735 SPaT movement states."""

from __future__ import annotations

import pytest

from rsu_contracts.messages.signal import Indication, SpatMovement
from tests.v2x.builders import NOW_S, signal_state
from v2x.spat import EVENT_STATE_BY_INDICATION, spat_movements


@pytest.mark.parametrize(
    ("indication", "event_state"),
    [
        (Indication.RED, "stop-And-Remain"),
        (Indication.GREEN, "protected-Movement-Allowed"),
        (Indication.YELLOW, "protected-clearance"),
        (Indication.RED_YELLOW, "pre-Movement"),
        (Indication.PED_CLEARANCE, "protected-clearance"),
        (Indication.FLASHING_RED, "stop-Then-Proceed"),
        (Indication.FLASHING_YELLOW, "permissive-Movement-Allowed"),
        (Indication.DARK, "dark"),
    ],
)
def test_indication_maps_to_j2735_movement_phase_state(indication: Indication, event_state: str) -> None:
    [movement] = spat_movements(signal_state(NOW_S, g2=(indication, 4.0)), NOW_S)
    assert movement.event_state == event_state


def test_every_indication_is_mapped() -> None:
    assert set(EVENT_STATE_BY_INDICATION) == set(Indication)


def test_timing_is_copied_and_time_to_change_counts_from_now() -> None:
    state = signal_state(NOW_S, g2=(Indication.GREEN, 12.5), g4=(Indication.RED, 20.0))
    movements = spat_movements(state, NOW_S + 2.5)
    assert [m.signal_group for m in movements] == ["2", "4"]
    assert movements[0] == SpatMovement(
        signal_group="2",
        event_state="protected-Movement-Allowed",
        min_end_time_s=NOW_S + 12.5,
        max_end_time_s=NOW_S + 12.5,
        likely_time_s=NOW_S + 12.5,
        time_to_change_s=10.0,
    )
    assert movements[1].time_to_change_s == pytest.approx(17.5)


def test_overdue_change_reads_zero_not_negative() -> None:
    [movement] = spat_movements(signal_state(NOW_S, g2=(Indication.YELLOW, 1.0)), NOW_S + 3.0)
    assert movement.time_to_change_s == 0.0
