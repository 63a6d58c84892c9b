"""`rsu broker-config`: the unit's broker secured from the topic registry, per-stage logins."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import yaml

from rsu.runtime.broker_config import (
    BrokerConfigError,
    CredentialsError,
    Listeners,
    local_acl,
    role_writes,
    stage_login,
    vehicle_acl,
    write_broker_config,
)
from rsu.runtime.preflight import probe_open_bus
from rsu.runtime.stage import with_stage_login
from rsu_cli import main as rsu_main
from rsu_contracts.bus_roles import PUBLISHER, BusRole, login_name
from rsu_contracts.config import ConfigError, SiteConfig, load_site_config, parse_site_config
from rsu_contracts.topics import REGISTRY, Topics
from rsu_tools.testing.mosquitto import EphemeralMosquitto
from tests.conftest import REPO_ROOT

LISTENERS = Listeners("127.0.0.1", 1883, "0.0.0.0", 8883)


def acl_blocks(text: str) -> dict[str, list[str]]:
    """user -> its lines ('topic read X', 'topic write Y'), from a Mosquitto ACL file."""
    blocks: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("user "):
            current = blocks.setdefault(line.removeprefix("user "), [])
        elif line.startswith("topic ") or line.startswith("pattern "):
            assert current is not None, f"{line!r} outside a user block applies to anonymous clients"
            current.append(line)
    return blocks


def writes(lines: list[str]) -> set[str]:
    return {line.removeprefix("topic write ") for line in lines if line.startswith("topic write ")}


def test_every_registered_topic_is_written_by_exactly_the_role_the_registry_names(sample_site: SiteConfig) -> None:
    topics = Topics.for_site(sample_site)
    blocks = acl_blocks(local_acl(sample_site))
    assert set(blocks) == {login_name(sample_site.unit_id, role) for role in BusRole}
    for spec in REGISTRY:
        writers = {user for user, lines in blocks.items() if topics.topic(spec) in writes(lines)}
        publisher = PUBLISHER[spec.name]
        expected = set() if publisher is None else {login_name(sample_site.unit_id, publisher)}
        assert writers == expected, spec.name
    assert writes(blocks[login_name(sample_site.unit_id, BusRole.MONITOR)]) == set()
    assert writes(blocks[login_name(sample_site.unit_id, BusRole.WEB)]) == set()
    # No wildcard write: a stage writes its concrete topics only.
    assert not any("#" in topic or "+" in topic for lines in blocks.values() for topic in writes(lines))


def test_vehicles_read_what_the_unit_broadcasts_and_write_only_priority_requests(sample_site: SiteConfig) -> None:
    topics = Topics.for_site(sample_site)
    blocks = acl_blocks(vehicle_acl(sample_site, ["car-1", "ambulance-7"]))
    assert set(blocks) == {"car-1", "ambulance-7"}
    lines = blocks["car-1"]
    assert writes(lines) == {topics.priority_request}
    reads = {line.removeprefix("topic read ") for line in lines if line.startswith("topic read ")}
    assert {topics.spat, topics.map, topics.warnings, topics.objects, topics.status, topics.priority_status} <= reads
    assert not reads & {topics.signal_state, topics.tracks, topics.detectors, topics.health}
    assert not any("#" in topic for topic in reads)


def test_the_china_layout_gives_the_v2x_stage_and_vehicles_its_topics(tmp_path: Path) -> None:
    raw = yaml.safe_load((REPO_ROOT / "datasets" / "sample_intersection" / "site.yaml").read_text())
    raw.setdefault("v2x", {})["topic_layout"] = "china"
    site = parse_site_config(raw)
    spat = f"V2X/RSU/{site.unit_id}/SPAT/UP"
    assert spat in role_writes(site, BusRole.V2X)
    assert f"topic read {spat}" in acl_blocks(vehicle_acl(site, ["car-1"]))["car-1"]


def test_the_broker_files_are_written_with_private_passwords_kept_on_rerun(
    sample_site: SiteConfig, tmp_path: Path
) -> None:
    out = tmp_path / "broker"
    files = write_broker_config(sample_site, out, LISTENERS, ["car-1"])
    assert stat.S_IMODE(files.credentials.stat().st_mode) == 0o700
    passwords = {}
    for login in (*files.unit_logins, *files.vehicle_logins):
        path = files.credentials / f"{login}.password"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        passwords[login] = path.read_text().strip()
        assert len(passwords[login]) >= 24
    assert len(set(passwords.values())) == len(passwords), "every login has its own password"
    hashed = (out / "local.passwd").read_text()
    assert stat.S_IMODE((out / "local.passwd").stat().st_mode) == 0o600
    assert all(password not in hashed for password in passwords.values()), "the broker's file holds hashes only"
    assert {line.split(":")[0] for line in hashed.splitlines()} == set(files.unit_logins)
    conf = files.conf.read_text()
    assert conf.index("per_listener_settings true") < conf.index("listener 1883 127.0.0.1")
    vehicle_part = conf[conf.index("listener 8883") :]
    assert "use_username_as_clientid true" in vehicle_part and "allow_anonymous false" in vehicle_part
    assert "allow_anonymous true" not in conf

    again = write_broker_config(sample_site, out, LISTENERS, ["car-1"])
    assert {login: (again.credentials / f"{login}.password").read_text().strip() for login in passwords} == passwords
    rotated = write_broker_config(sample_site, out, LISTENERS, ["car-1"], rotate=True)
    assert all(
        (rotated.credentials / f"{login}.password").read_text().strip() != old for login, old in passwords.items()
    )


@pytest.mark.parametrize("name", ["rsu-demo-001-supervisor", "rsu-demo-001", "car 1", "car/1", "#"])
def test_a_vehicle_login_cannot_take_a_name_of_the_unit_or_break_the_files(
    sample_site: SiteConfig, tmp_path: Path, name: str
) -> None:
    with pytest.raises(BrokerConfigError, match="--vehicle"):
        write_broker_config(sample_site, tmp_path, LISTENERS, [name])


def test_each_stage_logs_in_as_itself(sample_site: SiteConfig, tmp_path: Path) -> None:
    files = write_broker_config(sample_site, tmp_path / "broker", LISTENERS)
    site = sample_site.model_copy(
        update={"mqtt": sample_site.mqtt.model_copy(update={"credentials_dir": str(files.credentials)})}
    )
    v2x = stage_login(site, BusRole.V2X)
    assert v2x.username == "rsu-demo-001-v2x"
    assert v2x.password == (files.credentials / "rsu-demo-001-v2x.password").read_text().strip()
    assert with_stage_login(site, "controller").mqtt.username == "rsu-demo-001-controller"
    # Without credentials_dir every stage uses mqtt as written.
    assert stage_login(sample_site, BusRole.V2X) == sample_site.mqtt
    (files.credentials / "rsu-demo-001-uplink.password").unlink()
    with pytest.raises(CredentialsError, match=r"rsu-demo-001-uplink\.password.*mqtt\.credentials_dir"):
        stage_login(site, BusRole.UPLINK)


def test_credentials_dir_and_a_shared_login_exclude_each_other(tmp_path: Path) -> None:
    raw = yaml.safe_load((REPO_ROOT / "datasets" / "sample_intersection" / "site.yaml").read_text())
    raw["mqtt"] = {"credentials_dir": "broker/credentials", "username": "rsu-demo-001"}
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"mqtt\.credentials_dir"):
        load_site_config(path)


def test_the_command_writes_the_files_and_names_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    site = REPO_ROOT / "datasets" / "sample_intersection" / "site.yaml"
    out = tmp_path / "broker"
    assert rsu_main(["broker-config", "--site", str(site), "--out", str(out), "--vehicle", "car-1"]) == 0
    printed = capsys.readouterr().out
    assert f"mosquitto -c {out / 'mosquitto.conf'}" in printed and "car-1" in printed
    assert {p.name for p in out.iterdir()} == {
        "mosquitto.conf", "local.acl", "local.passwd", "vehicles.acl", "vehicles.passwd", "credentials",
    }  # fmt: skip
    assert rsu_main(["broker-config", "--site", str(site), "--out", str(out), "--vehicle", "rsu-demo-001-v2x"]) == 2
    assert "unit's own logins" in capsys.readouterr().err


@pytest.mark.services
def test_a_broker_that_lets_anonymous_clients_read_but_not_write_is_not_an_open_bus(
    sample_site: SiteConfig, tmp_path: Path
) -> None:
    acl = tmp_path / "read-only.acl"
    acl.write_text("topic read #\n")  # before any user block: anonymous clients
    with EphemeralMosquitto(f"acl_file {acl}", name="read-only") as broker:
        site = sample_site.model_copy(
            update={"mqtt": sample_site.mqtt.model_copy(update={"host": broker.host, "port": broker.port})}
        )
        verdict = probe_open_bus(site)
    assert verdict.anonymous_connects and not verdict.open
    assert verdict.probe_topic.startswith(Topics.for_site(site).signal_state + "/")
