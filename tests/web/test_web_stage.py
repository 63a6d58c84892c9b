"""The web stage as the unit runs it: its own process under the supervisor, beating its heartbeat."""

from __future__ import annotations

import json
import socket
import time
import urllib.request
from pathlib import Path

import pytest

from rsu.runtime.stage import RunOptions
from rsu.runtime.supervisor import StageSpec, Supervisor
from rsu.samples import SAMPLE_SITE
from rsu.web.app import create_app
from rsu.web.hub import LiveHub
from rsu.web.server import WebServer, WebServerError
from rsu_contracts.config import load_site_config
from tests.web.scripted_unit import site_copy

pytestmark = pytest.mark.services

WEB = StageSpec("web", "rsu.stages.web:run", heartbeat_timeout_s=10.0)


def get_json(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=2) as response:
        body: dict[str, object] = json.load(response)
        return body


def test_the_web_stage_serves_and_beats_under_the_supervisor(tmp_path: Path, mqtt_broker: tuple[str, int]) -> None:
    path = site_copy(SAMPLE_SITE, tmp_path)
    site = load_site_config(path)
    supervisor = Supervisor(path, RunOptions(), [WEB])
    supervisor.start()
    try:
        deadline = time.monotonic() + 30
        health: dict[str, object] = {}
        while time.monotonic() < deadline:
            supervisor.poll()
            try:
                health = get_json(f"http://127.0.0.1:{site.web.port}/healthz")
                if health["mqtt_connected"]:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        assert health.get("mqtt_connected") is True, f"web stage not serving: {health}"
        assert health["unit_id"] == site.unit_id
        time.sleep(1.0)
        supervisor.poll()
        stage = supervisor.health()[0]
        assert stage.alive and stage.heartbeat_age_s is not None and stage.heartbeat_age_s < 2.0
        assert supervisor.restarts("web") == 0
    finally:
        supervisor.stop()


def test_a_taken_port_is_reported_with_the_field_to_change() -> None:
    site = load_site_config(SAMPLE_SITE)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        server = WebServer(create_app(site, SAMPLE_SITE, LiveHub(site)), "127.0.0.1", port)
        with pytest.raises(WebServerError, match=rf"port {port} .* already in use.*web\.port"):
            server.start()
