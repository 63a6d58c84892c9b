"""Image-space association for the tracker (the ByteTrack / OC-SORT family), in pixels and seconds.

A box's motion in the image is kept by a constant-velocity filter on its centre, width and height
(four independent axes, each a 2x2 position/velocity block, like the ground-plane filter). Its noise
scales with the box's height, so one set of constants holds for a car 20 px tall at the far end of
the road and 150 px tall under the camera: the gate is scale-aware by construction, unlike a gate in
metres through a homography that is coarse at range. Matching is on IoU between the predicted box
and a detection, solved with the Hungarian method; pairs below a minimum IoU are never matched.

Time is in seconds of capture time throughout (a missed or dropped frame is just a longer step).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# Measurement noise of one box edge, as a share of the box height (ByteTrack: 1/20).
BOX_MEASUREMENT_STD = 0.05
# White-acceleration density per axis, as (share of box height)^2 per s^3: how quickly a box's image
# velocity may change. Tuned on JamCam 2019-06-28_13-02-35 only (see the tracker's README section).
BOX_ACCELERATION_PSD = 2.0
# Unknown velocity of a new track: its standard deviation as box heights per second.
BOX_INITIAL_SPEED_STD = 2.0
# A box narrower or lower than this (pixels) is degenerate; kept at this size so the noise stays positive.
MIN_BOX_SIDE_PX = 1.0


def iou_matrix(a: FloatArray, b: FloatArray) -> FloatArray:
    """IoU of every box in a (N, 4) with every box in b (M, 4), boxes x1 y1 x2 y2."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    intersection = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - intersection
    return np.where(union > 0, intersection / np.where(union > 0, union, 1.0), 0.0)


def _to_cxcywh(box: FloatArray) -> FloatArray:
    x1, y1, x2, y2 = (float(v) for v in box)
    return np.array(
        [(x1 + x2) / 2.0, (y1 + y2) / 2.0, max(x2 - x1, MIN_BOX_SIDE_PX), max(y2 - y1, MIN_BOX_SIDE_PX)],
        dtype=np.float64,
    )


class BoxKalman:
    """Constant-velocity filter of one image box (centre x, centre y, width, height) in pixels and px/s."""

    __slots__ = ("p_pos", "p_pos_vel", "p_vel", "state", "time_s", "velocity")

    def __init__(self, box_px: FloatArray, time_s: float) -> None:
        self.state = _to_cxcywh(box_px)
        self.velocity = np.zeros(4)
        self.time_s = time_s
        h = self.state[3]
        self.p_pos = np.full(4, (BOX_MEASUREMENT_STD * h) ** 2)
        self.p_pos_vel = np.zeros(4)
        self.p_vel = np.full(4, (BOX_INITIAL_SPEED_STD * h) ** 2)
        # Size does not drift fast: a tenth of the centre's initial velocity uncertainty.
        self.p_vel[2:] *= 0.01

    @property
    def box_px(self) -> FloatArray:
        """The current estimate as x1 y1 x2 y2."""
        cx, cy, w, h = self.state
        w = max(w, MIN_BOX_SIDE_PX)
        h = max(h, MIN_BOX_SIDE_PX)
        return np.array([cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0])

    def predict(self, time_s: float) -> None:
        dt = time_s - self.time_s
        if dt < 0:
            raise ValueError(f"cannot predict a box backwards in time: {self.time_s} -> {time_s}")
        if dt == 0:
            return
        self.state = self.state + self.velocity * dt
        # A shrinking box must not turn inside out while it coasts.
        self.state[2:] = np.maximum(self.state[2:], MIN_BOX_SIDE_PX)
        q = BOX_ACCELERATION_PSD * self.state[3] ** 2
        self.p_pos = self.p_pos + 2.0 * dt * self.p_pos_vel + dt * dt * self.p_vel + q * dt**3 / 3.0
        self.p_pos_vel = self.p_pos_vel + dt * self.p_vel + q * dt * dt / 2.0
        self.p_vel = self.p_vel + q * dt
        self.time_s = time_s

    def update(self, box_px: FloatArray) -> None:
        measured = _to_cxcywh(box_px)
        measurement_var = (BOX_MEASUREMENT_STD * measured[3]) ** 2
        innovation_var = self.p_pos + measurement_var
        gain_pos = self.p_pos / innovation_var
        gain_vel = self.p_pos_vel / innovation_var
        innovation = measured - self.state
        self.state = self.state + gain_pos * innovation
        self.velocity = self.velocity + gain_vel * innovation
        self.p_vel = self.p_vel - gain_vel * self.p_pos_vel
        self.p_pos_vel = self.p_pos_vel * (1.0 - gain_pos)
        self.p_pos = self.p_pos * (1.0 - gain_pos)

    def restart_from(self, last_box_px: FloatArray, last_time_s: float, box_px: FloatArray) -> None:
        """Observation-centric re-update (OC-SORT) after a gap: the velocity is taken from the last real
        observation to this one, not from the drift accumulated while the box was only predicted."""
        measured = _to_cxcywh(box_px)
        previous = _to_cxcywh(last_box_px)
        dt = self.time_s - last_time_s
        if dt > 0 and math.isfinite(dt):
            self.velocity = (measured - previous) / dt
            self.velocity[2:] = 0.0
        self.state = measured
        h = measured[3]
        self.p_pos = np.full(4, (BOX_MEASUREMENT_STD * h) ** 2)
        self.p_pos_vel = np.zeros(4)
        # Velocity from two observations dt apart: about sqrt(2) position errors over dt.
        vel_std = BOX_MEASUREMENT_STD * h * math.sqrt(2.0) / max(dt, 1e-3)
        self.p_vel = np.full(4, vel_std**2)


def associate_iou(
    track_boxes: FloatArray,
    det_boxes: FloatArray,
    allowed: npt.NDArray[np.bool_],
    min_iou: float,
    det_confidence: FloatArray | None = None,
    track_penalty: FloatArray | None = None,
) -> tuple[list[tuple[int, int]], IntArray, IntArray]:
    """Hungarian matching of tracks (rows) to detections (columns) on 1 - IoU.

    allowed: (T, D) pairs that may match at all (class groups). Pairs with IoU below min_iou never
    match. det_confidence fuses the score into the cost (ByteTrack's fuse_score: of two overlapping
    detections the surer one wins); track_penalty is added to a row's cost (tentative tracks lose a
    detection a confirmed track could take). Returns (row, column) pairs and the unmatched rows and
    columns, all as positions in the given arrays.
    """
    rows_all = np.arange(len(track_boxes))
    cols_all = np.arange(len(det_boxes))
    if not len(track_boxes) or not len(det_boxes):
        return [], rows_all, cols_all
    iou = iou_matrix(track_boxes, det_boxes)
    admissible = allowed & (iou >= min_iou)
    if not admissible.any():
        return [], rows_all, cols_all
    similarity = iou * det_confidence[None, :] if det_confidence is not None else iou
    cost = 1.0 - similarity
    if track_penalty is not None:
        cost = cost + track_penalty[:, None]
    cost = np.where(admissible, cost, 1.0e6)
    rows, cols = linear_sum_assignment(cost)
    keep = admissible[rows, cols]
    rows, cols = rows[keep], cols[keep]
    row_left = np.ones(len(track_boxes), dtype=bool)
    row_left[rows] = False
    col_left = np.ones(len(det_boxes), dtype=bool)
    col_left[cols] = False
    return list(zip(rows.tolist(), cols.tolist(), strict=True)), rows_all[row_left], cols_all[col_left]
