"""Riders: one road user per cyclist or motorcyclist, post-processing shared by every backend.

COCO has no cyclist class: YOLO reports the rider as a person beside the bicycle, and far away it
sometimes sees only the rider. `merge_riders` folds the rider into the vehicle within one frame;
`RiderMemory` keeps a two-wheeler a two-wheeler across frames when only its rider is found.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rsu.detectors.base import FloatArray
from rsu_contracts.enums import RoadUserType

# A person box overlapping a bicycle or motorcycle box by this share of the smaller box is its rider.
RIDER_OVERLAP = 0.4
_RIDDEN = frozenset({RoadUserType.BICYCLE, RoadUserType.MOTORCYCLE})


def merge_riders(
    boxes_px: FloatArray, road_user: Sequence[RoadUserType], confidence: FloatArray
) -> tuple[FloatArray, list[RoadUserType], FloatArray]:
    """One road user per cyclist or motorcyclist: the rider's person box is folded into the vehicle's.

    COCO has no cyclist class, so YOLO reports the rider as a person and the bicycle separately, and
    the rider would become a pedestrian track of its own (counted as a pedestrian crossing). A person
    whose box overlaps a bicycle/motorcycle box by RIDER_OVERLAP of the smaller one, with its centre
    above that box's horizontal span, is dropped; the vehicle box grows to the union (its bottom, the
    wheels on the road, stays the ground contact) and keeps the higher confidence.
    """
    users = list(road_user)
    vehicles = [i for i, user in enumerate(users) if user in _RIDDEN]
    people = [i for i, user in enumerate(users) if user is RoadUserType.PEDESTRIAN]
    if not vehicles or not people:
        return boxes_px, users, confidence
    boxes = boxes_px.copy()
    scores = confidence.copy()
    dropped: set[int] = set()
    for vehicle in sorted(vehicles, key=lambda i: -scores[i]):
        vx1, vy1, vx2, vy2 = boxes_px[vehicle]
        best, best_overlap = -1, RIDER_OVERLAP
        for person in people:
            if person in dropped:
                continue
            px1, py1, px2, py2 = boxes_px[person]
            if not vx1 <= (px1 + px2) / 2 <= vx2:
                continue
            inter = max(0.0, min(vx2, px2) - max(vx1, px1)) * max(0.0, min(vy2, py2) - max(vy1, py1))
            smaller = min((vx2 - vx1) * (vy2 - vy1), (px2 - px1) * (py2 - py1))
            overlap = inter / smaller if smaller > 0 else 0.0
            if overlap >= best_overlap:
                best, best_overlap = person, overlap
        if best >= 0:
            dropped.add(best)
            px1, py1, px2, py2 = boxes_px[best]
            boxes[vehicle] = (min(vx1, px1), min(vy1, py1), max(vx2, px2), vy2)
            scores[vehicle] = max(scores[vehicle], scores[best])
    keep = [i for i in range(len(users)) if i not in dropped]
    return boxes[keep], [users[i] for i in keep], scores[keep]


# A rider stays a rider for this long after its bicycle/motorcycle was last seen with it ...
RIDER_MEMORY_S = 0.6
# ... if the lone person box overlaps the rider's last box by at least this IoU.
RIDER_CONTINUITY_IOU = 0.3
# The wheels reach about this share of a rider's box height below the rider's feet (0.1-0.36 measured
# on the OTC cyclist), so a lone rider box is lengthened by it to keep the ground contact in place.
RIDER_WHEEL_DROP = 0.25


class RiderMemory:
    """Keeps a cyclist a cyclist when the detector stops seeing the bicycle under it.

    Far from the camera YOLO often finds only the rider (a person) of a bicycle it found a moment
    before; the tracker would then end the bicycle track and start a pedestrian one. A person box
    overlapping a two-wheeler box of the last RIDER_MEMORY_S is taken for that two-wheeler: it gets
    its class, and its box is lengthened down to the wheels. Call apply() once per frame, in time
    order, after merge_riders. Memory: the two-wheelers of the last RIDER_MEMORY_S only.
    """

    def __init__(self) -> None:
        self._riders: list[tuple[FloatArray, RoadUserType, float]] = []  # box, class, time seen

    def apply(
        self, boxes_px: FloatArray, road_user: Sequence[RoadUserType], confidence: FloatArray, time_s: float
    ) -> tuple[FloatArray, list[RoadUserType], FloatArray]:
        self._riders = [r for r in self._riders if 0.0 <= time_s - r[2] <= RIDER_MEMORY_S]
        users = list(road_user)
        boxes = boxes_px.copy()
        seen: list[tuple[FloatArray, RoadUserType, float]] = []
        for i, user in enumerate(users):
            if user in _RIDDEN:
                seen.append((boxes[i].copy(), user, time_s))
                continue
            if user is not RoadUserType.PEDESTRIAN or not self._riders:
                continue
            overlaps = [_iou(boxes[i], rider[0]) for rider in self._riders]
            best = int(np.argmax(overlaps))
            if overlaps[best] < RIDER_CONTINUITY_IOU:
                continue
            x1, y1, x2, y2 = boxes[i]
            boxes[i] = (x1, y1, x2, y2 + RIDER_WHEEL_DROP * (y2 - y1))
            users[i] = self._riders[best][1]
            seen.append((boxes[i].copy(), users[i], time_s))
        # The newest sighting of a two-wheeler replaces the older ones it overlaps.
        kept = [r for r in self._riders if all(_iou(r[0], s[0]) < RIDER_CONTINUITY_IOU for s in seen)]
        self._riders = kept + seen
        return boxes, users, confidence


def _iou(a: FloatArray, b: FloatArray) -> float:
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0
