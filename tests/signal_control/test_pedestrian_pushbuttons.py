"""Pedestrian pushbuttons: a press is a call for the crosswalk's pedestrian group, kept until that
walk is served, whether or not the camera sees anybody and even while camera data is stale."""

from __future__ import annotations

import pytest

from rsu_contracts.config import SiteConfig
from signal_control import ControllerOutput, SignalController
from signal_control.events import AtspmEvent
from tests.signal_control.harness import SafetyChecker, events_of, lanes_for

START_S = 1000.0
STEP_S = 0.1


@pytest.fixture
def controller(sample_site: SiteConfig) -> SignalController:
    return SignalController(sample_site)


def run(
    controller: SignalController, checker: SafetyChecker, seconds: float, presses: dict[float, list[str]]
) -> list[ControllerOutput]:
    outputs = []
    for index in range(1, round(seconds / STEP_S) + 1):
        now_s = START_S + index * STEP_S
        pressed = next((ids for at_s, ids in presses.items() if abs(at_s - now_s) < STEP_S / 2), [])
        output = controller.step(now_s, lanes_for(), pushbuttons=pressed)
        checker.observe(output)
        outputs.append(output)
    return outputs


def test_a_press_nobody_is_seen_at_is_logged_called_and_walked_once(
    controller: SignalController, sample_site: SiteConfig
) -> None:
    outputs = run(controller, SafetyChecker.for_site(sample_site), 60.0, {1003.0: ["cw_north"], 1004.0: ["cw_north"]})
    presses = events_of(outputs, AtspmEvent.PEDESTRIAN_DETECTOR_ON, "cw_north")
    assert [event.time_s for event in presses] == [pytest.approx(1003.0), pytest.approx(1004.0)]
    # two presses before the walk: one call, one walk
    assert len(events_of(outputs, AtspmEvent.PEDESTRIAN_CALL_REGISTERED, "p_north")) == 1
    assert len(events_of(outputs, AtspmEvent.PEDESTRIAN_BEGIN_WALK, "p_north")) == 1
    assert events_of(outputs, AtspmEvent.PEDESTRIAN_BEGIN_WALK, "p_south") == []


def test_without_a_press_or_a_waiting_pedestrian_there_is_no_walk(
    controller: SignalController, sample_site: SiteConfig
) -> None:
    outputs = run(controller, SafetyChecker.for_site(sample_site), 60.0, {})
    assert events_of(outputs, AtspmEvent.PEDESTRIAN_BEGIN_WALK) == []


def test_a_press_while_camera_data_is_missing_still_registers_a_call(controller: SignalController) -> None:
    controller.step(START_S, lanes_for())
    output = controller.step(START_S + 0.1, None, pushbuttons=["cw_east"])
    assert events_of([output], AtspmEvent.PEDESTRIAN_CALL_REGISTERED, "p_east")


def test_an_unknown_crosswalk_is_an_error_naming_it(controller: SignalController) -> None:
    with pytest.raises(ValueError, match=r"unknown crosswalk ids \['cw_nowhere'\]"):
        controller.step(START_S, lanes_for(), pushbuttons=["cw_nowhere"])
