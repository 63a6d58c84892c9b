"""One camera's perception: detections in, tracks and virtual-detector states out.

Pure logic on plain data: no I/O, no clock (time comes from the detections' capture time). State is
bounded by the tracker's max_tracks: every per-track memory downstream is pruned to the live tracks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import ValidationError

from rsu.perception.counting import LineCounter
from rsu.perception.detections import Detections
from rsu.perception.lanes import LaneMap, LanePosition
from rsu.perception.tracker import GroundTracker, Track
from rsu.perception.zones import ZoneMonitor, locate_tracks
from rsu_contracts.config.model import SiteConfig
from rsu_contracts.messages.bounds import MAX_TRACKED_OBJECTS
from rsu_contracts.messages.perception import (
    CrosswalkObservation,
    ImageBox,
    LaneObservation,
    LineCrossing,
    TrackedObject,
    TurningMovement,
)


@dataclass(frozen=True, slots=True)
class PerceptionOutput:
    time_s: float
    tracks: list[TrackedObject]  # confirmed tracks only, with their lane
    lanes: list[LaneObservation]
    crosswalks: list[CrosswalkObservation]
    crossings: list[LineCrossing]  # crossings reported at this update
    movements: list[TurningMovement] = field(default_factory=list)  # turning movements completed at this update


class PerceptionPipeline:
    """Tracker, zone monitor and line counter of one camera; process() once per frame, in time order."""

    def __init__(self, site: SiteConfig, camera_id: str) -> None:
        self.camera_id = camera_id
        self.lane_map = LaneMap.from_site(site)
        self.tracker = GroundTracker(site.tracking)
        self.zones = ZoneMonitor(site, self.lane_map)
        self.counter = LineCounter(site, self.lane_map)
        # Confirmed tracks left out of a track list for leaving the message bounds (a tracker glitch).
        self.implausible_tracks = 0

    @property
    def active_track_count(self) -> int:
        """Live tracks, tentative included (for health reporting)."""
        return len(self.tracker)

    def process(self, detections: Detections) -> PerceptionOutput:
        if detections.camera_id and detections.camera_id != self.camera_id:
            raise ValueError(
                f"detections from camera '{detections.camera_id}' fed to the pipeline of camera '{self.camera_id}'"
            )
        time_s = detections.capture_time_s
        tracks = self.tracker.update(detections)
        confirmed = [track for track in tracks if track.confirmed]
        positions = locate_tracks(self.lane_map, confirmed)
        zones = self.zones.update(confirmed, time_s, positions)
        # The counter sees tentative tracks too: it holds their crossings until they confirm.
        crossings = self.counter.update(tracks, time_s)
        return PerceptionOutput(
            time_s=time_s,
            tracks=self._shareable_objects(confirmed, positions),
            lanes=zones.lanes,
            crosswalks=zones.crosswalks,
            crossings=crossings,
            movements=self.counter.take_movements(),
        )

    def _shareable_objects(self, confirmed: list[Track], positions: list[LanePosition | None]) -> list[TrackedObject]:
        """The confirmed tracks as a track list's objects. A track whose estimate left the message's
        plausible bounds (a position projected from near the horizon, a speed from a bad association)
        is left out and counted, and the list keeps at most MAX_TRACKED_OBJECTS (the oldest tracks,
        the most established): the track list a genuine camera produces always decodes at its readers."""
        objects: list[tuple[float, TrackedObject]] = []
        for track, position in zip(confirmed, positions, strict=True):
            try:
                objects.append((track.age_s, _tracked_object(track, position)))
            except ValidationError:
                self.implausible_tracks += 1
        if len(objects) > MAX_TRACKED_OBJECTS:
            oldest = sorted(range(len(objects)), key=lambda index: -objects[index][0])[:MAX_TRACKED_OBJECTS]
            # In track order: readers' results must not depend on the cap where it is not hit.
            objects = [objects[index] for index in sorted(oldest)]
        return [obj for _, obj in objects]


def _tracked_object(track: Track, position: LanePosition | None) -> TrackedObject:
    return TrackedObject(
        track_id=track.track_id,
        road_user=track.road_user,
        x_m=track.x_m,
        y_m=track.y_m,
        speed_mps=track.speed_mps,
        heading_deg=track.heading_deg,
        acceleration_mps2=track.acceleration_mps2,
        length_m=track.length_m,
        width_m=track.width_m,
        # A road user past its stop line is in the junction, no longer in the lane.
        lane_id=position.lane_id if position is not None and position.before_stop_line else None,
        age_s=track.age_s,
        image_box=None
        if track.box_px is None
        else ImageBox(
            x1_px=track.box_px[0],
            y1_px=track.box_px[1],
            x2_px=track.box_px[2],
            y2_px=track.box_px[3],
            predicted=track.box_predicted,
        ),
    )
