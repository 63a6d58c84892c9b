"""VideoSource on a clip made here: file timing from the frame rate, stride, end of file, errors,
and the live path (newest frame only, drops, reconnects) with fake captures."""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from rsu.sensors.video import Frame, VideoSource, VideoSourceError, backoff_delays
from rsu_contracts.config.model import CalibrationPoint, CameraConfig
from rsu_contracts.enums import CameraSource

FPS = 10.0
FRAMES = 20
SIZE = (64, 48)


def brightness_of(index: int) -> int:
    return 10 + index * 10


def index_of(frame: Frame) -> int:
    """The frame number painted into the clip, read back despite JPEG noise."""
    return round((float(frame.image.mean()) - 10) / 10)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("video") / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), FPS, SIZE)
    assert writer.isOpened()
    for index in range(FRAMES):
        writer.write(np.full((SIZE[1], SIZE[0], 3), brightness_of(index), dtype=np.uint8))
    writer.release()
    return path


def test_file_timestamps_come_from_the_frame_rate_not_the_wall_clock(clip: Path) -> None:
    with VideoSource(str(clip), start_time_s=1000.0) as source:
        assert source.fps == pytest.approx(FPS)
        frames = list(source)
    assert [f.index for f in frames] == list(range(FRAMES))
    assert [index_of(f) for f in frames] == list(range(FRAMES))
    np.testing.assert_allclose([f.capture_time_s for f in frames], [1000.0 + i / FPS for i in range(FRAMES)])


def test_the_start_time_defaults_to_the_time_of_opening(clip: Path) -> None:
    with VideoSource(str(clip), clock=lambda: 500.0) as source:
        first, second = source.read(), source.read()
    assert first is not None and second is not None
    assert (first.capture_time_s, second.capture_time_s) == (500.0, pytest.approx(500.0 + 1 / FPS))


def test_stride_delivers_every_nth_frame_with_its_own_time(clip: Path) -> None:
    with VideoSource(str(clip), frame_stride=3, start_time_s=0.0) as source:
        frames = list(source)
        assert source.state.frames_delivered == 7
    assert [f.index for f in frames] == [0, 3, 6, 9, 12, 15, 18]
    assert [index_of(f) for f in frames] == [0, 3, 6, 9, 12, 15, 18]
    assert [f.capture_time_s for f in frames] == pytest.approx([i / FPS for i in range(0, FRAMES, 3)])


def test_a_given_frame_rate_overrides_the_files(clip: Path) -> None:
    with VideoSource(str(clip), start_time_s=0.0, fps=20.0) as source:
        frames = list(source)
    assert frames[-1].capture_time_s == pytest.approx((FRAMES - 1) / 20.0)


def test_the_end_of_the_file_ends_iteration_and_reads_return_none(clip: Path) -> None:
    source = VideoSource(str(clip))
    assert len(list(source.frames())) == FRAMES
    assert source.ended
    assert source.read() is None
    assert list(source.frames()) == []
    source.close()


def test_a_missing_file_is_an_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope.mp4"
    with pytest.raises(VideoSourceError, match=r"not found: .*nope\.mp4"):
        VideoSource(str(missing))


def test_a_file_that_is_no_video_is_an_error_naming_it(tmp_path: Path) -> None:
    not_video = tmp_path / "notes.mp4"
    not_video.write_text("this is not a video\n" * 50)
    with pytest.raises(VideoSourceError, match=r"notes\.mp4"):
        source = VideoSource(str(not_video))
        list(source)  # some backends open anything and fail only at the first read


def test_from_camera_expands_the_uri_against_the_site_folder(clip: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RSU_TEST_CLIPS", raising=False)
    camera = CameraConfig(
        id="cam",
        source=CameraSource.VIDEO,
        uri="${RSU_TEST_CLIPS:-.}/" + clip.name,
        frame_stride=5,
        calibration=[CalibrationPoint(image_px=(x, y), ground_m=(x, y)) for x, y in [(0, 0), (1, 0), (1, 1), (0, 1)]],
    )
    with VideoSource.from_camera(camera, config_dir=clip.parent, start_time_s=0.0) as source:
        assert [f.index for f in source] == [0, 5, 10, 15]


# -- live -----------------------------------------------------------------------------------------


class FakeStream:
    """A camera: `frames` frames, one every `period_s`, then the stream breaks (read fails)."""

    def __init__(self, frames: int | None, period_s: float = 0.0, opened: bool = True) -> None:
        self.remaining = frames
        self.period_s = period_s
        self.opened = opened
        self.counter = itertools.count()
        self.released = threading.Event()

    def isOpened(self) -> bool:
        return self.opened

    def read(self) -> tuple[bool, Any]:
        if self.remaining is not None:
            if self.remaining <= 0:
                return False, None
            self.remaining -= 1
        time.sleep(self.period_s)
        return True, np.full((4, 4, 3), next(self.counter) % 256, dtype=np.uint8)

    def grab(self) -> bool:
        return self.read()[0]

    def get(self, prop_id: int, /) -> float:
        return 25.0

    def release(self) -> None:
        self.released.set()


def test_a_slow_consumer_gets_the_newest_frame_and_the_rest_count_as_drops() -> None:
    stream = FakeStream(frames=None, period_s=0.002)
    with VideoSource("rtsp://cam/live", capture_factory=lambda uri: stream) as source:
        assert source.live
        first = source.read(timeout_s=1.0)
        time.sleep(0.2)  # a detector busy for 200 ms while ~100 frames arrive
        second = source.read(timeout_s=1.0)
        state = source.state
    assert first is not None and second is not None
    assert second.index - first.index > 10
    assert state.frames_dropped >= second.index - first.index - 2
    assert state.frames_delivered == 2
    assert state.connected
    assert stream.released.wait(2.0)


def test_live_frames_carry_the_wall_clock_time_of_arrival() -> None:
    before = time.time()
    with VideoSource("rtsp://cam/live", capture_factory=lambda uri: FakeStream(None, 0.005)) as source:
        frame = source.read(timeout_s=1.0)
    assert frame is not None
    assert before <= frame.capture_time_s <= time.time()


def test_live_stride_skips_captured_frames() -> None:
    with VideoSource("rtsp://cam/live", frame_stride=4, capture_factory=lambda uri: FakeStream(None, 0.002)) as source:
        indices = [f.index for f in itertools.islice(source, 5)]
    assert all(index % 4 == 0 for index in indices)


def test_a_broken_stream_is_reopened_and_counted() -> None:
    opened: list[FakeStream] = []

    def factory(uri: str) -> FakeStream:
        opened.append(FakeStream(frames=3, period_s=0.001))
        return opened[-1]

    with VideoSource("rtsp://cam/live", capture_factory=factory) as source:
        deadline = time.monotonic() + 5.0
        while source.state.reconnects < 1 and time.monotonic() < deadline:
            source.read(timeout_s=0.1)
        state = source.state
    assert state.reconnects >= 1
    assert state.last_error is not None and "stopped delivering" in state.last_error
    assert len(opened) >= 2
    assert opened[0].released.is_set()


def test_frames_yields_none_while_a_live_stream_is_silent() -> None:
    with VideoSource("rtsp://cam/live", capture_factory=lambda uri: FakeStream(1), connect_timeout_s=2.0) as source:
        items = list(itertools.islice(source.frames(timeout_s=0.05), 3))
    assert items[0] is not None
    assert items[1:] == [None, None]


def test_a_stream_that_never_opens_is_an_error_naming_it_without_the_password() -> None:
    with pytest.raises(VideoSourceError) as error:
        VideoSource(
            "rtsp://admin:secret@10.0.0.5/live",
            capture_factory=lambda uri: FakeStream(0, opened=False),
            connect_timeout_s=0.3,
        )
    message = str(error.value)
    assert "rtsp://admin:***@10.0.0.5/live" in message
    assert "secret" not in message
    assert "cannot be opened" in message


def test_reconnection_waits_double_up_to_the_cap() -> None:
    assert list(itertools.islice(backoff_delays(0.5, 5.0), 7)) == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0]


def test_a_file_played_live_is_reopened_at_its_end(clip: Path) -> None:
    with VideoSource(str(clip), live=True) as source:
        assert source.live
        deadline = time.monotonic() + 5.0
        times: list[float] = []
        while source.state.reconnects < 1 and time.monotonic() < deadline:
            frame = source.read(timeout_s=0.1)
            if frame is not None:
                times.append(frame.capture_time_s)
        assert source.state.reconnects >= 1
    assert times == sorted(times)


def test_close_ends_a_live_iteration() -> None:
    source = VideoSource("rtsp://cam/live", capture_factory=lambda uri: FakeStream(None, 0.002))
    threading.Timer(0.1, source.close).start()
    started = time.monotonic()
    count = sum(1 for _ in source)
    assert count > 0
    assert time.monotonic() - started < 3.0
    assert source.ended
