"""Bounds on the work of one conflict search, whatever arrives: at most max_objects road users
(the nearest to the junction centre) and at most max_candidate_pairs pairs (the nearest now) per
track list (WarningConfig). A genuine junction stays far below both; a crowded or forged list is
cut, and every cut is counted so health can say the search was incomplete.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from rsu_contracts.messages.perception import TrackedObject


@dataclass
class SearchCounters:
    """How often the bounds cut a conflict search, since start."""

    # Track lists with more road users than max_objects, and the road users left out of them.
    object_cap_hits: int = 0
    objects_left_out: int = 0
    # Snapshots with more candidate pairs than max_candidate_pairs, and the pairs left out.
    pair_cap_hits: int = 0
    pairs_left_out: int = 0

    def count_objects(self, left_out: int) -> None:
        if left_out > 0:
            self.object_cap_hits += 1
            self.objects_left_out += left_out

    def count_pairs(self, left_out: int) -> None:
        if left_out > 0:
            self.pair_cap_hits += 1
            self.pairs_left_out += left_out


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
