"""The camera preview the perception stage publishes for the web page: an annotated JPEG, a few per second.

The preview goes to a local-only topic (Topics.camera_preview): the image never leaves the box's
broker. It is drawn here, in the perception process, because only there do the frame, the
detector's boxes and the tracks of the same instant meet.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

import cv2
import numpy as np
import numpy.typing as npt

from rsu.perception.detections import Detections
from rsu.perception.homography import Homography
from rsu.perception.pipeline import PerceptionOutput
from rsu.web.annotate import TrailBook, draw_boxes, draw_caption, draw_site, draw_tracks
from rsu.web.geometry import GroundProjector
from rsu_contracts.config.model import CameraConfig, SiteConfig

log = logging.getLogger(__name__)

ImageArray = npt.NDArray[np.uint8]

JPEG_QUALITY = 75


class CameraPreview:
    """Keeps the newest frame, and at most `fps` times a second publishes it annotated as a JPEG.

    Call `hold(frame, detections)` for each frame that goes to the pipeline and `publish(output)`
    with the pipeline's output for it. Trails are updated on every output, drawn only when due.
    """

    def __init__(
        self,
        site: SiteConfig,
        camera: CameraConfig,
        send: Callable[[bytes], object],
        fps: float | None = None,
        width_px: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.site = site
        self.camera = camera
        self.homography = Homography.from_points(camera.calibration)
        self.interval_s = 1.0 / (fps if fps is not None else site.web.preview_fps)
        self.width_px = width_px if width_px is not None else site.web.preview_width_px
        self.trails = TrailBook(max_tracks=site.tracking.max_tracks)
        self.published = 0
        self._send = send
        self._clock = clock
        self._next_due_s = 0.0
        self._held: tuple[ImageArray, Detections] | None = None

    def hold(self, image: ImageArray, detections: Detections) -> None:
        """Remember this frame if a preview will be due; cheap otherwise (no copy is made)."""
        if self._clock() >= self._next_due_s:
            self._held = (image, detections)

    def publish(self, output: PerceptionOutput) -> bytes | None:
        """Update the trails; if a preview is due and its frame is held, draw, encode and send it."""
        self.trails.update(output.tracks, output.time_s)
        held = self._held
        if held is None or held[1].capture_time_s != output.time_s or self._clock() < self._next_due_s:
            return None
        self._held = None
        self._next_due_s = self._clock() + self.interval_s
        try:
            jpeg = self.render(held[0], held[1], output)
        except (cv2.error, ValueError, RuntimeError) as exc:
            # The preview is for people; perception must go on without it.
            log.warning("camera preview of %s not drawn: %s", self.camera.id, exc)
            return None
        self._send(jpeg)
        self.published += 1
        return jpeg

    def render(self, image: ImageArray, detections: Detections, output: PerceptionOutput) -> bytes:
        height, width = image.shape[:2]
        scale = min(1.0, self.width_px / width)
        resized = image if scale == 1.0 else cv2.resize(image, (round(width * scale), round(height * scale)))
        canvas: ImageArray = np.array(resized, dtype=np.uint8, copy=True)  # never draw on the detector's frame
        projector = GroundProjector(self.homography, scale)
        draw_site(canvas, self.site, projector, output.lanes)
        if detections.boxes_px is not None and len(detections):
            draw_boxes(canvas, detections.boxes_px, detections.road_user, detections.confidence, scale)
        draw_tracks(canvas, output.tracks, self.trails, projector)
        stamp = datetime.fromtimestamp(output.time_s, UTC).strftime("%H:%M:%S.%f")[:-4]
        draw_caption(canvas, f"{self.camera.id}  {stamp} UTC  {len(output.tracks)} tracks")
        ok, encoded = cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            raise RuntimeError("JPEG encoding of the camera preview failed")
        return encoded.tobytes()
