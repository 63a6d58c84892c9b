"""Frames from a video file or a live camera, each with the time it was captured.

Files are read as fast as the consumer asks and stamped from the frame rate (start time + index / fps),
so a slow or fast detector never distorts the timing that speeds are computed from. Live streams
(rtsp://, http://, a device index) are stamped with the wall clock when the frame arrives; a grab
thread keeps only the newest frame, so a detector slower than the camera always sees the present
and the frames it could not take are counted as drops. A stream that fails is reopened with
exponential backoff.

`expand_uri` turns a camera uri or a weights path from a site file into a usable one; the
detector uses it too, so both follow the same rules.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import cv2
import numpy as np
import numpy.typing as npt

from rsu_contracts.config.model import CameraConfig
from rsu_contracts.config.paths import PathExpansionError, PathKind, is_url, resolve_site_path

log = logging.getLogger(__name__)

ImageArray = npt.NDArray[np.uint8]

LIVE_SCHEMES = frozenset({"rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt"})
# Network streams: give up on a silent connection after this long instead of FFmpeg's 30 s default.
STREAM_OPEN_TIMEOUT_MS = 5000
STREAM_READ_TIMEOUT_MS = 5000
INITIAL_BACKOFF_S = 0.5
# Retry at least every 4 s, so a camera that comes back is streaming again within 5 s.
DEFAULT_MAX_BACKOFF_S = 4.0

# A uri or path in the site file cannot be expanded (an unset variable without a default).
UriError = PathExpansionError


class VideoSourceError(RuntimeError):
    """The video cannot be opened or read; the message names the (credential-free) uri."""


def expand_uri(uri: str, config_dir: str | Path | None = None) -> str:
    """Expand `${VAR}` / `${VAR:-default}`, then anchor a relative file path at config_dir.

    URLs (anything with `scheme://`) and device indices ("0") are returned after variable expansion
    only. A relative path is taken relative to config_dir (the site file's folder), so a site file can
    say `${RSU_SHARED_DIR:-../../../shared}/footage/clip.mp4` and work from any working directory.
    This is the site file's path rule (rsu_contracts.config.paths), which the loader already applied to the
    camera uri; it is applied again here for values set in code.
    """
    return resolve_site_path(uri, config_dir, PathKind.CAMERA_URI)


def is_live_uri(uri: str) -> bool:
    """Network streams and device indices are live; everything else is a file."""
    if uri.isdigit():
        return True
    return is_url(uri) and uri.split("://", 1)[0].lower() in LIVE_SCHEMES


def redact_uri(uri: str) -> str:
    """The uri without a password, fit for logs and health messages."""
    if not is_url(uri):
        return uri
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def backoff_delays(initial_s: float, cap_s: float) -> Iterator[float]:
    """Waits between reconnection attempts: doubling from initial_s, never above cap_s."""
    delay = initial_s
    while True:
        yield min(delay, cap_s)
        delay = min(delay * 2, cap_s)


@dataclass(frozen=True)
class Frame:
    image: ImageArray  # BGR, as OpenCV decodes it
    capture_time_s: float  # Unix epoch seconds
    index: int  # frame number in the file, or frames captured since the stream was first opened


@dataclass(frozen=True)
class SourceState:
    uri: str  # credentials removed
    live: bool
    connected: bool
    frames_delivered: int
    # Live only: frames replaced by a newer one before the consumer took them.
    frames_dropped: int
    # Live only: times the stream was reopened after it failed.
    reconnects: int
    last_error: str | None


class Capture(Protocol):
    """The part of cv2.VideoCapture this module uses (tests substitute fakes)."""

    def isOpened(self) -> bool: ...
    def read(self) -> tuple[bool, Any]: ...
    def grab(self) -> bool: ...
    def get(self, prop_id: int, /) -> float: ...
    def release(self) -> None: ...


CaptureFactory = Callable[[str], Capture]


def open_capture(uri: str) -> Capture:
    """cv2.VideoCapture with bounded timeouts for network streams and a short buffer for devices."""
    if uri.isdigit():
        capture = cv2.VideoCapture(int(uri))
        # Fewer frames queued in the driver means less latency before the grab thread sees them.
        capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        return capture
    if is_url(uri):
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            STREAM_OPEN_TIMEOUT_MS,
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            STREAM_READ_TIMEOUT_MS,
        ]
        return cv2.VideoCapture(uri, cv2.CAP_FFMPEG, params)
    return cv2.VideoCapture(uri)


class VideoSource:
    """Frames of one camera; see the module docstring for how files and live streams differ.

    Iterate with `frames()` (live: None when no new frame arrived within the timeout) or plainly
    (`for frame in source`, frames only). Close it, or use it as a context manager.
    """

    def __init__(
        self,
        uri: str,
        frame_stride: int = 1,
        live: bool | None = None,
        *,
        start_time_s: float | None = None,
        fps: float | None = None,
        connect_timeout_s: float | None = 10.0,
        max_backoff_s: float = DEFAULT_MAX_BACKOFF_S,
        capture_factory: CaptureFactory = open_capture,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """
        uri: file path, stream URL or device index (already expanded, see `expand_uri`).
        frame_stride: deliver every n-th frame (files: of the file; live: of the frames captured).
        live: None decides from the uri (`is_live_uri`); True plays a file as if it were a stream.
        start_time_s: files: capture time of frame 0 (Unix seconds); default: the time of opening.
        fps: files: overrides the frame rate the container reports.
        connect_timeout_s: live: wait this long for the first frame, else raise; None: do not wait.
        """
        if frame_stride < 1:
            raise ValueError(f"frame_stride must be at least 1, got {frame_stride}")
        self.uri = uri
        self.display_uri = redact_uri(uri)
        self.frame_stride = frame_stride
        self.live = is_live_uri(uri) if live is None else live
        self._capture_factory = capture_factory
        self._clock = clock
        self._max_backoff_s = max_backoff_s
        self._lock = threading.Condition()
        self._closed = False
        self._ended = False
        self._delivered = 0
        self._dropped = 0
        self._reconnects = 0
        self._connected = False
        self._last_error: str | None = None
        self._capture: Capture | None = None
        self._next_file_index = 0
        self._fps: float | None = None
        self._file_fps = 1.0
        self._start_time_s = 0.0
        self._latest: Frame | None = None
        self._latest_taken = True
        self._grab_thread: threading.Thread | None = None
        self._stop = threading.Event()
        if self.live:
            self._start_live(connect_timeout_s)
        else:
            self._open_file(start_time_s, fps)

    @classmethod
    def from_camera(cls, camera: CameraConfig, config_dir: str | Path | None = None, **options: Any) -> VideoSource:
        """The source a site file's video camera describes; its uri is expanded against config_dir.

        options: the keyword options of the constructor (start_time_s, connect_timeout_s, ...).
        """
        if not camera.uri:
            raise VideoSourceError(f"camera {camera.id} has no uri")
        return cls(expand_uri(camera.uri, config_dir), frame_stride=camera.frame_stride, **options)

    # -- common -----------------------------------------------------------------------------------

    @property
    def fps(self) -> float | None:
        """The frame rate the source reports (files: the one used for timestamps)."""
        return self._fps

    @property
    def state(self) -> SourceState:
        with self._lock:
            return SourceState(
                uri=self.display_uri,
                live=self.live,
                connected=self._connected,
                frames_delivered=self._delivered,
                frames_dropped=self._dropped,
                reconnects=self._reconnects,
                last_error=self._last_error,
            )

    @property
    def ended(self) -> bool:
        """True after the end of a file or after close()."""
        return self._ended or self._closed

    def read(self, timeout_s: float = 1.0) -> Frame | None:
        """The next frame. None: end of file, closed, or (live) no new frame within timeout_s."""
        return self._read_live(timeout_s) if self.live else self._read_file()

    def frames(self, timeout_s: float = 1.0) -> Iterator[Frame | None]:
        """Frames until the end of the file or close(); live sources yield None after timeout_s without a frame."""
        while not self.ended:
            frame = self.read(timeout_s)
            if frame is None and self.ended:
                return
            yield frame

    def __iter__(self) -> Iterator[Frame]:
        for frame in self.frames():
            if frame is not None:
                yield frame

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._connected = False
            self._lock.notify_all()
        self._stop.set()
        if self._grab_thread is not None:
            # The grab thread releases its own capture; a read stuck in the driver ends with its read timeout.
            self._grab_thread.join(timeout=STREAM_READ_TIMEOUT_MS / 1000 + 1.0)
        elif self._capture is not None:
            self._capture.release()
            self._capture = None

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    # -- files ------------------------------------------------------------------------------------

    def _open_file(self, start_time_s: float | None, fps: float | None) -> None:
        if not Path(self.uri).exists():
            raise VideoSourceError(f"video file not found: {self.display_uri}")
        capture = self._capture_factory(self.uri)
        if not capture.isOpened():
            capture.release()
            raise VideoSourceError(f"cannot open video file {self.display_uri} (not a video OpenCV can decode?)")
        reported = capture.get(cv2.CAP_PROP_FPS)
        frame_rate = fps if fps is not None else reported
        if not math.isfinite(frame_rate) or frame_rate <= 0:
            capture.release()
            raise VideoSourceError(f"{self.display_uri}: the file reports no frame rate ({reported}); pass fps=")
        self._fps = frame_rate
        self._file_fps = frame_rate
        self._capture = capture
        self._connected = True
        self._start_time_s = self._clock() if start_time_s is None else start_time_s

    def _read_file(self) -> Frame | None:
        if self.ended or self._capture is None:
            return None
        ok, image = self._capture.read()
        if not ok or image is None:
            self._ended = True
            if self._next_file_index == 0:
                raise VideoSourceError(f"{self.display_uri}: opened, but no frame could be decoded")
            return None
        index = self._next_file_index
        self._next_file_index += 1
        # grab() skips without converting the frame to BGR, cheaper than read() for frames we drop.
        for _ in range(self.frame_stride - 1):
            if not self._capture.grab():
                break
            self._next_file_index += 1
        self._delivered += 1
        return Frame(image=image, capture_time_s=self._start_time_s + index / self._file_fps, index=index)

    # -- live streams -----------------------------------------------------------------------------

    def _start_live(self, connect_timeout_s: float | None) -> None:
        self._grab_thread = threading.Thread(target=self._grab_loop, name=f"grab {self.display_uri}", daemon=True)
        self._grab_thread.start()
        if connect_timeout_s is None:
            return
        with self._lock:
            connected = self._lock.wait_for(lambda: self._latest is not None or self._closed, connect_timeout_s)
        if not connected:
            error = self.state.last_error or "no frame arrived"
            self.close()
            raise VideoSourceError(
                f"cannot open video stream {self.display_uri}: {error} (waited {connect_timeout_s:g} s)"
            )

    def _read_live(self, timeout_s: float) -> Frame | None:
        with self._lock:
            fresh = self._lock.wait_for(lambda: not self._latest_taken or self._closed, timeout_s)
            if not fresh or self._closed or self._latest is None:
                return None
            self._latest_taken = True
            self._delivered += 1
            return self._latest

    def _grab_loop(self) -> None:
        backoff = backoff_delays(INITIAL_BACKOFF_S, self._max_backoff_s)
        captured = 0
        ever_connected = False
        capture: Capture | None = None
        try:
            while not self._stop.is_set():
                if capture is None:
                    capture = self._try_open_stream()
                    if capture is None:
                        self._stop.wait(next(backoff))
                        continue
                    with self._lock:
                        self._connected = True
                        if ever_connected:
                            self._reconnects += 1
                    if ever_connected:
                        log.info("video stream %s reconnected", self.display_uri)
                    ever_connected = True
                    backoff = backoff_delays(INITIAL_BACKOFF_S, self._max_backoff_s)
                    if self._fps is None:
                        reported = capture.get(cv2.CAP_PROP_FPS)
                        self._fps = reported if math.isfinite(reported) and reported > 0 else None
                ok, image = capture.read()
                now = self._clock()
                if not ok or image is None:
                    log.warning("video stream %s stopped delivering frames; reconnecting", self.display_uri)
                    with self._lock:
                        self._connected = False
                        self._last_error = "the stream stopped delivering frames"
                    capture.release()
                    capture = None
                    self._stop.wait(next(backoff))
                    continue
                index = captured
                captured += 1
                if index % self.frame_stride:
                    continue
                with self._lock:
                    if not self._latest_taken:
                        self._dropped += 1
                    self._latest = Frame(image=image, capture_time_s=now, index=index)
                    self._latest_taken = False
                    self._lock.notify_all()
        finally:
            if capture is not None:
                capture.release()
            with self._lock:
                self._connected = False

    def _try_open_stream(self) -> Capture | None:
        try:
            capture = self._capture_factory(self.uri)
        except Exception as exc:  # a broken driver or factory must not kill the grab thread
            self._note_error(f"opening failed: {exc}")
            return None
        if not capture.isOpened():
            capture.release()
            self._note_error("the stream cannot be opened (unreachable, wrong URL or credentials)")
            return None
        return capture

    def _note_error(self, message: str) -> None:
        with self._lock:
            self._connected = False
            self._last_error = message
