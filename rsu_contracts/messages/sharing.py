"""Sensor sharing for vehicles: every object the unit's cameras track, in one message.

The same role as SAE J3224 SDSM, ETSI CPM or the T/CSAE 53 RSM: objects relative to a reference
point. Positions are metres east (x) and north (y) of the site's WGS-84 reference point, so a
vehicle converts them with that point instead of receiving a latitude per object; speeds m/s,
headings degrees clockwise from north, accelerations m/s², sizes m.

It extends TrackList (same object fields) so the wire layer files it under the objects class. A
track's image box (TrackedObject.image_box) is for local readers only: it is refused here, so a box
never reaches a vehicle.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, field_validator

from rsu_contracts.config.model import GeoReference
from rsu_contracts.messages.perception import TrackedObject, TrackList


class SharedObjects(TrackList):
    SCHEMA: ClassVar[str] = "rsu.v2x.objects"
    reference: GeoReference = Field(description="WGS-84 origin of the objects' x_m / y_m (x east, y north)")

    @field_validator("objects")
    @classmethod
    def _no_image_boxes(cls, objects: list[TrackedObject]) -> list[TrackedObject]:
        boxed = [o.track_id for o in objects if o.image_box is not None]
        if boxed:
            raise ValueError(f"objects.image_box is for local topics only; set on tracks {boxed[:5]}")
        return objects
