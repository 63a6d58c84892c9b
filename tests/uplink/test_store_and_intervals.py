"""1- and 15-minute intervals side by side: sealed once each, stored once each with the new measures."""

from __future__ import annotations

from pathlib import Path

import pytest

from rsu.centre.store import AggregateStore
from rsu.stages.uplink import seal_all
from rsu.uplink.aggregator import IntervalAggregator
from rsu_contracts.config.model import SiteConfig, UplinkConfig
from rsu_contracts.messages.aggregates import Aggregate, LaneAggregate, PhaseAggregate, TurningMovementCount

T0 = 1_700_000_100.0  # a multiple of 900 s: a 15-minute boundary


def test_one_and_fifteen_minutes_are_the_default_intervals() -> None:
    assert UplinkConfig().aggregation_intervals_s == [60.0, 900.0]
    assert UplinkConfig(intervals_s=[900, 300, 60]).aggregation_intervals_s == [60.0, 300.0, 900.0]
    assert UplinkConfig(interval_s=5).aggregation_intervals_s == [5.0], "sub-minute test intervals stand alone"
    with pytest.raises(ValueError, match="not a multiple"):
        UplinkConfig(intervals_s=[60, 90])


def test_every_length_is_sealed_once_in_end_time_order(sample_site: SiteConfig) -> None:
    aggregators = [IntervalAggregator(sample_site, length) for length in (60.0, 900.0)]
    assert seal_all(aggregators, T0) == []
    bodies = seal_all(aggregators, T0 + 900)
    assert [(b.interval_s, b.interval_start_s - T0) for b in bodies] == [
        *[(60.0, 60.0 * i) for i in range(15)],
        (900.0, 0.0),  # after the last minute that ends at the same time
    ]
    assert seal_all(aggregators, T0 + 900) == []


def aggregate(seq: int, interval_s: float, start_s: float) -> Aggregate:
    return Aggregate(
        unit_id="rsu-x",
        seq=seq,
        capture_time_s=start_s + interval_s,
        publish_time_s=start_s + interval_s,
        interval_start_s=start_s,
        interval_s=interval_s,
        lanes=[
            LaneAggregate(
                lane_id="north_left",
                counts_by_class={"car": 3},
                occupancy_ratio=0.5,
                mean_queue_m=1.0,
                max_queue_m=2.0,
                mean_queue_vehicles=0.5,
                mean_headway_s=2.25,
            )
        ],
        phases=[
            PhaseAggregate(
                signal_group="5",
                green_time_s=20.0,
                green_starts=1,
                gap_outs=0,
                max_outs=0,
                force_offs=1,
                arrivals=4,
                arrivals_on_green=3,
                split_failures=1,
            )
        ],
        movements=[
            TurningMovementCount(
                entry_line_id="north_in", exit_line_id="east_out", movement="left", counts_by_class={"car": 2, "bus": 1}
            )
        ],
    )


def test_the_store_keeps_each_interval_length_apart_and_holds_the_new_measures(tmp_path: Path) -> None:
    with AggregateStore(tmp_path / "centre.sqlite") as store:
        minute, quarter = aggregate(7, 60.0, 420.0), aggregate(7, 900.0, 6300.0)  # the same seq, other lengths
        result = store.add_many([(minute, 1.0), (quarter, 1.0), (minute, 2.0)])
        assert (result.stored, result.duplicates, result.seq_conflicts) == (2, 1, 0)
        assert store.query("SELECT interval_s, seq FROM intervals ORDER BY interval_s") == [(60.0, 7), (900.0, 7)]
        assert store.query("SELECT mean_headway_s FROM lane_aggregates WHERE interval_s = 60") == [(2.25,)]
        assert store.query(
            "SELECT force_offs, arrivals, arrivals_on_green, arrivals_on_green_ratio, split_failures "
            "FROM phase_aggregates WHERE interval_s = 900"
        ) == [(1, 4, 3, 0.75, 1)]
        assert store.query(
            "SELECT entry_line_id, exit_line_id, movement, car, bus FROM movement_counts WHERE interval_s = 60"
        ) == [("north_in", "east_out", "left", 2, 1)]
        assert store.missing_seqs("rsu-x") == [] and store.gaps("rsu-x") == []
