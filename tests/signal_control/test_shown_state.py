"""With a cabinet driving the lamps, the published signal state is what the cabinet shows."""

from __future__ import annotations

from rsu_contracts.messages.signal import ControllerMode, Indication, SignalGroupState
from signal_control.backends.shown_state import UNKNOWN_HORIZON_S, as_shown
from signal_control.controller import ControllerOutput

NOW = 1000.0


def group(group_id: str, indication: Indication) -> SignalGroupState:
    return SignalGroupState(
        signal_group=group_id,
        indication=indication,
        since_s=NOW - 5,
        min_end_time_s=NOW + 2,
        max_end_time_s=NOW + 20,
        likely_time_s=NOW + 8,
    )


def decided() -> ControllerOutput:
    return ControllerOutput(
        mode=ControllerMode.NORMAL,
        strategy="actuated",
        groups=[group("2", Indication.GREEN), group("4", Indication.RED)],
        events=[],
        reason="extending",
        time_s=NOW,
        stage_id="ns_through",
    )


def test_a_cabinet_that_agrees_keeps_the_plans_timing() -> None:
    output = decided()
    assert as_shown(output, {"2": Indication.GREEN, "4": Indication.RED}, NOW) == output


def test_a_group_shown_otherwise_is_published_as_shown_with_honest_windows() -> None:
    published = as_shown(decided(), {"2": Indication.YELLOW, "4": Indication.RED}, NOW)
    two = next(g for g in published.groups if g.signal_group == "2")
    assert two.indication is Indication.YELLOW
    assert two.since_s == NOW and two.min_end_time_s == NOW
    assert two.likely_time_s == two.max_end_time_s == NOW + UNKNOWN_HORIZON_S
    assert "2 shows yellow (decided green)" in published.reason
    assert next(g for g in published.groups if g.signal_group == "4") == group("4", Indication.RED)


def test_a_flashing_cabinet_is_published_as_flash() -> None:
    published = as_shown(decided(), {"2": Indication.GREEN}, NOW, flashing=True)
    assert published.mode is ControllerMode.FLASH
    assert {g.indication for g in published.groups} == {Indication.FLASHING_RED}


def test_no_answer_from_the_cabinet_is_published_as_unknown_never_as_the_last_picture() -> None:
    published = as_shown(decided(), None, NOW, problem="cabinet unreachable: timeout")
    assert {g.indication for g in published.groups} == {Indication.DARK}
    assert published.reason.startswith("cabinet unreachable: timeout")
