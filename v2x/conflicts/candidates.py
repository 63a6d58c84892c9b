"""Which pairs of road users are worth a conflict test at all: those close enough now to meet
within the horizon.

The rule (pair i < j is a candidate): the distance between them now is at most
reach_i + reach_j + half_length_i + half_length_j + collision_radius_m + PATH_EXTENSION_M, reach
being how far each can travel within the horizon.

Comparing every pair costs O(n²) time and memory, which a crowded (or forged) track list turns
into gigabytes. Instead a uniform grid over the ground plane (a spatial hash) with cells at least
as wide as the largest limit any pair can have puts every pair within its limit in the same or
neighbouring cells; only those pairs are tested, with the very same arithmetic as the rule, in
blocks of bounded size. The result is exactly the all-pairs one: same pairs, ordered by (i, j).

With max_pairs, at most that many pairs are kept (the nearest now), so a scene where everybody is
near everybody still costs a bounded amount downstream; how many were left out is returned.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from rsu_contracts.config.model import WarningConfig
from rsu_contracts.messages.perception import TrackedObject
from v2x.conflicts.shared import PATH_EXTENSION_M
from v2x.prediction import FloatArray

IndexArray = npt.NDArray[np.intp]

# Candidate pairs tested per vectorised block: bounds the temporaries whatever the scene, even
# when every road user falls into one cell.
PAIR_BLOCK = 65_536
# The cell side is the largest limit widened by this share: rounding in the cell index (a few
# units in the last place, times at most MAX_CELLS_ACROSS cells) must never put two road users
# within their limit two cells apart.
CELL_SLACK = 1e-6
# At most this many cells along an axis (absurdly far-flung coordinates widen the cells instead),
# so cell keys fit in an int64 and the cell index stays precise.
MAX_CELLS_ACROSS = 2**30
# The 3 x 3 neighbourhood of a cell.
_NEIGHBOURS = tuple((dx, dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1))


class CandidatePairs(NamedTuple):
    """Pairs (first[n] < second[n]) ordered by (first, second), and how many max_pairs left out."""

    first: IndexArray
    second: IndexArray
    left_out: int


def candidate_pairs(
    tracks: Sequence[TrackedObject],
    reach_m: FloatArray,
    config: WarningConfig,
    max_pairs: int | None = None,
) -> CandidatePairs:
    """Pairs (i < j) that could meet within the horizon: current distance below the sum of reaches.

    max_pairs: keep at most this many, the nearest now (ties by index); None keeps all.
    """
    count = len(tracks)
    positions = np.array([[t.x_m, t.y_m] for t in tracks], dtype=float).reshape(count, 2)
    half_lengths = np.array([t.length_m / 2 for t in tracks], dtype=float)
    reach = np.asarray(reach_m, dtype=float).reshape(count)
    margin = config.collision_radius_m + PATH_EXTENSION_M
    kept = _PairHeap(max_pairs)
    for first, second in _grid_neighbours(positions, reach + half_lengths, margin):
        # Exactly the rule's arithmetic, term by term, so the grid changes no pair. Non-finite values
        # (NaN, infinite) take part as the rule has them: a NaN distance or limit is no pair.
        with np.errstate(invalid="ignore", over="ignore"):
            separation = np.linalg.norm(positions[first] - positions[second], axis=-1)
            limit = reach[first] + reach[second] + half_lengths[first] + half_lengths[second]
            limit = limit + config.collision_radius_m + PATH_EXTENSION_M
            within = separation <= limit
        kept.add(first[within], second[within], separation[within])
    return kept.result()


class _PairHeap:
    """Accumulates pairs; with a limit it keeps only the `limit` nearest, so memory stays bounded
    (at most twice the limit plus one block)."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.left_out = 0
        self._first: list[IndexArray] = []
        self._second: list[IndexArray] = []
        self._separation: list[FloatArray] = []
        self._held = 0

    def add(self, first: IndexArray, second: IndexArray, separation: FloatArray) -> None:
        self._first.append(first)
        self._second.append(second)
        self._separation.append(separation)
        self._held += len(first)
        # Trimming sorts what is held: done when twice the limit is held, it costs O(log) per pair.
        if self.limit is not None and self._held > 2 * self.limit:
            self._trim(self.limit)

    def _trim(self, limit: int) -> None:
        first, second, separation = (
            np.concatenate(self._first),
            np.concatenate(self._second),
            np.concatenate(self._separation),
        )
        nearest = np.lexsort((second, first, separation))[:limit]
        self.left_out += len(first) - len(nearest)
        self._first, self._second, self._separation = [first[nearest]], [second[nearest]], [separation[nearest]]
        self._held = len(nearest)

    def result(self) -> CandidatePairs:
        if self.limit is not None and self._held > self.limit:
            self._trim(self.limit)
        if not self._first:
            empty = np.zeros(0, dtype=np.intp)
            return CandidatePairs(empty, empty.copy(), self.left_out)
        first, second = np.concatenate(self._first), np.concatenate(self._second)
        order = np.lexsort((second, first))  # the all-pairs order: by first, then second
        return CandidatePairs(first[order].astype(np.intp), second[order].astype(np.intp), self.left_out)


def _grid_neighbours(
    positions: FloatArray, radius_m: FloatArray, margin_m: float
) -> Iterator[tuple[IndexArray, IndexArray]]:
    """Blocks of pairs (i < j) that include every pair within its limit: pairs in the same or
    neighbouring grid cells, and every pair with a road user whose position or radius is not
    finite (no cell holds it; the exact test decides, as the all-pairs rule would)."""
    count = len(positions)
    if count < 2:
        return
    finite = np.isfinite(positions).all(axis=1) & np.isfinite(radius_m)
    placed = np.flatnonzero(finite)
    unplaced = np.flatnonzero(~finite)
    if len(placed) >= 2:
        yield from _cell_pairs(positions, placed, float(2.0 * radius_m[placed].max() + margin_m))
    for index in unplaced.tolist():  # against everybody (each pair once: unplaced among themselves by index)
        others = np.concatenate([placed, unplaced[unplaced > index]]) if len(unplaced) else placed
        for start in range(0, len(others), PAIR_BLOCK):
            block = others[start : start + PAIR_BLOCK]
            mine = np.full(len(block), index, dtype=np.intp)
            yield np.minimum(mine, block).astype(np.intp), np.maximum(mine, block).astype(np.intp)


def _cell_pairs(
    positions: FloatArray, members: IndexArray, largest_limit_m: float
) -> Iterator[tuple[IndexArray, IndexArray]]:
    """Pairs (i < j) of `members` in the same or neighbouring cells of side >= largest_limit_m."""
    points = positions[members]
    origin = points.min(axis=0)
    span = float((points.max(axis=0) - origin).max())
    side = max(largest_limit_m * (1.0 + CELL_SLACK), span / MAX_CELLS_ACROSS, 1e-9)
    with np.errstate(over="ignore", invalid="ignore"):
        scaled = np.floor((points - origin) / side)
    if not (np.isfinite(side) and np.isfinite(scaled).all()):
        scaled = np.zeros_like(points)  # a limit or span beyond floating point: one cell holds all
    cells = scaled.astype(np.int64)
    width = int(cells[:, 1].max()) + 3  # a key per cell, with room for the neighbours at -1 and +1
    keys = (cells[:, 0] + 1) * width + (cells[:, 1] + 1)
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    sorted_members = members[order]
    # Per member and neighbouring cell: the slice of sorted members in that cell.
    neighbour_keys = keys[:, None] + np.array([dx * width + dy for dx, dy in _NEIGHBOURS], dtype=np.int64)[None, :]
    low = np.searchsorted(sorted_keys, neighbour_keys, side="left").ravel()
    high = np.searchsorted(sorted_keys, neighbour_keys, side="right").ravel()
    owner = np.repeat(members, len(_NEIGHBOURS))
    sizes = high - low
    nonempty = sizes > 0
    low, sizes, owner = low[nonempty], sizes[nonempty], owner[nonempty]
    # Cut the slices into blocks of about PAIR_BLOCK pairs (a slice is never split: at most n pairs).
    ends = np.cumsum(sizes)
    start_slice = 0
    while start_slice < len(sizes):
        before = ends[start_slice - 1] if start_slice > 0 else 0
        stop_slice = max(int(np.searchsorted(ends, before + PAIR_BLOCK, side="right")), start_slice + 1)
        block_sizes = sizes[start_slice:stop_slice]
        total = int(block_sizes.sum())
        slice_starts = np.cumsum(block_sizes) - block_sizes
        within_slice = np.arange(total) - np.repeat(slice_starts, block_sizes)
        first = np.repeat(owner[start_slice:stop_slice], block_sizes)
        second = sorted_members[np.repeat(low[start_slice:stop_slice], block_sizes) + within_slice]
        forward = first < second  # each unordered pair is met from both sides: keep one
        yield first[forward].astype(np.intp), second[forward].astype(np.intp)
        start_slice = stop_slice
