"""A cyclist is one road user: rider boxes fold into the bicycle, and stay a bicycle when it is lost."""

from __future__ import annotations

import numpy as np

from rsu.detectors.riders import RIDER_WHEEL_DROP, RiderMemory, merge_riders
from rsu_contracts.enums import RoadUserType

BICYCLE, PEDESTRIAN, CAR = RoadUserType.BICYCLE, RoadUserType.PEDESTRIAN, RoadUserType.CAR


def test_the_rider_folds_into_the_bicycle_and_a_pedestrian_beside_it_stays() -> None:
    boxes = np.array(
        [
            [100.0, 150.0, 180.0, 240.0],  # bicycle
            [110.0, 100.0, 170.0, 200.0],  # its rider
            [300.0, 100.0, 330.0, 200.0],  # a pedestrian on the pavement
            [0.0, 0.0, 50.0, 40.0],  # a car
        ]
    )
    merged, users, confidence = merge_riders(
        boxes, [BICYCLE, PEDESTRIAN, PEDESTRIAN, CAR], np.array([0.6, 0.8, 0.7, 0.9])
    )
    assert users == [BICYCLE, PEDESTRIAN, CAR]
    assert merged[0].tolist() == [100.0, 100.0, 180.0, 240.0]  # the union; the wheels stay the bottom
    assert confidence.tolist() == [0.8, 0.7, 0.9]


def test_without_a_two_wheeler_nothing_changes() -> None:
    boxes = np.array([[0.0, 0.0, 10.0, 30.0]])
    merged, users, _ = merge_riders(boxes, [PEDESTRIAN], np.array([0.5]))
    assert users == [PEDESTRIAN] and merged is boxes


def test_a_lone_rider_just_after_its_bicycle_stays_a_bicycle_for_a_while() -> None:
    memory = RiderMemory()
    memory.apply(np.array([[100.0, 100.0, 180.0, 240.0]]), [BICYCLE], np.array([0.8]), 0.0)
    rider = np.array([[112.0, 98.0, 168.0, 198.0]])
    boxes, users, _ = memory.apply(rider, [PEDESTRIAN], np.array([0.6]), 0.05)
    assert users == [BICYCLE]
    assert boxes[0, 3] == 198.0 + RIDER_WHEEL_DROP * 100.0  # lengthened down to the wheels
    # Still remembered through the lone-rider frames; forgotten after a gap longer than the memory.
    _, users, _ = memory.apply(rider, [PEDESTRIAN], np.array([0.6]), 0.5)
    assert users == [BICYCLE]
    _, users, _ = memory.apply(rider, [PEDESTRIAN], np.array([0.6]), 2.0)
    assert users == [PEDESTRIAN]


def test_a_pedestrian_away_from_any_bicycle_stays_a_pedestrian() -> None:
    memory = RiderMemory()
    memory.apply(np.array([[100.0, 100.0, 180.0, 240.0]]), [BICYCLE], np.array([0.8]), 0.0)
    _, users, _ = memory.apply(np.array([[400.0, 100.0, 430.0, 200.0]]), [PEDESTRIAN], np.array([0.6]), 0.05)
    assert users == [PEDESTRIAN]
