"""A real network camera stream (MJPEG over HTTP, read by OpenCV's FFmpeg backend) that drops and
comes back: the source reports the drop, reconnects on its own and delivers new frames within
5 s of the camera's return, without the consumer doing anything."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np
import pytest

from rsu.sensors.video import VideoSource

FRAME_PERIOD_S = 0.04  # a 25 fps camera


class MjpegCamera:
    """An HTTP MJPEG camera on a fixed loopback port that can be switched off and on again.
    Each frame's pixel value encodes the camera's 'session' so the test knows which frames are new."""

    def __init__(self) -> None:
        self.session = 0
        self.port = 0
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        camera = self
        session = self.session = self.session + 1

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                image = np.full((240, 320, 3), 40 * session, np.uint8)
                jpeg = cv2.imencode(".jpg", image)[1].tobytes()
                part = b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpeg) + jpeg + b"\r\n"
                try:
                    while camera._server is server:
                        self.wfile.write(part)
                        time.sleep(FRAME_PERIOD_S)
                except OSError:
                    pass  # the reader went away

            def log_message(self, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        server, self._server = self._server, None  # handlers see this and end their streams
        if server is not None:
            server.shutdown()
            server.server_close()

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}/stream.mjpg"


@pytest.fixture
def camera() -> Iterator[MjpegCamera]:
    camera = MjpegCamera()
    camera.start()
    yield camera
    camera.stop()


def session_of(image: np.ndarray) -> int:
    return round(float(image.mean()) / 40)


def wait_for(condition: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_a_camera_that_drops_is_reported_and_reconnected_within_five_seconds_of_its_return(
    camera: MjpegCamera,
) -> None:
    with VideoSource(camera.uri, connect_timeout_s=10.0) as source:
        first = source.read(timeout_s=5.0)
        assert first is not None and session_of(first.image) == 1
        assert source.state.connected

        camera.stop()
        assert wait_for(lambda: not source.state.connected, 10.0), "the drop was not noticed"
        assert source.state.last_error
        # Long enough an outage for the reconnection backoff to reach its cap.
        time.sleep(6.0)

        camera.start()
        back_s = time.monotonic()
        frame = source.read(timeout_s=8.0)
        while frame is not None and session_of(frame.image) != 2:
            frame = source.read(timeout_s=8.0)
        reconnected_after_s = time.monotonic() - back_s
        assert frame is not None, "no frame after the camera came back"
        assert reconnected_after_s < 5.0, f"reconnected {reconnected_after_s:.1f} s after the camera's return"
        state = source.state
        assert state.connected and state.reconnects == 1
        assert frame.capture_time_s > first.capture_time_s + 6.0  # stamped on arrival, not replayed
