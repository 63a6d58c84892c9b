"""Replay of the signal controller: recorded detector observations, lookahead and priority calls."""

from __future__ import annotations

import pytest

from rsu_contracts.config import SiteConfig
from tests.replay import replaying
from tests.replay.conftest import CompareWithReference


@pytest.fixture(scope="module")
def steps() -> list[replaying.ControllerStep]:
    return replaying.load_controller_steps()


@pytest.mark.parametrize("strategy", replaying.REPLAYED_STRATEGIES)
def test_controller_outputs_match_the_reference(
    strategy: str,
    steps: list[replaying.ControllerStep],
    recorded_site: SiteConfig,
    compare_with_reference: CompareWithReference,
) -> None:
    rows = replaying.replay_controller(recorded_site, steps, strategy, replaying.recording()["sim_epoch_s"])
    compare_with_reference(f"controller_{strategy}", rows)


def test_the_recording_exercises_what_the_references_pin(steps: list[replaying.ControllerStep]) -> None:
    """Guards the fixture: a re-recording without priority calls or detector fault would pin less."""
    assert len(steps) > 1000
    assert any(call.kind.value == "emergency" for step in steps for call in step.priority)
    assert any(call.kind.value == "transit" for step in steps for call in step.priority)
    assert any(step.lanes is None for step in steps)
    assert any(step.arrivals_s for step in steps)
