"""The site file: a valid one loads; anything wrong fails at start and names the field."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from rsu.samples import SAMPLE_SITE
from rsu_contracts.config import ConfigError, load_site_config, parse_site_config


def sample_raw() -> dict[str, Any]:
    return copy.deepcopy(yaml.safe_load(SAMPLE_SITE.read_text()))


def test_the_sample_intersection_is_a_valid_site() -> None:
    site = load_site_config(SAMPLE_SITE)
    assert site.unit_id == "rsu-demo-001"
    assert len(site.lanes) == 8
    assert site.is_simulated
    assert site.signal_group("2").nema_phase == 2


def test_an_unknown_key_is_rejected_with_its_full_path() -> None:
    raw = sample_raw()
    raw["approaches"][0]["lanes"][0]["colour"] = "red"
    with pytest.raises(ConfigError) as error:
        parse_site_config(raw)
    assert "approaches.0.lanes.0.colour" in str(error.value)
    assert "unknown key" in str(error.value)


def test_a_bad_value_names_the_field_and_the_bound() -> None:
    raw = sample_raw()
    raw["signal_groups"][1]["min_green_s"] = 1.0
    with pytest.raises(ConfigError) as error:
        parse_site_config(raw)
    assert "signal_groups.1.min_green_s" in str(error.value)
    assert "greater than or equal to 2" in str(error.value)


def test_max_green_below_min_green_is_rejected() -> None:
    raw = sample_raw()
    raw["signal_groups"][0]["max_green_s"] = 5.0
    raw["signal_groups"][0]["min_green_s"] = 9.0
    with pytest.raises(ConfigError, match=r"signal_groups\.0.*max_green_s \(5.0\) is below min_green_s"):
        parse_site_config(raw)


def test_a_lane_pointing_at_an_undefined_signal_group_is_rejected() -> None:
    raw = sample_raw()
    raw["approaches"][1]["lanes"][0]["signal_group"] = "99"
    with pytest.raises(ConfigError, match=r"approaches\[south\]\.lanes\[south_through_right\]\.signal_group '99'"):
        parse_site_config(raw)


def test_a_stage_that_greens_conflicting_groups_is_rejected() -> None:
    raw = sample_raw()
    raw["controller"]["stages"][0]["signal_groups"] = ["1", "2"]
    with pytest.raises(ConfigError, match=r"controller.stages\[ns_left\] makes conflicting groups '1' and '2'"):
        parse_site_config(raw)


def test_a_signal_group_no_stage_serves_is_rejected() -> None:
    raw = sample_raw()
    raw["controller"]["stages"][3]["signal_groups"] = ["4", "8"]
    with pytest.raises(ConfigError, match=r"never serve signal groups \['p_north', 'p_south'\]"):
        parse_site_config(raw)


def test_a_video_camera_needs_a_source_and_calibration() -> None:
    raw = sample_raw()
    raw["cameras"][0] = {"id": "cam", "source": "video"}
    with pytest.raises(ConfigError, match=r"cameras\.0.*needs uri"):
        parse_site_config(raw)


def test_duplicate_ids_are_rejected() -> None:
    raw = sample_raw()
    raw["approaches"][1]["lanes"][0]["id"] = "north_left"
    with pytest.raises(ConfigError, match="lanes: id 'north_left' is used twice"):
        parse_site_config(raw)


def test_a_missing_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nowhere\.yaml: site config file not found"):
        load_site_config(tmp_path / "nowhere.yaml")


def test_broken_yaml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("unit_id: [unclosed\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml:2:1: not valid YAML"):
        load_site_config(path)


def test_a_file_that_is_not_a_mapping_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="expected a mapping at the top level, got list"):
        load_site_config(path)


def test_a_broker_ca_file_is_optional_and_relative_to_the_site_file(tmp_path: Path) -> None:
    assert load_site_config(SAMPLE_SITE).mqtt.ca_file is None  # existing site files need no change
    raw = sample_raw()
    raw["mqtt"] = {**raw.get("mqtt", {}), "tls": True, "ca_file": "certs/broker-ca.pem"}
    raw["uplink"] = {
        **raw.get("uplink", {}),
        "mqtt": {"host": "centre.example", "tls": True, "ca_file": "/etc/ssl/ca.pem"},
    }
    site_path = tmp_path / "site" / "junction.yaml"
    site_path.parent.mkdir()
    site_path.write_text(yaml.safe_dump(raw))
    site = load_site_config(site_path)
    assert site.mqtt.ca_file == str(tmp_path / "site" / "certs" / "broker-ca.pem")
    assert site.uplink.mqtt is not None and site.uplink.mqtt.ca_file == "/etc/ssl/ca.pem"


def test_a_client_certificate_and_key_follow_the_site_path_rule(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RSU_TEST_CERTS", str(tmp_path / "pki"))
    raw = sample_raw()
    raw["mqtt"] = {**raw.get("mqtt", {}), "tls": True, "cert_file": "certs/unit.pem", "key_file": "certs/unit.key"}
    raw["uplink"] = {
        **raw.get("uplink", {}),
        "mqtt": {
            "host": "centre.example",
            "tls": True,
            "cert_file": "${RSU_TEST_CERTS}/unit.pem",
            "key_file": "${RSU_TEST_CERTS}/unit.key",
        },
    }
    site_path = tmp_path / "site" / "junction.yaml"
    site_path.parent.mkdir()
    site_path.write_text(yaml.safe_dump(raw))
    site = load_site_config(site_path)
    assert site.mqtt.cert_file == str(tmp_path / "site" / "certs" / "unit.pem")
    assert site.mqtt.key_file == str(tmp_path / "site" / "certs" / "unit.key")
    assert site.mqtt.check_hostname  # on unless switched off explicitly
    assert site.uplink.mqtt is not None and site.uplink.mqtt.key_file == str(tmp_path / "pki" / "unit.key")


@pytest.mark.parametrize(
    ("mqtt", "message"),
    [
        ({"tls": True, "cert_file": "unit.pem"}, r"mqtt\.key_file.*cert_file is set but key_file is not"),
        ({"tls": True, "key_file": "unit.key"}, r"mqtt\.cert_file.*key_file is set but cert_file is not"),
        ({"ca_file": "ca.pem"}, r"mqtt\.tls.*ca_file applies only to TLS connections: set tls: true"),
        ({"check_hostname": False}, r"mqtt\.tls.*check_hostname applies only to TLS connections"),
    ],
)
def test_tls_options_that_do_not_fit_together_are_named(tmp_path: Path, mqtt: dict[str, Any], message: str) -> None:
    raw = sample_raw()
    raw["mqtt"] = {**raw.get("mqtt", {}), **mqtt}
    site_path = tmp_path / "junction.yaml"
    site_path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=message):
        load_site_config(site_path)
