"""The centre's store, on SQLite and on PostgreSQL alike: each (unit, interval length, seq) once, gaps
visible, rows queryable with plain SQL from another connection."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from rsu.centre.store import AddResult, AggregateStore, StoreIntegrityError
from tests.centre.conftest import T0, Database, make_aggregate


@pytest.fixture
def store(database: Database) -> Iterator[AggregateStore]:
    with AggregateStore(database.target) as store:
        yield store


def test_a_repeated_unit_and_seq_is_stored_once_and_counted(store: AggregateStore) -> None:
    first = store.add_many([(make_aggregate("u1", 0), 1.0), (make_aggregate("u1", 1), 1.0)])
    again = store.add_many([(make_aggregate("u1", 1), 2.0), (make_aggregate("u1", 1), 3.0)])
    other_unit = store.add(make_aggregate("u2", 1), 4.0)

    assert first == AddResult(stored=2)
    assert again == AddResult(duplicates=2)
    assert other_unit == AddResult(stored=1), "the same seq from another unit is a different interval"
    assert [row.seq for row in store.intervals("u1")] == [0, 1]
    assert store.query("SELECT COUNT(*) FROM lane_aggregates WHERE unit_id = 'u1'") == [(4,)]
    counters = store.counters("u1")
    assert (counters.stored, counters.duplicates, counters.last_received_time_s) == (2, 2, 3.0)
    assert store.totals == AddResult(stored=3, duplicates=2)


def test_a_reused_seq_with_another_interval_is_kept_aside_not_dropped(store: AggregateStore) -> None:
    store.add(make_aggregate("u1", 0), 1.0)
    # A unit that restarted with its counter at 0 again: same seq, later interval.
    result = store.add(make_aggregate("u1", 0, interval_start_s=T0 + 3600), 2.0)

    assert result == AddResult(seq_conflicts=1)
    assert len(store.intervals("u1")) == 1
    rows = store.query("SELECT seq, interval_start_s, payload FROM seq_conflicts")
    assert len(rows) == 1 and rows[0][:2] == (0, T0 + 3600) and '"unit_id":"u1"' in rows[0][2]
    assert store.counters("u1").seq_conflicts == 1


def test_intervals_come_back_in_time_order_whatever_the_arrival_order(store: AggregateStore) -> None:
    store.add_many([(make_aggregate("u1", seq), 1.0) for seq in (3, 0, 2, 1)])

    rows = store.intervals("u1")
    assert [row.seq for row in rows] == [0, 1, 2, 3]
    assert [row.interval_start_s for row in rows] == [T0, T0 + 60, T0 + 120, T0 + 180]
    # Arrival order stays visible for whoever checks delivery order.
    assert [seq for (seq,) in store.query("SELECT seq FROM intervals ORDER BY id")] == [3, 0, 2, 1]


def test_gaps_list_the_missing_interval_starts_and_seqs(store: AggregateStore) -> None:
    store.add_many([(make_aggregate("u1", seq), 1.0) for seq in (0, 1, 4, 5, 7)])
    store.add_many([(make_aggregate("u2", seq), 1.0) for seq in (0, 1, 2)])

    assert store.gaps("u1") == [T0 + 120, T0 + 180, T0 + 360]
    assert store.missing_seqs("u1") == [2, 3, 6]
    assert store.gaps("u2") == [] and store.missing_seqs("u2") == []
    assert store.gaps("nobody") == []
    assert store.gaps("u1", limit=2) == [T0 + 120, T0 + 180]


def test_gaps_tolerate_clock_jitter_in_interval_starts(store: AggregateStore) -> None:
    starts = [T0, T0 + 60.4, T0 + 119.8, T0 + 240.2]
    store.add_many([(make_aggregate("u1", seq, interval_start_s=start), 1.0) for seq, start in enumerate(starts)])

    assert store.gaps("u1") == [pytest.approx(T0 + 179.8)]


def test_rows_are_queryable_with_plain_sql_from_another_connection(store: AggregateStore, database: Database) -> None:
    store.add(make_aggregate("u1", 0, cars=7), 1.0)
    engineer = database.engineer

    lane = engineer(
        "SELECT car, truck, bus, motorcycle, bicycle, pedestrian, other, mean_speed_mps, speed_p85_mps, "
        "occupancy_ratio, mean_queue_m, max_queue_m, mean_queue_vehicles FROM lane_aggregates "
        "WHERE unit_id = 'u1' AND lane_id = 'north_left'"
    )
    assert lane == [(7, 2, 0, 0, 0, 0, 1, 9.5, 12.0, 0.25, 14.0, 30.0, 2.0)], "unknown classes land in other"
    unmeasured = engineer(
        "SELECT mean_speed_mps, speed_p85_mps FROM lane_aggregates WHERE lane_id = 'north_through_right'"
    )
    assert unmeasured == [(None, None)]
    assert engineer("SELECT car, pedestrian FROM line_counts WHERE line_id = 'north_in'") == [(28, 3)]
    assert engineer("SELECT signal_group, green_time_s, green_starts, gap_outs, max_outs FROM phase_aggregates") == [
        ("2", 25.0, 1, 1, 0)
    ]
    assert engineer("SELECT kind, count FROM warnings_by_kind") == [("rear_end", 2)]
    assert engineer("SELECT interval_s, detector_valid_ratio, interval_start_s FROM intervals") == [(60.0, 1.0, T0)]


def test_times_read_as_timestamps_in_each_databases_own_sql(store: AggregateStore, database: Database) -> None:
    store.add(make_aggregate("u1", 0), 1.0)

    if database.backend == "sqlite":
        rows = database.engineer("SELECT datetime(interval_start_s, 'unixepoch') FROM intervals")
        assert rows == [("2023-11-14 22:14:00",)]
    else:
        rows = database.engineer(
            "SELECT to_char(to_timestamp(interval_start_s) AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') FROM intervals"
        )
        assert rows == [("2023-11-14 22:14:00",)]


def test_observed_seconds_of_schema_v2_are_stored_and_unknown_for_v1(store: AggregateStore) -> None:
    covered = make_aggregate("u1", 0).model_copy(update={"observed_s": 42.5})
    no_data = {"observed_s": 0.0, "lanes": [], "lines": [], "phases": []}
    not_observed = make_aggregate("u1", 1).model_copy(update=no_data)
    version_1 = make_aggregate("u1", 2)  # no observed_s: coverage not reported

    store.add_many([(covered, 1.0), (not_observed, 1.0), (version_1, 1.0)])

    assert [row.observed_s for row in store.intervals("u1")] == [42.5, 0.0, None]
    assert store.query("SELECT seq, observed_s FROM intervals ORDER BY seq") == [(0, 42.5), (1, 0.0), (2, None)]


def test_the_same_seq_of_another_interval_length_is_another_interval(store: AggregateStore) -> None:
    minute = make_aggregate("u1", 7, interval_s=60.0)
    quarter = make_aggregate("u1", 7, interval_s=900.0)

    assert store.add_many([(minute, 1.0), (quarter, 1.0), (quarter, 2.0)]) == AddResult(stored=2, duplicates=1)
    assert store.query("SELECT interval_s, seq FROM intervals ORDER BY interval_s") == [(60.0, 7), (900.0, 7)]


def test_a_collision_keeps_its_interval_length(store: AggregateStore) -> None:
    store.add(make_aggregate("u1", 3, interval_s=900.0), 1.0)
    store.add(make_aggregate("u1", 3, interval_s=900.0, interval_start_s=T0), 2.0)

    assert store.query("SELECT seq, interval_s, interval_start_s FROM seq_conflicts") == [(3, 900.0, T0)]


def test_an_sqlite_file_uses_wal(tmp_path: Path) -> None:
    with AggregateStore(tmp_path / "centre.sqlite") as store:
        assert store.query("PRAGMA journal_mode") == [("wal",)]


def test_the_database_keeps_its_data_and_counters_across_reopening(database: Database) -> None:
    with AggregateStore(database.target) as store:
        store.add_many([(make_aggregate("u1", 0), 1.0), (make_aggregate("u1", 0), 1.0)])

    with AggregateStore(database.target) as reopened:
        assert reopened.add(make_aggregate("u1", 0), 2.0) == AddResult(duplicates=1)
        assert reopened.counters("u1").duplicates == 2
        assert reopened.units() == ["u1"]


def test_a_batch_is_all_or_nothing(store: AggregateStore) -> None:
    good = make_aggregate("u1", 0)
    broken = make_aggregate("u1", 1)
    # The same lane twice breaks the lane table's primary key halfway through the batch.
    broken = broken.model_copy(update={"lanes": [broken.lanes[0], broken.lanes[0]]})

    with pytest.raises(StoreIntegrityError):
        store.add_many([(good, 1.0), (broken, 1.0)])

    assert store.intervals("u1") == []
    assert store.query("SELECT COUNT(*) FROM lane_aggregates") == [(0,)]
    assert store.add(good, 2.0) == AddResult(stored=1)


def test_a_large_batch_with_repeats_inside_it_stores_the_first_of_each_key(store: AggregateStore) -> None:
    fresh = [(make_aggregate("u1", seq), 1.0) for seq in range(1200)]  # several statements' worth
    repeat = (make_aggregate("u1", 3), 2.0)  # the same interval again, in a later statement
    collision = (make_aggregate("u1", 5, interval_start_s=T0 + 86_400), 3.0)  # seq 5 reused for another interval

    result = store.add_many([*fresh, repeat, collision])

    assert result == AddResult(stored=1200, duplicates=1, seq_conflicts=1)
    assert [row.seq for row in store.intervals("u1")] == list(range(1200))
    assert store.intervals("u1")[5].interval_start_s == T0 + 5 * 60, "the first of the batch is kept"
    assert [seq for (seq,) in store.query("SELECT seq FROM intervals ORDER BY id")] == list(range(1200))
    assert store.query("SELECT seq, interval_start_s FROM seq_conflicts") == [(5, T0 + 86_400)]
