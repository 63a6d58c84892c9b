"""One path rule for every path field of a site file, applied at load (rsu_contracts.config.paths)."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from rsu.samples import SAMPLE_SITE
from rsu_contracts.config import ConfigError, SiteConfig, load_site_config
from rsu_contracts.config.load import resolve_relative

VIDEO_CALIBRATION = [{"image_px": [x, y], "ground_m": [x, y]} for x, y in [(0, 0), (10, 0), (10, 10), (0, 10)]]


def sample_raw() -> dict[str, Any]:
    return copy.deepcopy(yaml.safe_load(SAMPLE_SITE.read_text()))


def write_site(folder: Path, raw: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "site.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def every_path_field(raw: dict[str, Any], value: str) -> dict[str, Any]:
    """The sample with `value` in every path field the model has."""
    raw["v2x"]["signing_key"] = value
    raw["v2x"]["state_dir"] = value
    raw["simulation"]["network"] = value
    raw["simulation"]["routes"] = value
    raw["priority"]["requesters"] = [{"id": "bus-1", "public_key": value, "kinds": ["transit"]}]
    raw["cameras"].append(
        {
            "id": "cam_video",
            "source": "video",
            "uri": value,
            "calibration": VIDEO_CALIBRATION,
            "detector": {
                "type": "onnx",
                "weights": value,
                "detail_regions": [{"box_px": [0, 0, 8, 4], "weights": value}],
            },
        }
    )
    return raw


def path_values(site: SiteConfig) -> dict[str, str | None]:
    camera = site.cameras[-1]
    return {
        "v2x.signing_key": site.v2x.signing_key,
        "v2x.state_dir": site.v2x.state_dir,
        "simulation.network": site.simulation.network,
        "simulation.routes": site.simulation.routes,
        "priority.requesters.0.public_key": site.priority.requesters[0].public_key,
        "cameras.1.uri": camera.uri,
        "cameras.1.detector.weights": camera.detector.weights,
        "cameras.1.detector.detail_regions.0.weights": camera.detector.detail_regions[0].weights,
    }


def test_relative_paths_are_taken_from_the_site_files_folder(tmp_path: Path) -> None:
    site_dir = tmp_path / "sites" / "north"
    site = load_site_config(write_site(site_dir, every_path_field(sample_raw(), "keys/../files/a.pem")))
    expected = str(site_dir / "files" / "a.pem")
    assert path_values(site) == dict.fromkeys(path_values(site), expected)


def test_a_variable_is_expanded_in_every_path_field(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RSU_TEST_SITE_FILES", str(tmp_path / "shared"))
    site = load_site_config(write_site(tmp_path / "site", every_path_field(sample_raw(), "${RSU_TEST_SITE_FILES}/a")))
    assert set(path_values(site).values()) == {str(tmp_path / "shared" / "a")}


def test_a_default_applies_when_the_variable_is_unset_and_is_relative_to_the_site_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOPE", raising=False)
    raw = every_path_field(sample_raw(), "${NOPE:-/etc/rsu}/k.pem")
    site = load_site_config(write_site(tmp_path / "a" / "site", raw))
    assert set(path_values(site).values()) == {"/etc/rsu/k.pem"}
    raw = every_path_field(sample_raw(), "${NOPE:-../shared}/k.pem")
    site = load_site_config(write_site(tmp_path / "a" / "site", raw))
    assert set(path_values(site).values()) == {str(tmp_path / "a" / "shared" / "k.pem")}


def test_a_default_also_applies_when_the_variable_is_empty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RSU_TEST_EMPTY", "")
    raw = sample_raw()
    raw["v2x"]["signing_key"] = "${RSU_TEST_EMPTY:-/keys}/unit.pem"
    assert load_site_config(write_site(tmp_path, raw)).v2x.signing_key == "/keys/unit.pem"


@pytest.mark.parametrize(
    ("field", "set_value"),
    [
        ("v2x.signing_key", lambda raw, value: raw["v2x"].update(signing_key=value)),
        ("v2x.state_dir", lambda raw, value: raw["v2x"].update(state_dir=value)),
        ("simulation.routes", lambda raw, value: raw["simulation"].update(routes=value)),
        (
            "priority.requesters.0.public_key",
            lambda raw, value: raw["priority"].update(
                requesters=[{"id": "bus-1", "public_key": value, "kinds": ["transit"]}]
            ),
        ),
    ],
)
def test_an_unset_variable_without_a_default_is_an_error_naming_the_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, field: str, set_value: Any
) -> None:
    monkeypatch.delenv("RSU_TEST_UNSET", raising=False)
    raw = sample_raw()
    set_value(raw, "${RSU_TEST_UNSET}/file")
    with pytest.raises(ConfigError) as error:
        load_site_config(write_site(tmp_path, raw))
    message = str(error.value)
    assert f"  {field}: " in message
    assert "environment variable RSU_TEST_UNSET is not set and has no default" in message


def test_an_unset_variable_in_a_camera_uri_names_the_camera(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RSU_TEST_UNSET", raising=False)
    raw = sample_raw()
    raw["cameras"][0] = {
        "id": "cam",
        "source": "video",
        "uri": "${RSU_TEST_UNSET}/a.mp4",
        "calibration": VIDEO_CALIBRATION,
    }
    with pytest.raises(ConfigError, match=r"cameras\.0\.uri: .*RSU_TEST_UNSET is not set"):
        load_site_config(write_site(tmp_path, raw))


@pytest.mark.parametrize("uri", ["rtsp://10.0.0.5:554/stream1", "http://camera.local/mjpeg", "0", "2"])
def test_camera_uris_that_are_not_files_keep_working(tmp_path: Path, uri: str) -> None:
    raw = sample_raw()
    raw["cameras"][0] = {"id": "cam", "source": "video", "uri": uri, "calibration": VIDEO_CALIBRATION}
    assert load_site_config(write_site(tmp_path, raw)).cameras[0].uri == uri


def test_variables_expand_inside_a_stream_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RSU_TEST_CAMERA_HOST", "10.0.0.7")
    raw = sample_raw()
    raw["cameras"][0] = {
        "id": "cam",
        "source": "video",
        "uri": "rtsp://${RSU_TEST_CAMERA_HOST}/live",
        "calibration": VIDEO_CALIBRATION,
    }
    assert load_site_config(write_site(tmp_path, raw)).cameras[0].uri == "rtsp://10.0.0.7/live"


def test_a_bare_weights_name_stays_a_name_for_ultralytics_to_find(tmp_path: Path) -> None:
    raw = sample_raw()
    raw["cameras"][0]["detector"] = {"weights": "yolo11s.pt"}
    site = load_site_config(write_site(tmp_path, raw))
    assert site.cameras[0].detector.weights == "yolo11s.pt"
    raw["cameras"][0]["detector"] = {"weights": "./yolo11s.pt"}
    assert load_site_config(write_site(tmp_path, raw)).cameras[0].detector.weights == str(tmp_path / "yolo11s.pt")


def test_the_default_simulation_files_are_taken_from_the_site_folder_too(tmp_path: Path) -> None:
    raw = sample_raw()
    del raw["simulation"]
    site = load_site_config(write_site(tmp_path, raw))
    assert site.simulation.network == str(tmp_path / "sumo" / "intersection.net.xml")
    assert site.simulation.routes == str(tmp_path / "sumo" / "demand.rou.xml")


def test_the_sample_loads_from_any_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    site = load_site_config(os.path.relpath(SAMPLE_SITE, tmp_path))
    assert Path(site.simulation.network) == SAMPLE_SITE.parent / "sumo" / "intersection.net.xml"
    assert Path(site.simulation.network).is_file()


def test_a_model_built_in_code_keeps_its_paths_and_resolve_relative_applies_the_same_rule(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOPE", raising=False)
    site = SiteConfig.model_validate(every_path_field(sample_raw(), "${NOPE:-keys}/k.pem"))
    assert site.v2x.signing_key == "${NOPE:-keys}/k.pem"
    assert resolve_relative(tmp_path / "site.yaml", site.v2x.signing_key) == tmp_path.resolve() / "keys" / "k.pem"
