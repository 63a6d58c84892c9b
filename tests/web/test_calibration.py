"""The calibration helper's API: a still frame, the homography fit, and a save that round-trips."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from fastapi.testclient import TestClient

from rsu.perception.homography import Homography
from rsu.samples import DATASETS_DIR, SAMPLE_SITE
from rsu.web.app import create_app
from rsu.web.calibration import MAX_BACKUPS, CalibrationSave, backups_of, save_calibration
from rsu.web.hub import LiveHub
from rsu_contracts.config import load_site_config
from rsu_contracts.config.model import CalibrationPoint
from tests.web.scripted_unit import write_clip

OTC_SITE = DATASETS_DIR / "opentrafficcam" / "site.yaml"


@pytest.fixture
def otc_copy(tmp_path: Path) -> Path:
    """The real-footage site with its camera pointed at a small clip made here (the original text kept)."""
    clip = write_clip(tmp_path / "clip.avi")
    text = OTC_SITE.read_text()
    original_uri = yaml.safe_load(text)["cameras"][0]["uri"]
    path = tmp_path / "site.yaml"
    path.write_text(text.replace(original_uri, str(clip)))
    return path


def client_for(site_path: Path) -> TestClient:
    site = load_site_config(site_path)
    return TestClient(create_app(site, site_path, LiveHub(site)))


def shifted_points(site_path: Path, dx: float) -> list[dict[str, list[float]]]:
    camera = load_site_config(site_path).cameras[0]
    return [{"image_px": [p.image_px[0] + dx, p.image_px[1]], "ground_m": list(p.ground_m)} for p in camera.calibration]


def test_calibration_info_frame_and_fit(otc_copy: Path) -> None:
    client = client_for(otc_copy)
    info = client.get("/api/calibration").json()
    camera = info["cameras"][0]
    assert camera["id"] == "otc_pole" and len(camera["points"]) == 5
    assert camera["fit"]["reprojection_error_m"] == pytest.approx(0.135, abs=0.005)
    frame = client.get("/api/calibration/frame.jpg", params={"camera": "otc_pole"})
    assert frame.status_code == 200 and frame.headers["content-type"] == "image/jpeg"
    assert (frame.headers["x-frame-width"], frame.headers["x-frame-height"]) == ("320", "240")
    decoded = cv2.imdecode(np.frombuffer(frame.content, np.uint8), cv2.IMREAD_COLOR)
    assert decoded is not None and decoded.shape == (240, 320, 3)

    fit = client.post("/api/calibration/fit", json={"points": camera["points"]}).json()
    assert len(fit["point_errors_m"]) == 5 and fit["mirrored"] is False
    too_few = client.post("/api/calibration/fit", json={"points": camera["points"][:3]})
    assert too_few.status_code == 422 and "at least 4" in too_few.json()["detail"]
    on_a_line = [{"image_px": [i * 10.0, i * 10.0], "ground_m": [float(i), float(i % 2)]} for i in range(4)]
    collinear = client.post("/api/calibration/fit", json={"points": on_a_line})
    assert collinear.status_code == 422 and "line" in collinear.json()["detail"]


def test_a_bad_camera_uri_is_reported_with_the_field_to_fix(otc_copy: Path) -> None:
    otc_copy.write_text(otc_copy.read_text().replace(str(otc_copy.parent / "clip.avi"), "/nonexistent/clip.mp4"))
    response = client_for(otc_copy).get("/api/calibration/frame.jpg", params={"camera": "otc_pole"})
    assert response.status_code == 503
    assert "cameras[].uri" in response.json()["detail"] and "not found" in response.json()["detail"]


def test_save_round_trips_the_homography_and_geometry_through_the_site_file(otc_copy: Path) -> None:
    original = otc_copy.read_text()
    client = client_for(otc_copy)
    points = shifted_points(otc_copy, dx=2.0)
    fit = client.post("/api/calibration/fit", json={"points": points}).json()
    edit = {
        "camera_id": "otc_pole",
        "points": points,
        "geometry": {
            "lanes": [{"id": "west_in", "centerline_m": [[-60.0, -0.8], [-30.0, -0.8], [-15.5, -0.8]]}],
            "counting_lines": [{"id": "kerb_test", "line_m": [[0.0, 0.0], [5.0, 1.0]], "approach": "west"}],
            "crosswalks": [{"id": "cw_test", "polygon_m": [[0, 0], [10, 0], [10, 3], [0, 3]]}],
        },
    }
    response = client.post("/api/calibration/save", json=edit)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["reprojection_error_m"] == pytest.approx(fit["reprojection_error_m"])

    saved = load_site_config(otc_copy)
    camera = saved.cameras[0]
    assert [list(p.image_px) for p in camera.calibration] == [p["image_px"] for p in points]
    homography = Homography.from_points(camera.calibration)
    assert np.allclose(homography.image_to_ground_matrix, np.array(fit["image_to_ground"]))
    assert homography.reprojection_error_m() == pytest.approx(fit["reprojection_error_m"])
    assert saved.lanes[0].centerline_m[-1] == (-15.5, -0.8)
    assert any(line.id == "kerb_test" for line in saved.counting_lines)
    assert saved.crosswalks[0].id == "cw_test" and saved.crosswalks[0].length_m == 10.0

    text = otc_copy.read_text()
    assert "# OTC's reference points" in text, "the operator's comments were lost"
    assert Path(body["backup"]).read_text() == original
    assert any(line["id"] == "kerb_test" for line in client.get("/api/site").json()["counting_lines"])


def test_an_invalid_edit_is_refused_with_the_field_and_nothing_is_written(otc_copy: Path) -> None:
    original = otc_copy.read_text()
    client = client_for(otc_copy)
    points = shifted_points(otc_copy, dx=0.0)
    new_lane = {
        "id": "x",
        "approach": "west",
        "signal_group": "9",
        "movements": ["left"],
        "centerline_m": [[0, 0], [1, 0]],
    }
    response = client.post(
        "/api/calibration/save", json={"camera_id": "otc_pole", "points": points, "geometry": {"lanes": [new_lane]}}
    )
    assert response.status_code == 422
    assert "signal_group '9' is not a defined signal group" in response.json()["detail"]
    collinear = [{"image_px": [i * 10.0, i * 10.0], "ground_m": [float(i), 0.0]} for i in range(4)]
    response = client.post("/api/calibration/save", json={"camera_id": "otc_pole", "points": collinear})
    assert response.status_code == 422 and "calibration" in response.json()["detail"]
    assert otc_copy.read_text() == original
    assert backups_of(otc_copy) == []


def test_a_save_from_another_origin_is_refused(otc_copy: Path) -> None:
    client = client_for(otc_copy)
    edit = {"camera_id": "otc_pole", "points": shifted_points(otc_copy, 0.0)}
    response = client.post("/api/calibration/save", json=edit, headers={"Origin": "http://evil.example"})
    assert response.status_code == 403
    assert backups_of(otc_copy) == []


def test_a_simulated_camera_has_no_frame_and_cannot_be_calibrated(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(SAMPLE_SITE.read_text())
    client = client_for(path)
    assert client.get("/api/calibration/frame.jpg", params={"camera": "cam_pole_ne"}).status_code == 404
    points = [{"image_px": [x, y], "ground_m": [x / 10, y / 10]} for x, y in ((0, 0), (100, 0), (100, 100), (0, 100))]
    response = client.post("/api/calibration/save", json={"camera_id": "cam_pole_ne", "points": points})
    assert response.status_code == 422 and "no image" in response.json()["detail"]


def test_backups_are_bounded(otc_copy: Path) -> None:
    camera = load_site_config(otc_copy).cameras[0]
    edit = CalibrationSave(
        camera_id=camera.id, points=[CalibrationPoint.model_validate(p.model_dump()) for p in camera.calibration]
    )
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(MAX_BACKUPS + 3):
        save_calibration(otc_copy, edit, now=start + timedelta(seconds=i))
    backups = backups_of(otc_copy)
    assert len(backups) == MAX_BACKUPS
    assert backups[-1].name.endswith("20260101T000022000000Z")
