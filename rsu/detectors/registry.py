"""From a site file's `detector.type` to the function that builds that detector.

Each backend module registers its builder with `@register("<type>")`; `BACKEND_MODULES` lists the
modules, which are imported on the first look-up (not before: a backend's module may pull in its
runtime, and the backends import this module for the decorator).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from rsu.detectors.base import Detector, DetectorError
from rsu.perception.homography import Homography
from rsu_contracts.config.model import DetectorConfig

# config, the camera's homography, the camera id, the site file's folder (relative weights paths).
DetectorBuilder = Callable[[DetectorConfig, Homography, str, str | Path | None], Detector]

# The modules that register the built-in detector types.
BACKEND_MODULES = (
    "rsu.detectors.ultralytics_backend",
    "rsu.detectors.openvino_backend",
    "rsu.detectors.onnx_backend",
)

# The decorator hands back the builder unchanged, keyword defaults and return type included.
BuilderT = TypeVar("BuilderT", bound=DetectorBuilder)

_builders: dict[str, DetectorBuilder] = {}
_backends_imported = False


def register(detector_type: str) -> Callable[[BuilderT], BuilderT]:
    """Decorator: the builder for cameras whose detector.type is detector_type."""

    def add(builder: BuilderT) -> BuilderT:
        registered = _builders.get(detector_type)
        if registered is not None and registered is not builder:
            raise DetectorError(f"detector.type {detector_type!r} is registered twice")
        _builders[detector_type] = builder
        return builder

    return add


def _import_backends() -> None:
    global _backends_imported
    if not _backends_imported:
        for module in BACKEND_MODULES:
            importlib.import_module(module)
        _backends_imported = True


def known_types() -> list[str]:
    """Every registered detector.type, sorted."""
    _import_backends()
    return sorted(_builders)


def builder_for(detector_type: str, camera_id: str = "") -> DetectorBuilder:
    """The builder registered for detector_type; DetectorError naming the field and the known types otherwise."""
    _import_backends()
    builder = _builders.get(detector_type)
    if builder is None:
        field = f"cameras[{camera_id}].detector.type" if camera_id else "detector.type"
        raise DetectorError(f"{field} {detector_type!r} is not supported; known types: {', '.join(known_types())}")
    return builder
