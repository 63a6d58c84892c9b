"""The ATSPM view a dashboard queries: per signal group and interval, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from rsu.centre.store import AggregateStore
from rsu_contracts.messages import Aggregate, PhaseAggregate
from tests.centre.conftest import T0, Database, make_aggregate

COLUMNS = (
    "unit_id, signal_group, interval_s, seq, interval_start_s, observed_s, cycles, green_time_s, mean_green_s, "
    "green_ratio, gap_outs, max_outs, force_offs, terminations, gap_out_ratio, max_out_ratio, force_off_ratio, "
    "arrivals, arrivals_on_green, arrivals_on_green_ratio, split_failures, split_failure_ratio"
)


@pytest.fixture
def store(database: Database) -> Iterator[AggregateStore]:
    with AggregateStore(database.target) as store:
        yield store


def _with_phases(
    seq: int, phases: list[PhaseAggregate], observed_s: float = 60.0, interval_s: float = 60.0
) -> Aggregate:
    return make_aggregate("u1", seq, interval_s=interval_s).model_copy(
        update={"phases": phases, "observed_s": observed_s}
    )


def test_the_phase_view_gives_green_terminations_arrivals_and_split_failures_per_interval(
    store: AggregateStore, database: Database
) -> None:
    main_street = PhaseAggregate(
        signal_group="2",
        green_time_s=90.0,
        green_starts=3,
        gap_outs=1,
        max_outs=1,
        force_offs=2,
        arrivals=40,
        arrivals_on_green=30,
        split_failures=1,
    )
    side_street = PhaseAggregate(signal_group="4", green_time_s=0.0, green_starts=0, gap_outs=0, max_outs=0)
    store.add(_with_phases(0, [main_street, side_street], observed_s=57.5, interval_s=300.0), 1.0)

    rows = database.engineer(f"SELECT {COLUMNS} FROM atspm_phase_intervals ORDER BY signal_group")

    start_s = T0
    assert rows == [
        # 90 s of green in 3 cycles of a 5-minute interval; 4 terminations; 30 of 40 arrivals on green.
        ("u1", "2", 300.0, 0, start_s, 57.5, 3, 90.0, 30.0, 0.3, 1, 1, 2, 4, 0.25, 0.25, 0.5, 40, 30, 0.75, 1, 1 / 3),
        # No green, no cycle, no arrival: the ratios are unknown (NULL), not zero.
        ("u1", "4", 300.0, 0, start_s, 57.5, 0, 0.0, None, 0.0, 0, 0, 0, 0, None, None, None, 0, 0, None, 0, None),
    ]


def test_the_phase_view_puts_each_interval_on_a_time_axis_and_leaves_out_no_data_intervals(
    store: AggregateStore, database: Database
) -> None:
    phase = PhaseAggregate(signal_group="2", green_time_s=20.0, green_starts=1, gap_outs=1, max_outs=0)
    no_data = make_aggregate("u1", 1).model_copy(update={"observed_s": 0.0, "lanes": [], "lines": [], "phases": []})
    store.add_many([(_with_phases(0, [phase]), 1.0), (no_data, 1.0), (_with_phases(2, [phase]), 1.0)])

    rows = database.engineer(
        "SELECT seq, interval_start FROM atspm_phase_intervals WHERE unit_id = 'u1' AND interval_s = 60 ORDER BY seq"
    )

    assert [seq for seq, _ in rows] == [0, 2], "an interval the unit did not observe has no phase row"
    expected = [datetime.fromtimestamp(T0 + 60 * seq, UTC) for seq in (0, 2)]
    if database.backend == "sqlite":
        assert [stamp for _, stamp in rows] == [e.strftime("%Y-%m-%d %H:%M:%S") for e in expected]
    else:
        assert [stamp for _, stamp in rows] == expected
