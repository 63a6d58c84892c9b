"""`rsu track --mot-out`: a real clip's tracks as MOTChallenge rows, the same the pipeline publishes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from rsu.detectors.factory import build_detector
from rsu.perception.pipeline import PerceptionPipeline
from rsu_cli import main
from rsu_contracts.config import load_site_config
from rsu_tools.track_export import MOT_CLASS_IDS

pytestmark = pytest.mark.footage

REPO_ROOT = Path(__file__).resolve().parents[2]
SITE_FILE = REPO_ROOT / "datasets" / "jamcam" / "site.yaml"
CAMERA = "jamcam_20190628"
FRAMES = 15


@pytest.fixture(scope="module")
def shared_env(footage_dir: Path, models_dir: Path) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RSU_SHARED_DIR", str(footage_dir.parent))
        yield


@pytest.fixture(scope="module")
def exported(shared_env: None, tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    out = tmp_path_factory.mktemp("track") / "tracks.txt"
    code = main(
        ["track", "--config", str(SITE_FILE), "--camera", CAMERA, "--mot-out", str(out), "--max-frames", str(FRAMES)]
    )
    assert code == 0
    rows: np.ndarray = np.loadtxt(out, delimiter=",", ndmin=2)
    return rows


@pytest.fixture(scope="module")
def published(shared_env: None) -> dict[int, dict[int, tuple[tuple[float, float, float, float], bool, str]]]:
    """Frame (1-based) -> track id -> (box, predicted, class) of the track list the pipeline publishes."""
    site = load_site_config(SITE_FILE)
    camera = next(c for c in site.cameras if c.id == CAMERA)
    detector = build_detector(camera, config_dir=SITE_FILE.parent)
    pipeline = PerceptionPipeline(site, camera.id)
    assert camera.uri is not None
    from rsu.sensors.video import expand_uri

    capture = cv2.VideoCapture(expand_uri(camera.uri, SITE_FILE.parent))
    fps = capture.get(cv2.CAP_PROP_FPS)
    frames: dict[int, dict[int, tuple[tuple[float, float, float, float], bool, str]]] = {}
    for index in range(FRAMES):
        ok, image = capture.read()
        assert ok
        output = pipeline.process(detector.detect(image, index / fps))
        frames[index + 1] = {
            o.track_id: ((o.image_box.x1_px, o.image_box.y1_px, o.image_box.x2_px, o.image_box.y2_px),
                         o.image_box.predicted, o.road_user.value)
            for o in output.tracks
            if o.image_box is not None
        }  # fmt: skip
    capture.release()
    return frames


def test_the_export_parses_as_mot_rows_in_the_clips_pixels(exported: np.ndarray) -> None:
    assert exported.shape[1] == 10
    frame, _, x, y, w, h = (exported[:, i] for i in range(6))
    assert len(exported) > FRAMES  # a busy street: several tracks per frame
    assert set(frame.astype(int)) <= set(range(1, FRAMES + 1))
    assert np.all(w > 0) and np.all(h > 0)
    # JamCam is 352x288: boxes lie (about) inside the picture.
    assert np.all(x > -20) and np.all(x + w < 352 + 20) and np.all(y > -20) and np.all(y + h < 288 + 20)
    assert set(exported[:, 7].astype(int)) <= set(MOT_CLASS_IDS.values())
    assert set(exported[:, 8].astype(int)) <= {0, 1} and set(exported[:, 9].astype(int)) <= {0, 1}


def test_the_export_is_what_the_pipeline_publishes_plus_first_hits(
    exported: np.ndarray, published: dict[int, dict[int, tuple[tuple[float, float, float, float], bool, str]]]
) -> None:
    class_names = {v: k.value for k, v in MOT_CLASS_IDS.items()}
    live = exported[exported[:, 9] == 0]
    by_frame: dict[int, dict[int, tuple[tuple[float, float, float, float], bool, str]]] = {f: {} for f in published}
    for row in live:
        f, track_id, x, y, w, h, conf, cls, predicted, _ = row
        by_frame[int(f)][int(track_id)] = ((x, y, x + w, y + h), bool(predicted), class_names[int(cls)])
        assert conf == -1.0 if predicted else 0.0 < conf <= 1.0
    for f, tracks in published.items():
        assert by_frame[f].keys() == tracks.keys(), f"frame {f}"
        for track_id, (box, predicted, road_user) in tracks.items():
            got_box, got_predicted, got_class = by_frame[f][track_id]
            assert got_box == pytest.approx(box, abs=0.01)
            assert (got_predicted, got_class) == (predicted, road_user)
    # First hits: earlier frames of tracks that are published later, never of a frame they were published in.
    early = exported[exported[:, 9] == 1]
    assert len(early)
    for f, track_id in early[:, :2].astype(int):
        first_published = min(g for g, tracks in published.items() if track_id in tracks)
        assert f < first_published


def test_a_missing_clip_is_an_error_naming_the_option(
    shared_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "track",
            "--config",
            str(SITE_FILE),
            "--clip",
            str(tmp_path / "nope.mp4"),
            "--mot-out",
            str(tmp_path / "o.txt"),
        ]
    )
    assert code == 2
    assert "--clip" in capsys.readouterr().err
