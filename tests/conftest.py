"""Shared fixtures: the sample site, the shared footage folder and the real services."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from rsu.samples import SAMPLE_SITE
from rsu_contracts.config import SiteConfig, load_site_config

REPO_ROOT = Path(__file__).resolve().parents[1]

# Property tests: a quick run by default, and long ones for soak checks of the controller's safety
# (`RSU_HYPOTHESIS_PROFILE=long pytest tests/signal_control/test_controller_properties.py`).
settings.register_profile("quick", max_examples=100, deadline=None, database=None)
settings.register_profile("soak", max_examples=2_000, deadline=None, database=None)
settings.register_profile(
    "long", max_examples=20_000, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
# Fuzzing (tests/fuzz): many examples, no deadline; run it with a time budget, e.g.
# `RSU_HYPOTHESIS_PROFILE=fuzz timeout 900 python -m pytest tests/fuzz`. In the default profile
# the fuzz tests run a handful of examples each.
settings.register_profile(
    "fuzz",
    max_examples=200_000,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
settings.load_profile(os.environ.get("RSU_HYPOTHESIS_PROFILE", "quick"))


def shared_dir() -> Path:
    """../shared beside the checkout, or RSU_SHARED_DIR."""
    return Path(os.environ.get("RSU_SHARED_DIR", REPO_ROOT.parent / "shared")).resolve()


@pytest.fixture(scope="session", autouse=True)
def unit_state_in_a_temporary_folder(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Units started by tests keep their generated signing keys here, not in the user's state folder
    (each test run uses fresh unit ids; the keys would pile up). Stage processes inherit it."""
    if "RSU_STATE_DIR" not in os.environ:
        os.environ["RSU_STATE_DIR"] = str(tmp_path_factory.mktemp("unit-state"))


@pytest.fixture(scope="session", autouse=True)
def open_bus_allowed_for_the_suite() -> None:
    """Most tests run the unit on the machine's shared, anonymous Mosquitto or on a throwaway one
    without logins: the development flag lets their preflight accept it (with a WARNING). The tests
    of the check itself (tests/faults/test_local_bus_acl.py, tests/runtime/test_open_bus_check.py)
    remove it. Stage processes inherit it."""
    os.environ.setdefault("RSU_ALLOW_OPEN_BUS", "1")


@pytest.fixture(scope="session")
def sample_site() -> SiteConfig:
    return load_site_config(SAMPLE_SITE)


@pytest.fixture(scope="session")
def footage_dir() -> Path:
    path = shared_dir() / "footage"
    if not path.is_dir():
        pytest.skip(f"real footage not found at {path} (set RSU_SHARED_DIR to the shared folder)")
    return path


@pytest.fixture(scope="session")
def models_dir() -> Path:
    path = shared_dir() / "models"
    if not (path / "yolo11n-coco-rebuilt.pt").is_file():
        pytest.skip(f"COCO weights not found in {path} (set RSU_SHARED_DIR to the shared folder)")
    return path


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def mqtt_broker() -> tuple[str, int]:
    """The real Mosquitto. Its absence is a failure, not a skip: .ci/run starts it."""
    host, port = "127.0.0.1", int(os.environ.get("RSU_TEST_MQTT_PORT", "1883"))
    if not _reachable(host, port):
        pytest.fail(f"Mosquitto is not reachable at {host}:{port}; run scripts/setup.sh to start it")
    return host, port


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = os.environ.get("RSU_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    if not _reachable("127.0.0.1", 6379):
        pytest.fail("Redis is not reachable at 127.0.0.1:6379; run scripts/setup.sh to start it")
    return url
