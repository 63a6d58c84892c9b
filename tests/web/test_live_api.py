"""The live API and WebSocket, fed by real MQTT messages through the real Mosquitto.

A scripted unit publishes on a fresh unit id; the web stage's own MQTT feed reads them into the
app, which FastAPI's TestClient then queries the way the page does.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient

from rsu.metrics import parse_exposition
from rsu.samples import DATASETS_DIR, SAMPLE_SITE
from rsu.web.app import create_app
from rsu.web.feed import MqttFeed, OutboxWatch
from rsu.web.hub import LiveHub
from rsu_contracts.config import load_site_config
from tests.web.scripted_unit import ScriptedUnit, site_copy

pytestmark = pytest.mark.services


def wait_for(condition, timeout_s: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture
def live(
    tmp_path: Path, mqtt_broker: tuple[str, int], redis_url: str
) -> Iterator[tuple[TestClient, LiveHub, ScriptedUnit]]:
    path = site_copy(DATASETS_DIR / "opentrafficcam" / "site.yaml", tmp_path)
    site = load_site_config(path)
    hub = LiveHub(site)
    feed = MqttFeed(site, hub, f"{site.unit_id}-web")
    feed.start()
    outbox = OutboxWatch(site, hub, period_s=0.5)
    outbox.start()
    wait_for(lambda: hub.link.mqtt_connected)
    unit = ScriptedUnit(path, rate_hz=20.0, with_preview=True).start()
    try:
        with TestClient(create_app(site, path, hub)) as client:
            yield client, hub, unit
    finally:
        unit.stop()
        outbox.stop()
        feed.stop()


def test_state_metrics_and_preview_follow_the_unit(live: tuple[TestClient, LiveHub, ScriptedUnit]) -> None:
    client, hub, unit = live
    wait_for(lambda: hub.frame() is not None and hub.state.health is not None and hub.state.warning_feed)
    state = client.get("/api/state").json()
    assert state["unit_id"] == unit.site.unit_id
    assert len(state["tracks"]["objects"]) == 5
    assert {g["id"] for g in state["signals"]["groups"]} == {"2", "4"}
    assert state["warnings"]["feed"][0]["kind"] == "vulnerable_road_user"
    assert state["link"]["mqtt_connected"] is True
    assert state["health"]["redis_connected"] is True
    wait_for(lambda: hub.link.outbox_backlog is not None)
    assert client.get("/api/state").json()["link"]["outbox_backlog"] == 0

    preview = client.get("/api/camera.jpg")
    assert preview.status_code == 200 and preview.headers["content-type"] == "image/jpeg"
    assert cv2.imdecode(np.frombuffer(preview.content, np.uint8), cv2.IMREAD_COLOR) is not None

    metrics = client.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = parse_exposition(metrics.text)
    assert samples['rsu_frames_total{camera="otc_pole"}'] > 0
    assert samples["rsu_mqtt_connected"] == 1
    assert samples['rsu_stage_restarts_total{stage="perception"}'] == 1
    assert samples["rsu_uplink_outbox_reachable"] == 1
    assert client.get("/healthz").json()["mqtt_connected"] is True


def test_the_websocket_pushes_changing_snapshots_and_preview_frames(
    live: tuple[TestClient, LiveHub, ScriptedUnit],
) -> None:
    client, hub, _ = live
    wait_for(lambda: hub.frame() is not None)
    track_seqs: set[int] = set()
    signal_seqs: set[int] = set()
    frames = 0
    started = time.monotonic()
    with client.websocket_connect("/ws") as socket:
        while time.monotonic() - started < 2.0 and (len(track_seqs) < 3 or len(signal_seqs) < 3 or frames < 2):
            message = socket.receive()
            if message.get("text") is not None:
                snapshot = json.loads(message["text"])
                if snapshot["tracks"]:
                    track_seqs.add(snapshot["tracks"]["seq"])
                if snapshot["signals"]:
                    signal_seqs.add(snapshot["signals"]["seq"])
            elif message.get("bytes") is not None:
                assert message["bytes"][:2] == b"\xff\xd8"  # a JPEG
                frames += 1
    assert len(track_seqs) >= 3, "tracks did not update within 2 s"
    assert len(signal_seqs) >= 3, "signal states did not update within 2 s"
    assert frames >= 2, "preview frames did not arrive within 2 s"


def test_the_page_and_its_assets_are_served(tmp_path: Path) -> None:
    site = load_site_config(SAMPLE_SITE)
    client = TestClient(create_app(site, SAMPLE_SITE, LiveHub(site)))
    page = client.get("/")
    assert page.status_code == 200 and "/static/live.js" in page.text
    assert "/static/calibrate.js" in client.get("/calibrate").text
    for asset in ("common.js", "live.js", "calibrate.js", "style.css"):
        assert client.get(f"/static/{asset}").status_code == 200
    assert client.get("/api/camera.jpg").status_code == 404
    layout = client.get("/api/site").json()
    assert layout["unit_id"] == site.unit_id and layout["simulated"] is True
    state = client.get("/api/state").json()
    assert state["tracks"] is None and state["link"]["mqtt_connected"] is False
