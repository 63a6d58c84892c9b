"""The page says what a person can read: times of day, not epoch seconds, and "(simulated)" only
for a simulated junction."""

from __future__ import annotations

import time

from rsu.web.state import LiveState, readable_reason
from rsu_contracts.config import SiteConfig, load_site_config
from tests.conftest import REPO_ROOT


def test_an_epoch_instant_in_a_reason_becomes_a_utc_time_of_day() -> None:
    reason = "start-up all-red until t=1796350362.4 s"
    assert readable_reason(reason) == "start-up all-red until 02:12:42.4 UTC"
    assert readable_reason("stage 2: minimum green until t=1796350362.0 s, then t=1796350370.5 s") == (
        "stage 2: minimum green until 02:12:42.0 UTC, then 02:12:50.5 UTC"
    )
    # Small numbers (a duration, a count) are not instants.
    assert readable_reason("gap t=3.5 s") == "gap t=3.5 s"


def test_only_a_simulated_junction_is_shown_as_simulated(sample_site: SiteConfig) -> None:
    assert sample_site.is_simulated
    now = time.time()
    assert LiveState(sample_site, realtime=False).snapshot(now, time.monotonic())["simulated"] is True
    recorded = load_site_config(REPO_ROOT / "datasets" / "opentrafficcam" / "site.yaml")  # a recorded clip
    assert not recorded.is_simulated
    snapshot = LiveState(recorded, realtime=False).snapshot(now, time.monotonic())
    assert snapshot["simulated"] is False and snapshot["realtime"] is False
