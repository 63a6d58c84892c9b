"""Turning movements: a confirmed track crossing an entry line and later an exit line, classified by geometry."""

from __future__ import annotations

import pytest

from rsu.perception.counting import LineCounter, classify_turn
from rsu.perception.tracker import Track
from rsu_contracts.config.model import SiteConfig
from rsu_contracts.enums import Movement, RoadUserType
from tests.perception.perception_helpers import make_track


def midpoint(site: SiteConfig, line_id: str) -> tuple[float, float]:
    (line,) = [line for line in site.counting_lines if line.id == line_id]
    (ax, ay), (bx, by) = line.line_m
    return (ax + bx) / 2, (ay + by) / 2


@pytest.mark.parametrize(
    ("entry", "exit_", "expected"),
    [
        # Southbound traffic from the north approach (right-hand traffic).
        ("north_in", "south_out", Movement.THROUGH),
        ("north_in", "east_out", Movement.LEFT),
        ("north_in", "west_out", Movement.RIGHT),
        ("north_in", "north_out", Movement.UTURN),
        # Eastbound traffic from the west approach.
        ("west_in", "east_out", Movement.THROUGH),
        ("west_in", "north_out", Movement.LEFT),
        ("west_in", "south_out", Movement.RIGHT),
    ],
)
def test_the_movement_follows_from_the_entry_and_exit_lines(
    sample_site: SiteConfig, entry: str, exit_: str, expected: Movement
) -> None:
    assert classify_turn(midpoint(sample_site, entry), midpoint(sample_site, exit_)) == expected


def southbound_then_east(track_id: int, t: float, *, confirmed: bool = True) -> Track:
    """A car on the north approach's left lane (x = -1.6) driving south, then turning left to leave east.

    It crosses north_in (y = 14.14) at t = 1.0 s and east_out (x = 14.14, y < 0) at t = 3.0 s.
    """
    if t <= 2.0:
        x, y, heading = -1.6, 24.14 - 10.0 * t, 180.0  # y = 14.14 at t = 1.0
    else:
        x, y, heading = 4.14 + 10.0 * (t - 2.0), -3.0, 90.0  # x = 14.14 at t = 3.0
    return make_track(track_id, x, y, speed_mps=10.0, heading_deg=heading, confirmed=confirmed, time_s=t)


def run(counter: LineCounter, track_id: int, *, confirm_at_s: float = 0.0) -> None:
    for step in range(0, 41):
        t = 0.1 * step
        counter.update([southbound_then_east(track_id, t, confirmed=t >= confirm_at_s)], t)


def test_an_entry_then_an_exit_crossing_is_one_left_turn_of_its_class(sample_site: SiteConfig) -> None:
    counter = LineCounter(sample_site)
    run(counter, track_id=1)
    (movement,) = counter.take_movements()
    assert (movement.entry_line_id, movement.exit_line_id, movement.movement) == ("north_in", "east_out", "left")
    assert movement.road_user is RoadUserType.CAR
    assert movement.time_s == pytest.approx(3.0, abs=0.05)
    assert counter.take_movements() == [], "taken once"


def test_a_track_confirmed_after_both_crossings_still_makes_its_movement(sample_site: SiteConfig) -> None:
    counter = LineCounter(sample_site)
    run(counter, track_id=2, confirm_at_s=3.5)
    assert [m.movement for m in counter.take_movements()] == [Movement.LEFT]


def test_an_exit_without_an_entry_is_no_movement(sample_site: SiteConfig) -> None:
    counter = LineCounter(sample_site)
    for step in range(20, 41):  # starts inside the junction, past north_in
        t = 0.1 * step
        counter.update([southbound_then_east(3, t)], t)
    assert counter.take_movements() == []
    assert counter.totals["east_out"] == 1


def test_a_track_that_never_confirms_makes_no_movement(sample_site: SiteConfig) -> None:
    counter = LineCounter(sample_site)
    run(counter, track_id=4, confirm_at_s=99.0)
    assert counter.take_movements() == []
