"""The conflict search's cost is bounded: the grid gives exactly the all-pairs candidate pairs,
and per-update caps on road users and pairs keep any track list within bounded memory."""

from __future__ import annotations

import math
import tracemalloc
from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rsu_contracts.config.model import SiteConfig, WarningConfig
from rsu_contracts.enums import RoadUserType
from rsu_contracts.messages.perception import TrackedObject
from tests.v2x.builders import NOW_S
from v2x.conflicts import ConflictDetector, find_conflicts
from v2x.conflicts.candidates import candidate_pairs
from v2x.conflicts.limits import SearchCounters, nearest_pairs, nearest_to_junction
from v2x.conflicts.shared import PATH_EXTENSION_M
from v2x.conflicts.types import PairIndices
from v2x.junction import JunctionGeometry
from v2x.prediction import FloatArray


def all_pairs_reference(
    tracks: Sequence[TrackedObject], reach_m: FloatArray, config: WarningConfig
) -> tuple[np.ndarray, np.ndarray]:
    """The rule as it was first written: every pair compared in one (n, n) pass."""
    positions = np.array([[t.x_m, t.y_m] for t in tracks], dtype=float).reshape(-1, 2)
    half_lengths = np.array([t.length_m / 2 for t in tracks], dtype=float)
    with np.errstate(invalid="ignore", over="ignore"):  # scenes with NaN and infinite values
        separation = np.linalg.norm(positions[:, None, :] - positions[None, :, :], axis=-1)
        limit = reach_m[:, None] + reach_m[None, :] + half_lengths[:, None] + half_lengths[None, :]
        limit = limit + config.collision_radius_m + PATH_EXTENSION_M
        first, second = np.nonzero(np.triu(separation <= limit, k=1))
    return first, second


def bare_track(track_id: int, x_m: float, y_m: float, length_m: float) -> TrackedObject:
    # Unvalidated on purpose: the search must stay exact even for values a schema check would refuse.
    return TrackedObject.model_construct(
        track_id=track_id,
        road_user=RoadUserType.CAR,
        x_m=x_m,
        y_m=y_m,
        speed_mps=0.0,
        heading_deg=0.0,
        acceleration_mps2=0.0,
        length_m=length_m,
        width_m=1.8,
        lane_id=None,
        age_s=1.0,
    )


_ODD = st.sampled_from([math.nan, math.inf, -math.inf, 1e300, -1e300])


@st.composite
def scenes(draw: st.DrawFn) -> tuple[list[TrackedObject], FloatArray, WarningConfig]:
    """Random scenes: a few to a crowd, clustered or spread over kilometres, tiny to huge reaches,
    duplicates, and now and then a non-finite or absurd value."""
    count = draw(st.integers(0, 60))
    spread = draw(st.sampled_from([0.0, 0.5, 5.0, 50.0, 500.0, 5e4]))
    reach_scale = draw(st.sampled_from([0.0, 1.0, 30.0, 300.0, 1e7]))
    with_odd = draw(st.booleans())
    coordinate = st.floats(-spread, spread, allow_nan=False) if spread > 0 else st.just(0.0)
    if with_odd:
        coordinate = st.one_of(coordinate, _ODD)
    reach_value = st.floats(0.0, reach_scale, allow_nan=False) if reach_scale > 0 else st.just(0.0)
    if with_odd:
        reach_value = st.one_of(reach_value, _ODD)
    tracks = []
    for index in range(count):
        if tracks and draw(st.integers(0, 9)) == 0:  # a duplicate of an earlier position
            twin = tracks[draw(st.integers(0, len(tracks) - 1))]
            x, y = twin.x_m, twin.y_m
        else:
            x, y = draw(coordinate), draw(coordinate)
        tracks.append(bare_track(index, x, y, draw(st.sampled_from([0.5, 1.8, 4.5, 12.0]))))
    reach = np.array([draw(reach_value) for _ in range(count)], dtype=float)
    config = WarningConfig(collision_radius_m=draw(st.sampled_from([0.2, 2.0, 10.0])))
    return tracks, reach, config


@settings(suppress_health_check=[HealthCheck.too_slow])  # examples: the profile (tests/conftest.py)
@given(scenes())
def test_grid_gives_exactly_the_all_pairs_candidates(
    scene: tuple[list[TrackedObject], FloatArray, WarningConfig],
) -> None:
    tracks, reach, config = scene
    expected_first, expected_second = all_pairs_reference(tracks, reach, config)
    found = candidate_pairs(tracks, reach, config)
    np.testing.assert_array_equal(found.first, expected_first)
    np.testing.assert_array_equal(found.second, expected_second)
    assert found.first.dtype == expected_first.dtype and found.second.dtype == expected_second.dtype
    assert found.left_out == 0


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(scenes(), st.integers(0, 40))
def test_pair_cap_keeps_the_nearest_pairs(
    scene: tuple[list[TrackedObject], FloatArray, WarningConfig], max_pairs: int
) -> None:
    tracks, reach, config = scene
    first, second = all_pairs_reference(tracks, reach, config)
    positions = np.array([[t.x_m, t.y_m] for t in tracks], dtype=float).reshape(-1, 2)
    with np.errstate(invalid="ignore", over="ignore"):
        separation = np.linalg.norm(positions[first] - positions[second], axis=-1)
    nearest = np.lexsort((second, first, separation))[:max_pairs]
    kept = np.lexsort((second[nearest], first[nearest]))
    found = candidate_pairs(tracks, reach, config, max_pairs)
    np.testing.assert_array_equal(found.first, first[nearest][kept])
    np.testing.assert_array_equal(found.second, second[nearest][kept])
    assert found.left_out == max(0, len(first) - max_pairs)


@pytest.mark.parametrize("count", [0, 1, 2])
def test_degenerate_scenes(count: int) -> None:
    tracks = [bare_track(i, 0.0, 0.0, 4.5) for i in range(count)]
    found = candidate_pairs(tracks, np.zeros(count), WarningConfig())
    assert list(zip(found.first.tolist(), found.second.tolist(), strict=True)) == ([(0, 1)] if count == 2 else [])


def test_everybody_in_one_cell_with_a_huge_reach() -> None:
    rng = np.random.default_rng(7)
    tracks = [bare_track(i, float(x), float(y), 4.5) for i, (x, y) in enumerate(rng.uniform(-50, 50, (300, 2)))]
    reach = np.full(300, 1e6)
    found = candidate_pairs(tracks, reach, WarningConfig())
    assert len(found.first) == 300 * 299 // 2  # every pair, in order
    expected_first, expected_second = all_pairs_reference(tracks, reach, WarningConfig())
    np.testing.assert_array_equal(found.first, expected_first)
    np.testing.assert_array_equal(found.second, expected_second)


def test_object_cap_keeps_the_nearest_to_the_junction_in_snapshot_order() -> None:
    tracks = [bare_track(i, x, 0.0, 4.5) for i, x in enumerate([90.0, 5.0, -40.0, math.nan, 10.0, -5.0])]
    assert nearest_to_junction(tracks, (0.0, 0.0), 3).tolist() == [1, 4, 5]  # 5 and -5 tie: both fit
    assert nearest_to_junction(tracks, (0.0, 0.0), 5).tolist() == [0, 1, 2, 4, 5]  # NaN last
    assert nearest_to_junction(tracks, (0.0, 0.0), 6).tolist() == [0, 1, 2, 3, 4, 5]


def crowd(site: SiteConfig, count: int, seed: int = 3) -> list[TrackedObject]:
    """Schema-valid road users scattered over the junction and its legs, moving every which way."""
    rng = np.random.default_rng(seed)
    centre = JunctionGeometry(site).centre
    kinds = [RoadUserType.CAR, RoadUserType.TRUCK, RoadUserType.BICYCLE, RoadUserType.PEDESTRIAN]
    return [
        TrackedObject(
            track_id=index,
            road_user=kinds[index % len(kinds)],
            x_m=float(centre[0] + rng.uniform(-120, 120)),
            y_m=float(centre[1] + rng.uniform(-120, 120)),
            speed_mps=float(rng.uniform(0, 15)),
            heading_deg=float(rng.uniform(0, 360)),
            acceleration_mps2=float(rng.uniform(-3, 2)),
            length_m=4.5,
            width_m=1.8,
            age_s=2.0,
        )
        for index in range(count)
    ]


def test_a_40000_object_list_goes_through_in_bounded_memory(sample_site: SiteConfig) -> None:
    tracks = crowd(sample_site, 40_000)
    config = sample_site.v2x.warnings
    counters = SearchCounters()
    tracemalloc.start()
    try:
        find_conflicts(tracks, None, sample_site, config, NOW_S, counters=counters)
        detector = ConflictDetector(sample_site, config)
        detector.update(tracks, None, NOW_S)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 200 * 1024 * 1024, f"peak {peak / 2**20:.0f} MiB"
    assert counters.object_cap_hits == 1 and counters.objects_left_out == 40_000 - config.max_objects
    assert detector.search_counters.objects_left_out == 40_000 - config.max_objects
    assert detector.remembered_tracks == config.max_objects  # nothing remembered for the rest


def test_pair_cap_is_counted_when_hit(sample_site: SiteConfig) -> None:
    config = sample_site.v2x.warnings.model_copy(update={"max_candidate_pairs": 50})
    counters = SearchCounters()
    find_conflicts(crowd(sample_site, 200), None, sample_site, config, NOW_S, counters=counters)
    assert counters.pair_cap_hits == 1 and counters.pairs_left_out > 0
    assert counters.object_cap_hits == 0


def test_caps_are_bounded_in_the_site_config() -> None:
    with pytest.raises(ValueError):
        WarningConfig(max_objects=1)
    with pytest.raises(ValueError):
        WarningConfig(max_candidate_pairs=0)
    with pytest.raises(ValueError):
        WarningConfig(max_objects=1_000_000)
    with pytest.raises(ValueError):
        WarningConfig(max_pair_tests=0)


def test_pair_test_cap_keeps_the_nearest_pairs_of_both_kinds_in_order() -> None:
    positions = np.array([[0.0, 0.0], [1.0, 0.0], [5.0, 0.0], [20.0, 0.0]])
    rear_end = PairIndices(np.array([0, 0], dtype=np.intp), np.array([2, 3], dtype=np.intp))  # 5 m, 20 m
    crossing = PairIndices(np.array([0, 1], dtype=np.intp), np.array([1, 3], dtype=np.intp))  # 1 m, 19 m
    (kept_rear, kept_crossing), left_out = nearest_pairs(positions, (rear_end, crossing), 2)
    assert left_out == 2
    assert (kept_rear.first.tolist(), kept_rear.second.tolist()) == ([0], [2])
    assert (kept_crossing.first.tolist(), kept_crossing.second.tolist()) == ([0], [1])
    unchanged, none_left = nearest_pairs(positions, (rear_end, crossing), 4)
    assert none_left == 0 and unchanged[0] is rear_end and unchanged[1] is crossing


def test_pair_test_cap_is_counted_when_hit(sample_site: SiteConfig) -> None:
    tracks = crowd(sample_site, 300)
    uncut = SearchCounters()
    find_conflicts(tracks, None, sample_site, sample_site.v2x.warnings, NOW_S, counters=uncut)
    assert uncut.last_pair_tests > 20 and uncut.pair_test_cap_hits == 0
    config = sample_site.v2x.warnings.model_copy(update={"max_pair_tests": 20})
    counters = SearchCounters()
    find_conflicts(tracks, None, sample_site, config, NOW_S, counters=counters)
    assert counters.last_pair_tests == 20
    assert counters.pair_test_cap_hits == 1 and counters.pair_tests_left_out == uncut.last_pair_tests - 20
