"""expand_uri: ${VAR} / ${VAR:-default}, paths relative to the site file, URLs and devices untouched."""

from __future__ import annotations

from pathlib import Path

import pytest

from rsu.sensors.video import UriError, expand_uri, is_live_uri, redact_uri


def test_a_set_variable_is_substituted(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RSU_TEST_SHARED", str(tmp_path))
    assert expand_uri("${RSU_TEST_SHARED}/footage/a.mp4") == str(tmp_path / "footage" / "a.mp4")


def test_the_default_is_used_when_the_variable_is_unset_or_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RSU_TEST_SHARED", raising=False)
    assert expand_uri("${RSU_TEST_SHARED:-/data/shared}/a.mp4") == "/data/shared/a.mp4"
    monkeypatch.setenv("RSU_TEST_SHARED", "")
    assert expand_uri("${RSU_TEST_SHARED:-/data/shared}/a.mp4") == "/data/shared/a.mp4"


def test_a_set_variable_wins_over_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RSU_TEST_SHARED", "/mnt/shared")
    assert expand_uri("${RSU_TEST_SHARED:-/data/shared}/a.mp4") == "/mnt/shared/a.mp4"


def test_an_unset_variable_without_default_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RSU_TEST_MISSING", raising=False)
    with pytest.raises(UriError, match="RSU_TEST_MISSING is not set"):
        expand_uri("${RSU_TEST_MISSING}/a.mp4")


def test_a_relative_path_is_taken_from_the_site_files_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("RSU_TEST_SHARED", raising=False)
    site_dir = tmp_path / "repo" / "datasets" / "site"
    expanded = expand_uri("${RSU_TEST_SHARED:-../../../shared}/footage/a.mp4", site_dir)
    assert expanded == str(tmp_path / "shared" / "footage" / "a.mp4")
    assert expand_uri("clips/a.mp4", site_dir) == str(site_dir / "clips" / "a.mp4")


def test_absolute_paths_urls_and_device_indices_ignore_the_site_folder(tmp_path: Path) -> None:
    assert expand_uri("/var/video/a.mp4", tmp_path) == "/var/video/a.mp4"
    assert expand_uri("rtsp://10.0.0.5:554/stream1", tmp_path) == "rtsp://10.0.0.5:554/stream1"
    assert expand_uri("0", tmp_path) == "0"


def test_variables_expand_inside_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RSU_TEST_CAMERA_HOST", "10.0.0.7")
    assert expand_uri("rtsp://${RSU_TEST_CAMERA_HOST}/live") == "rtsp://10.0.0.7/live"


def test_home_is_expanded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert expand_uri("~/a.mp4", "/elsewhere") == str(tmp_path / "a.mp4")


def test_an_empty_uri_is_an_error() -> None:
    with pytest.raises(UriError, match="empty"):
        expand_uri("  ")


@pytest.mark.parametrize(
    ("uri", "live"),
    [
        ("rtsp://cam/stream", True),
        ("RTSP://cam/stream", True),
        ("http://cam/mjpeg", True),
        ("0", True),
        ("/var/video/a.mp4", False),
        ("clips/a.mp4", False),
        ("file://x.mp4", False),
    ],
)
def test_live_uris_are_streams_and_devices(uri: str, live: bool) -> None:
    assert is_live_uri(uri) is live


def test_passwords_never_reach_the_logs() -> None:
    assert redact_uri("rtsp://admin:secret@10.0.0.5:554/s") == "rtsp://admin:***@10.0.0.5:554/s"
    assert redact_uri("rtsp://10.0.0.5/s") == "rtsp://10.0.0.5/s"
    assert redact_uri("/var/video/a.mp4") == "/var/video/a.mp4"
