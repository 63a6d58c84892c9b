"""Which of a model's classes are road users, by class name (the one copy of the table)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from rsu_contracts.enums import RoadUserType

# Class names as COCO (and Ultralytics' COCO weights) spell them; a custom model with the same
# names maps the same way.
COCO_NAME_TO_ROAD_USER: Mapping[str, RoadUserType] = MappingProxyType(
    {
        "person": RoadUserType.PEDESTRIAN,
        "bicycle": RoadUserType.BICYCLE,
        "car": RoadUserType.CAR,
        "motorcycle": RoadUserType.MOTORCYCLE,
        "bus": RoadUserType.BUS,
        "truck": RoadUserType.TRUCK,
    }
)


def road_users_of_classes(class_names: Mapping[int, str]) -> dict[int, RoadUserType]:
    """The road-user type of each class id the table knows; the other classes are left out."""
    return {
        class_id: COCO_NAME_TO_ROAD_USER[name]
        for class_id, name in class_names.items()
        if name in COCO_NAME_TO_ROAD_USER
    }
