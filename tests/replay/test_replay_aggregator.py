"""Replay of the uplink aggregator: recorded detector states, signal states and warnings."""

from __future__ import annotations

from rsu_contracts.config import SiteConfig
from tests.replay import replaying
from tests.replay.conftest import CompareWithReference


def test_aggregates_match_the_reference(
    recorded_site: SiteConfig, compare_with_reference: CompareWithReference
) -> None:
    rows = replaying.replay_aggregator(recorded_site, replaying.load_aggregator_inputs())
    assert {row["interval_s"] for row in rows} == set(replaying.aggregation_intervals_s(recorded_site))
    compare_with_reference("aggregates", rows)
