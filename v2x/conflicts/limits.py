"""Bounds on the work of one conflict search, whatever arrives: per track list at most max_objects
road users (the nearest to the junction centre), max_candidate_pairs candidate pairs and
max_pair_tests pairs through the exact (per-pair) tests, the nearest pairs now (WarningConfig).
A genuine junction stays far below all three; a crowded or forged list is cut, and every cut is
counted so health can say the search was incomplete.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from rsu_contracts.messages.perception import TrackedObject
from v2x.conflicts.types import PairIndices
from v2x.prediction import FloatArray


@dataclass
class SearchCounters:
    """How often the bounds cut a conflict search, since start."""

    # Track lists with more road users than max_objects, and the road users left out of them.
    object_cap_hits: int = 0
    objects_left_out: int = 0
    # Snapshots with more candidate pairs than max_candidate_pairs, and the pairs left out.
    pair_cap_hits: int = 0
    pairs_left_out: int = 0
    # Snapshots with more pairs for the exact tests than max_pair_tests, and the pairs left out.
    pair_test_cap_hits: int = 0
    pair_tests_left_out: int = 0
    # Size of the last search: candidate pairs kept and pairs through the exact tests.
    last_candidate_pairs: int = 0
    last_pair_tests: int = 0

    def count_objects(self, left_out: int) -> None:
        if left_out > 0:
            self.object_cap_hits += 1
            self.objects_left_out += left_out

    def count_pairs(self, kept: int, left_out: int) -> None:
        self.last_candidate_pairs = kept
        if left_out > 0:
            self.pair_cap_hits += 1
            self.pairs_left_out += left_out

    def count_pair_tests(self, kept: int, left_out: int) -> None:
        self.last_pair_tests = kept
        if left_out > 0:
            self.pair_test_cap_hits += 1
            self.pair_tests_left_out += left_out


def nearest_to_junction(
    tracks: Sequence[TrackedObject], centre: tuple[float, float], max_objects: int
) -> npt.NDArray[np.intp]:
    """Indices (ascending, so the snapshot keeps its order) of the at most max_objects tracks nearest
    the junction centre; ties and unplaceable (non-finite) positions go by index, the latter last."""
    count = len(tracks)
    if count <= max_objects:
        return np.arange(count, dtype=np.intp)
    positions = np.array([[t.x_m, t.y_m] for t in tracks], dtype=float).reshape(count, 2)
    with np.errstate(invalid="ignore", over="ignore"):
        distance = np.hypot(positions[:, 0] - centre[0], positions[:, 1] - centre[1])
    distance = np.where(np.isnan(distance), np.inf, distance)
    # argpartition is O(n); the stable pass over the chosen few makes ties deterministic.
    chosen = np.argpartition(distance, max_objects - 1)[:max_objects]
    boundary = distance[chosen].max()
    closer = np.flatnonzero(distance < boundary)
    tied = np.flatnonzero(distance == boundary)[: max_objects - len(closer)]
    return np.sort(np.concatenate([closer, tied])).astype(np.intp)


def nearest_pairs(
    positions_m: FloatArray, pair_sets: Sequence[PairIndices], max_pairs: int
) -> tuple[list[PairIndices], int]:
    """At most max_pairs pairs over all the sets, the nearest now (ties: earlier set, then by index),
    each set keeping its order; and how many were left out."""
    sizes = [len(pairs.first) for pairs in pair_sets]
    total = sum(sizes)
    if total <= max_pairs:
        return list(pair_sets), 0
    first = np.concatenate([pairs.first for pairs in pair_sets])
    second = np.concatenate([pairs.second for pairs in pair_sets])
    set_index = np.repeat(np.arange(len(pair_sets)), sizes)
    with np.errstate(invalid="ignore", over="ignore"):
        separation = np.linalg.norm(positions_m[first] - positions_m[second], axis=-1)
    separation = np.where(np.isnan(separation), np.inf, separation)
    chosen = np.zeros(total, dtype=bool)
    chosen[np.lexsort((second, first, set_index, separation))[:max_pairs]] = True
    kept = []
    for number, pairs in enumerate(pair_sets):
        mine = chosen[set_index == number]
        kept.append(PairIndices(pairs.first[mine], pairs.second[mine]))
    return kept, total - max_pairs
