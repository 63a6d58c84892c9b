"""A restarted unit's aggregator carries on where the previous run stopped sealing (pure, no services).

The uplink stage reads sealed_until from the Redis outbox at start and calls resume(); the
service-level behaviour is in test_centre_outage_and_unit_restart.py.
"""

from __future__ import annotations

import pytest

from rsu.uplink.aggregator import IntervalAggregator
from rsu_contracts.config import SiteConfig
from rsu_contracts.messages import ControllerMode, Indication, SignalGroupState, SignalState

T0 = 1_700_000_040.0  # an interval boundary (60 s)
INTERVAL_S = 60.0


def signal(t: float) -> SignalState:
    green = SignalGroupState(
        signal_group="2", indication=Indication.GREEN, since_s=t, min_end_time_s=t, max_end_time_s=t, likely_time_s=t
    )
    return SignalState(
        unit_id="rsu-test",
        seq=0,
        capture_time_s=t,
        publish_time_s=t,
        mode=ControllerMode.NORMAL,
        strategy="fixed",
        groups=[green],
    )


def starts(aggregator: IntervalAggregator, now_s: float) -> list[float]:
    return [body.interval_start_s - T0 for body in aggregator.seal_until(now_s)]


@pytest.fixture
def restarted(sample_site: SiteConfig) -> IntervalAggregator:
    """A new run of a unit whose previous run sealed every interval up to T0 + 120 s."""
    aggregator = IntervalAggregator(sample_site, INTERVAL_S)
    aggregator.resume(T0 + 120)
    return aggregator


def test_the_intervals_the_unit_was_down_for_are_sealed_as_no_data_before_the_new_data(
    restarted: IntervalAggregator,
) -> None:
    restarted.add_signal(signal(T0 + 310))  # back up 3 intervals and 10 s later
    bodies = restarted.seal_until(T0 + 360)
    assert [body.interval_start_s - T0 for body in bodies] == [120, 180, 240, 300]
    for unobserved in bodies[:3]:
        # No data, not zero traffic: nothing observed and no counts at all.
        assert unobserved.observed_s == 0.0
        assert unobserved.detector_valid_ratio == 0.0
        assert (unobserved.lanes, unobserved.lines, unobserved.phases, unobserved.movements) == ((), (), (), ())
        assert unobserved.warnings_by_kind == {}
    assert next(p.green_time_s for p in bodies[3].phases if p.signal_group == "2") > 0  # the new run's data
    assert {lane.lane_id for lane in bodies[3].lanes}  # an observed interval lists every lane


def test_back_within_the_interval_it_stopped_in_no_empty_interval_is_added(restarted: IntervalAggregator) -> None:
    restarted.add_signal(signal(T0 + 150))
    assert starts(restarted, T0 + 180) == [120]


def test_a_wall_clock_unit_seals_the_downtime_at_its_first_tick(restarted: IntervalAggregator) -> None:
    assert starts(restarted, T0 + 250) == [120, 180]  # no data needed: the clock says they are over
    assert starts(restarted, T0 + 300) == [240]


def test_a_clock_set_back_never_seals_an_interval_the_previous_run_sealed(restarted: IntervalAggregator) -> None:
    # A replayed simulation or a clock set back: re-sealing T0..T0+120 would send the same sequence
    # numbers with other contents. Its data is dropped as late until the clock passes the mark.
    restarted.add_signal(signal(T0 + 10))
    assert starts(restarted, T0 + 60) == []
    assert restarted.clock_behind_resume_s == 120
    restarted.add_signal(signal(T0 + 130))
    assert starts(restarted, T0 + 180) == [120]
    assert restarted.late_dropped_total == 0  # the first signal only moved the clock (signals hold)


def test_after_a_downtime_longer_than_the_gap_it_starts_afresh(sample_site: SiteConfig) -> None:
    aggregator = IntervalAggregator(sample_site, INTERVAL_S)
    aggregator.resume(T0, max_gap_s=600)
    aggregator.add_signal(signal(T0 + 3600))
    assert starts(aggregator, T0 + 3660) == [3600]


def test_resume_comes_before_any_input(sample_site: SiteConfig) -> None:
    aggregator = IntervalAggregator(sample_site, INTERVAL_S)
    aggregator.add_signal(signal(T0))
    with pytest.raises(RuntimeError, match="before the first input"):
        aggregator.resume(T0)
