"""ITE change/clearance intervals, pedestrian clearance and Webster, against hand-computed numbers."""

from __future__ import annotations

import pytest

from signal_control import timing


def test_yellow_on_level_road_is_reaction_time_plus_braking_distance_term() -> None:
    # 1.0 + 13.9 / (2 * 3.05) = 1.0 + 13.9 / 6.1 = 3.27869 s
    assert timing.ite_yellow_s(13.9) == pytest.approx(3.27869, abs=1e-5)


def test_uphill_grade_shortens_and_downhill_lengthens_the_yellow() -> None:
    # 4 % up at 17.9 m/s: 1 + 17.9 / (6.1 + 2 * 0.04 * 9.81) = 1 + 17.9 / 6.8848 = 3.59993 s
    assert timing.ite_yellow_s(17.9, 0.04) == pytest.approx(3.59993, abs=1e-5)
    # 5 % down at 13.9 m/s: 1 + 13.9 / (6.1 - 0.981) = 1 + 13.9 / 5.119 = 3.71537 s
    assert timing.ite_yellow_s(13.9, -0.05) == pytest.approx(3.71537, abs=1e-5)


def test_yellow_is_never_below_three_seconds() -> None:
    # 8 m/s: 1 + 8 / 6.1 = 2.311 s, below the floor
    assert timing.ite_yellow_s(8.0) == pytest.approx(2.31148, abs=1e-5)
    assert timing.yellow_s(8.0) == 3.0


def test_configured_yellow_overrides_ite() -> None:
    assert timing.yellow_s(13.9, configured_s=4.5) == 4.5


def test_all_red_clears_the_width_plus_a_vehicle_length() -> None:
    # (20 + 6.1) / 13.9 = 1.87770 s
    assert timing.ite_all_red_s(20.0, 13.9) == pytest.approx(1.87770, abs=1e-5)
    assert timing.all_red_s(20.0, 13.9) == pytest.approx(1.87770, abs=1e-5)


def test_a_computed_all_red_is_raised_to_one_second() -> None:
    # (5 + 6.1) / 17.9 = 0.620 s
    assert timing.all_red_s(5.0, 17.9) == 1.0
    assert timing.all_red_s(20.0, 13.9, configured_s=2.5) == 2.5


def test_a_configured_interval_below_its_floor_is_an_error_not_raised() -> None:
    with pytest.raises(ValueError, match=r"all_red_s 0\.5 s is below its 1\.0 s safety floor"):
        timing.all_red_s(20.0, 13.9, configured_s=0.5)
    with pytest.raises(ValueError, match=r"yellow_s 2\.5 s is below its 3\.0 s safety floor"):
        timing.yellow_s(13.9, configured_s=2.5)


def test_pedestrian_clearance_walks_the_whole_crossing_at_1_07_mps() -> None:
    # 13 / 1.07 = 12.14953 s
    assert timing.pedestrian_clearance_s(13.0) == pytest.approx(12.14953, abs=1e-5)


def test_webster_cycle_and_green_splits() -> None:
    ratios = [0.2, 0.3, 0.1, 0.2]  # Y = 0.8
    # C0 = (1.5 * 16 + 5) / (1 - 0.8) = 29 / 0.2 = 145 s
    cycle = timing.webster_cycle_s(16.0, ratios)
    assert cycle == pytest.approx(145.0)
    # g_i = y_i / 0.8 * (145 - 16) = y_i * 161.25
    assert timing.webster_green_splits(cycle, 16.0, ratios) == pytest.approx([32.25, 48.375, 16.125, 32.25])


def test_webster_cycle_is_clamped_to_the_allowed_range() -> None:
    # (1.5 * 4 + 5) / 0.9 = 12.2 s -> raised to the 30 s minimum
    assert timing.webster_cycle_s(4.0, [0.05, 0.05]) == 30.0
    # Y = 0.95 would give a negative denominator's neighbourhood: the longest cycle instead
    assert timing.webster_cycle_s(16.0, [0.5, 0.45], max_cycle_s=120.0) == 120.0
    assert timing.webster_cycle_s(16.0, [0.5, 0.6]) == timing.DEFAULT_MAX_CYCLE_S


def test_webster_splits_evenly_when_there_is_no_flow() -> None:
    assert timing.webster_green_splits(60.0, 20.0, [0.0, 0.0]) == [20.0, 20.0]


@pytest.mark.parametrize("speed", [0.0, -3.0])
def test_non_positive_speeds_are_rejected(speed: float) -> None:
    with pytest.raises(ValueError, match="speed"):
        timing.ite_yellow_s(speed)
    with pytest.raises(ValueError, match="speed"):
        timing.ite_all_red_s(20.0, speed)
