"""Which pairs of road users are worth a conflict test at all: those close enough now to meet
within the horizon (currently every pair is compared, in one vectorised pass)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rsu_contracts.config.model import WarningConfig
from rsu_contracts.messages.perception import TrackedObject
from v2x.conflicts.shared import PATH_EXTENSION_M
from v2x.conflicts.types import PairIndices
from v2x.prediction import FloatArray


def candidate_pairs(tracks: Sequence[TrackedObject], reach_m: FloatArray, config: WarningConfig) -> PairIndices:
    """Pairs (i < j) that could meet within the horizon: current distance below the sum of reaches."""
    positions = np.array([[t.x_m, t.y_m] for t in tracks])
    half_lengths = np.array([t.length_m / 2 for t in tracks])
    separation = np.linalg.norm(positions[:, None, :] - positions[None, :, :], axis=-1)
    limit = reach_m[:, None] + reach_m[None, :] + half_lengths[:, None] + half_lengths[None, :]
    limit = limit + config.collision_radius_m + PATH_EXTENSION_M
    first, second = np.nonzero(np.triu(separation <= limit, k=1))
    return PairIndices(first, second)
