"""Replay of the V2X warning logic: recorded track lists and signal states through a fresh
ConflictDetector and WarningTracker."""

from __future__ import annotations

import pytest

from rsu_contracts.config import SiteConfig
from tests.replay import replaying
from tests.replay.conftest import CompareWithReference


@pytest.fixture(scope="module")
def snapshots() -> list[replaying.WarningSnapshot]:
    return replaying.load_warning_snapshots()


@pytest.mark.parametrize("variant", sorted(replaying.WARNING_VARIANTS))
def test_conflicts_and_warnings_match_the_reference(
    variant: str,
    snapshots: list[replaying.WarningSnapshot],
    recorded_site: SiteConfig,
    compare_with_reference: CompareWithReference,
) -> None:
    site = replaying.with_warning_thresholds(recorded_site, variant)
    rows = replaying.replay_warnings(site, snapshots)
    # The recording has warnings to pin (a replay of an empty junction would pin nothing).
    assert sum(len(row["events"]) for row in rows) > 0
    name = "warnings" if variant == "site" else f"warnings_{variant}"
    compare_with_reference(name, rows)
