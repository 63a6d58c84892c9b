"""The detector interface every backend and wrapper shares; it imports nothing of the backends.

A `Detector` turns one BGR frame into road users on the ground. Backends build it from
`PassDetector`s: one network run on one image (the whole frame, or a detail region's crop of it),
boxes in that image's pixels. Wrappers (motion gating, detail regions) import only this module, so
they sit around any backend without an import cycle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from rsu.perception.detections import Detections
from rsu_contracts.enums import RoadUserType

ImageArray = npt.NDArray[np.uint8]
FloatArray = npt.NDArray[np.float64]


class DetectorError(RuntimeError):
    """The detector cannot be built: missing weights, unsupported model, unknown type."""


class Detector(Protocol):
    def detect(self, frame_bgr: ImageArray, capture_time_s: float) -> Detections:
        """Road users in one frame, stamped with the frame's capture time."""
        ...


@dataclass(frozen=True)
class PassDetections:
    """Boxes in image pixels (x1 y1 x2 y2), their road-user types and confidences, before ground placement."""

    boxes_px: FloatArray  # (N, 4)
    road_user: tuple[RoadUserType, ...]
    confidence: FloatArray  # (N,)

    def __len__(self) -> int:
        return len(self.road_user)


class PassDetector(Protocol):
    """One network run on one image, at the network's input size."""

    @property
    def input_hw(self) -> tuple[int, int]:
        """The network input (height, width) an image is scaled to."""
        ...

    def detect_pass(self, image_bgr: ImageArray) -> PassDetections:
        """Road users in the image, boxes in its own pixels."""
        ...
