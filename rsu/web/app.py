"""The web application: live page, calibration helper, JSON API, WebSocket push and /metrics.

Routes
- `/` live view; `/calibrate` calibration helper (static HTML/JS/CSS, no build step)
- `/ws` WebSocket: a JSON snapshot (text) whenever the state changed, at most 10 per second, and
  the newest camera preview JPEG (binary) whenever a new one arrived
- `/api/site` geometry to draw; `/api/state` one snapshot; `/api/camera.jpg` newest preview
- `/api/calibration`, `/api/calibration/frame.jpg`, `POST /api/calibration/fit`, `POST /api/calibration/save`
- `/metrics` Prometheus text format; `/healthz` liveness of the web stage itself
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import cv2
from fastapi import FastAPI, HTTPException, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field

from rsu.metrics import CONTENT_TYPE
from rsu.perception.homography import HomographyError
from rsu.sensors.video import UriError, VideoSource, VideoSourceError, expand_uri, redact_uri
from rsu.web.calibration import CalibrationError, CalibrationSave, fit_calibration, save_calibration
from rsu.web.geometry import site_layout
from rsu.web.hub import LiveHub
from rsu_contracts.config import ConfigError, SiteConfig, load_site_config
from rsu_contracts.config.model import CalibrationPoint, CameraConfig
from rsu_contracts.enums import CameraSource

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
PUSH_PERIOD_S = 0.1
STILL_FRAME_CACHE_S = 60.0
STILL_FRAME_TIMEOUT_S = 5.0
NO_STORE = {"Cache-Control": "no-store"}


class FitRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    points: list[CalibrationPoint] = Field(min_length=1)


@dataclass
class _StillFrame:
    jpeg: bytes
    width: int
    height: int
    taken_monotonic_s: float


class StillFrames:
    """One clean frame per camera for calibration, read straight from the camera's uri and cached."""

    def __init__(self, config_dir: Path) -> None:
        self.config_dir = config_dir
        self._cache: dict[str, _StillFrame] = {}
        self._lock = threading.Lock()

    def get(self, camera: CameraConfig, refresh: bool = False) -> _StillFrame:
        with self._lock:
            cached = self._cache.get(camera.id)
            if cached is not None and not refresh and time.monotonic() - cached.taken_monotonic_s < STILL_FRAME_CACHE_S:
                return cached
            frame = self._read(camera)
            self._cache[camera.id] = frame
            return frame

    def _read(self, camera: CameraConfig) -> _StillFrame:
        if camera.source is not CameraSource.VIDEO or not camera.uri:
            raise HTTPException(404, f"camera {camera.id} is a {camera.source.value} camera: it has no image")
        try:
            uri = expand_uri(camera.uri, self.config_dir)
            with VideoSource(uri, connect_timeout_s=STILL_FRAME_TIMEOUT_S) as source:
                frame = source.read(timeout_s=STILL_FRAME_TIMEOUT_S)
        except (UriError, VideoSourceError) as exc:
            raise HTTPException(
                503,
                f"cannot read a frame from camera {camera.id} ({redact_uri(camera.uri)}): {exc}. "
                "Check cameras[].uri; a USB camera that the perception stage holds cannot be opened twice.",
            ) from None
        if frame is None:
            raise HTTPException(503, f"camera {camera.id} delivered no frame within {STILL_FRAME_TIMEOUT_S:g} s")
        ok, encoded = cv2.imencode(".jpg", frame.image, [cv2.IMWRITE_JPEG_QUALITY, 90])
        if not ok:
            raise HTTPException(500, "JPEG encoding failed")
        height, width = frame.image.shape[:2]
        return _StillFrame(encoded.tobytes(), width, height, time.monotonic())


def _same_origin(request: Request) -> bool:
    """Browsers send Origin on cross-site POSTs: refuse those, so no other web page can rewrite the config."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc == request.headers.get("host")


def create_app(site: SiteConfig, site_path: Path, hub: LiveHub) -> FastAPI:
    app = FastAPI(title=f"rsu-edge {site.unit_id}", docs_url=None, redoc_url=None, openapi_url="/api/openapi.json")
    app.state.site = site
    app.state.hub = hub
    still_frames = StillFrames(site_path.resolve().parent)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    def current_site() -> SiteConfig:
        current: SiteConfig = app.state.site
        return current

    def camera_of(camera_id: str) -> CameraConfig:
        for camera in current_site().cameras:
            if camera.id == camera_id:
                return camera
        raise HTTPException(404, f"no camera with id '{camera_id}' in {site_path.name}")

    @app.get("/", include_in_schema=False)
    def live_page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers=NO_STORE)

    @app.get("/calibrate", include_in_schema=False)
    def calibration_page() -> FileResponse:
        return FileResponse(STATIC_DIR / "calibrate.html", headers=NO_STORE)

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return Response(status_code=204)

    @app.get("/api/site")
    def layout() -> dict[str, Any]:
        return site_layout(current_site())

    @app.get("/api/state")
    def state() -> Response:
        _, text = hub.snapshot_json()
        return Response(text, media_type="application/json", headers=NO_STORE)

    @app.get("/api/camera.jpg")
    def camera_preview() -> Response:
        frame = hub.frame()
        if frame is None:
            raise HTTPException(404, "no camera preview yet (only video cameras publish one)")
        return Response(frame.jpeg, media_type="image/jpeg", headers=NO_STORE)

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> PlainTextResponse:
        return PlainTextResponse(hub.metrics.render(), media_type=CONTENT_TYPE)

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {"ok": True, "unit_id": site.unit_id, "mqtt_connected": hub.link.mqtt_connected}

    @app.websocket("/ws")
    async def live(websocket: WebSocket) -> None:
        await websocket.accept()
        sender = asyncio.create_task(_push(websocket, hub))
        # Reading is what notices a closed page; the sender alone would only find out on its next send.
        receiver = asyncio.create_task(_drain(websocket))
        done, pending = await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
                await task
        for task in done:
            exception = task.exception()
            if exception is not None and not isinstance(exception, WebSocketDisconnect | RuntimeError | OSError):
                log.warning("web: live socket ended: %s", exception)

    @app.get("/api/calibration")
    def calibration() -> dict[str, Any]:
        current = current_site()
        cameras = []
        for camera in current.cameras:
            entry: dict[str, Any] = {
                "id": camera.id,
                "source": camera.source.value,
                "uri": redact_uri(camera.uri) if camera.uri else None,
                "points": [p.model_dump() for p in camera.calibration],
                "fit": None,
                "fit_error": None,
            }
            if len(camera.calibration) >= 4:
                try:
                    entry["fit"] = fit_calibration(camera.calibration).as_dict()
                except HomographyError as exc:
                    entry["fit_error"] = str(exc)
            cameras.append(entry)
        return {
            "site_file": str(site_path),
            "cameras": cameras,
            "layout": site_layout(current),
            "approaches": [a.id for a in current.approaches],
        }

    @app.get("/api/calibration/frame.jpg")
    def still_frame(camera: str, refresh: bool = False) -> Response:
        frame = still_frames.get(camera_of(camera), refresh)
        headers = {**NO_STORE, "X-Frame-Width": str(frame.width), "X-Frame-Height": str(frame.height)}
        return Response(frame.jpeg, media_type="image/jpeg", headers=headers)

    @app.post("/api/calibration/fit")
    def fit(request: FitRequest) -> dict[str, Any]:
        try:
            return fit_calibration(request.points).as_dict()
        except HomographyError as exc:
            raise HTTPException(422, str(exc)) from None

    @app.post("/api/calibration/save")
    def save(edit: CalibrationSave, request: Request) -> dict[str, Any]:
        if not _same_origin(request):
            raise HTTPException(403, "cross-origin request refused: open the calibration page from this unit")
        camera_of(edit.camera_id)
        try:
            result = save_calibration(site_path, edit)
        except (CalibrationError, ConfigError) as exc:
            raise HTTPException(422, str(exc)) from None
        except OSError as exc:
            raise HTTPException(500, f"cannot write {site_path}: {exc.strerror or exc}") from None
        app.state.site = load_site_config(site_path)
        log.warning("web: calibration of %s saved to %s (backup %s)", edit.camera_id, site_path, result.backup_path)
        return {
            "saved": str(result.path),
            "backup": str(result.backup_path),
            "reprojection_error_m": result.fit.reprojection_error_m,
            "note": "restart the unit to apply the new calibration (systemctl restart rsu@<site>)",
        }

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    return app


async def _push(websocket: WebSocket, hub: LiveHub) -> None:
    sent_version = -1
    sent_text = ""
    sent_frame = 0
    while True:
        version, text = await asyncio.to_thread(hub.snapshot_json)
        if version != sent_version or text != sent_text:
            await websocket.send_text(text)
            sent_version, sent_text = version, text
        frame = hub.frame()
        if frame is not None and frame.version != sent_frame:
            await websocket.send_bytes(frame.jpeg)
            sent_frame = frame.version
        await asyncio.sleep(PUSH_PERIOD_S)


async def _drain(websocket: WebSocket) -> None:
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
