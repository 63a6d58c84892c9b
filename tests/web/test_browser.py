"""The live page and the calibration helper in a real browser (Debian's Chromium, headless).

Each live test starts the unit's stages as the supervisor runs them (web stage included) on a
fresh unit id, opens the page and checks that within 2 s of opening it shows live data that keeps
changing: tracks (and camera frames, for a video site), signal states and warnings. Screenshots
are kept in out/test-artifacts/web/ as evidence.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from rsu.runtime.stage import RunOptions
from rsu.runtime.supervisor import StageSpec, Supervisor
from rsu.samples import DATASETS_DIR, SAMPLE_SITE
from rsu.web.app import create_app
from rsu.web.hub import LiveHub
from rsu.web.server import WebServer
from rsu_contracts.config import load_site_config
from tests.conftest import REPO_ROOT
from tests.web.scripted_unit import ScriptedUnit, site_copy, write_clip

CHROMIUM = os.environ.get("RSU_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = REPO_ROOT / "out" / "test-artifacts" / "web"
LIVE_WITHIN_S = 2.0

WORLD = StageSpec("world", "rsu.stages.world:run", heartbeat_timeout_s=30.0, runs_to_completion=True)
PERCEPTION = StageSpec("perception", "rsu.stages.perception:run", heartbeat_timeout_s=15.0, startup_grace_s=120.0)
CONTROLLER = StageSpec("controller", "rsu.stages.controller:run", heartbeat_timeout_s=5.0)
V2X = StageSpec("v2x", "rsu.stages.v2x:run", heartbeat_timeout_s=5.0)
WEB = StageSpec("web", "rsu.stages.web:run", heartbeat_timeout_s=10.0)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not (shutil.which(CHROMIUM) or Path(CHROMIUM).is_file()):
        pytest.skip(f"Chromium not found at {CHROMIUM}: install Debian's chromium package (apt-get install chromium)")
    playwright_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1500, "height": 1000})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.errors = errors
    yield page
    context.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"


def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def wait_until(
    condition: Callable[[], bool], timeout_s: float, what: str, poll: Callable[[], None] = lambda: None
) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout_s:.0f} s waiting for {what}"
        poll()
        time.sleep(0.2)


def state_of(url: str) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(f"{url}/api/state", timeout=2) as response:
            body: dict[str, Any] = json.load(response)
            return body
    except OSError:
        return {}


def observe_live_page(page: Any, url: str, expect_camera: bool, expect_warnings: bool) -> dict[str, Any]:
    """Open the page; within LIVE_WITHIN_S it must show data and the data must change."""
    opened = time.monotonic()
    page.goto(url)
    selectors = {
        "tracks": "() => document.getElementById('map').dataset.seq",
        "signals": "() => document.getElementById('signals').dataset.seq",
        "countdowns": "() => [...document.querySelectorAll('#signals .countdown')].map(n => n.textContent).join()",
        "frames": "() => document.getElementById('camera').dataset.frames",
        "warnings": "() => document.querySelectorAll('#warnings li').length",
    }
    seen: dict[str, set[Any]] = {key: set() for key in selectors}
    while time.monotonic() - opened < LIVE_WITHIN_S:
        for key, script in selectors.items():
            seen[key].add(page.evaluate(script))
        time.sleep(0.1)
    elapsed = time.monotonic() - opened
    assert page.locator("#link-status").inner_text() == "live"
    tracks = seen["tracks"] - {"-1"}
    assert len(tracks) >= 2, f"tracks did not update within {elapsed:.1f} s of opening: {tracks}"
    signals = seen["signals"] - {"-1"}
    assert len(signals) >= 2, f"signal states did not update within {elapsed:.1f} s: {signals}"
    assert len(seen["countdowns"] - {""}) >= 2, "the SPaT countdowns did not move"
    assert page.locator("#signals tbody tr").count() > 0
    if expect_camera:
        frames = {int(f) for f in seen["frames"]}
        assert max(frames) >= 2 and len(frames) >= 2, f"camera frames did not update within {elapsed:.1f} s: {frames}"
    if expect_warnings:
        assert max(seen["warnings"]) > 0, f"no warning shown within {elapsed:.1f} s"
    return seen


@pytest.mark.services
def test_live_page_updates_from_the_web_stage_process(tmp_path: Path, page: Any, mqtt_broker: tuple[str, int]) -> None:
    """The web stage in its own process, fed by a scripted unit through the real broker."""
    path = site_copy(SAMPLE_SITE, tmp_path)
    site = load_site_config(path)
    url = f"http://127.0.0.1:{site.web.port}"
    supervisor = Supervisor(path, RunOptions(), [WEB])
    supervisor.start()
    unit = ScriptedUnit(path, rate_hz=10.0).start()
    try:
        wait_until(lambda: bool(state_of(url).get("tracks")), 30, "the web stage", supervisor.poll)
        observe_live_page(page, url, expect_camera=False, expect_warnings=True)
        assert page.locator("#stages tbody tr").count() == 5
        assert page.locator("#h-broker").inner_text().startswith("connected")
        shot = screenshot(page, "live-scripted")
    finally:
        unit.stop()
        supervisor.stop()
    assert shot.stat().st_size > 10_000


@pytest.mark.services
@pytest.mark.sumo
def test_live_page_on_the_simulated_junction(tmp_path: Path, page: Any, mqtt_broker: tuple[str, int]) -> None:
    """`rsu demo`'s stages on the SUMO junction, plus the web stage: the bird's-eye view goes live."""
    path = site_copy(SAMPLE_SITE, tmp_path)
    site = load_site_config(path)
    url = f"http://127.0.0.1:{site.web.port}"
    # Fast lock-step simulation: more happens per second on the page (countdowns use simulated time).
    options = RunOptions(realtime=False, duration_s=3600.0, sim_epoch_s=float(int(time.time())))
    supervisor = Supervisor(path, options, [WORLD, PERCEPTION, CONTROLLER, V2X, WEB])
    supervisor.start()
    try:
        wait_until(
            lambda: bool((state_of(url).get("tracks") or {}).get("objects")) and bool(state_of(url).get("signals")),
            60,
            "tracks and signal states from the simulated unit",
            supervisor.poll,
        )
        seen = observe_live_page(page, url, expect_camera=False, expect_warnings=False)
        wait_until(
            lambda: page.locator("#warnings li").count() > 0, 30, "a warning from the V2X stage", supervisor.poll
        )
        assert page.locator("#world-meta").inner_text().startswith("simulation")
        shot = screenshot(page, "live-sumo-demo")
    finally:
        supervisor.stop()
    assert seen["tracks"] and shot.is_file()


@pytest.mark.services
@pytest.mark.footage
def test_live_page_on_a_footage_clip(tmp_path: Path, page: Any, models_dir: Path, footage_dir: Path) -> None:
    """Perception with YOLO on the OpenTrafficCam clip: the annotated camera view goes live."""
    os.environ.setdefault("RSU_SHARED_DIR", str(footage_dir.parent))
    path = site_copy(DATASETS_DIR / "opentrafficcam" / "site.yaml", tmp_path)
    site = load_site_config(path)
    url = f"http://127.0.0.1:{site.web.port}"
    supervisor = Supervisor(path, RunOptions(), [PERCEPTION, CONTROLLER, V2X, WEB])
    supervisor.start()
    unit_warnings = ScriptedUnit(path)  # the clip has no conflicts: a scripted warning shows the feed works
    unit_warnings.bus.connect()
    try:
        wait_until(lambda: bool(state_of(url).get("camera")), 90, "the first camera preview", supervisor.poll)
        for round_ in (0, 5):
            unit_warnings.rounds = round_
            now = time.time()
            warning = unit_warnings.warning(0.0, now, now)
            assert warning is not None
            unit_warnings.bus.publish(unit_warnings.topics.warnings_sent, warning.to_json(), qos=1)
        observe_live_page(page, url, expect_camera=True, expect_warnings=True)
        assert page.locator("#camera-panel").is_visible()
        shot = screenshot(page, "live-footage")
    finally:
        unit_warnings.bus.close()
        supervisor.stop()
    assert shot.is_file()


def test_calibration_round_trip_in_the_browser(tmp_path: Path, page: Any) -> None:
    """Click four image points, type their ground coordinates, save: the site file holds the new homography."""
    clip = write_clip(tmp_path / "clip.avi", width=640, height=480)
    original = (DATASETS_DIR / "opentrafficcam" / "site.yaml").read_text()
    site_path = tmp_path / "site.yaml"
    uri = next(line.split("uri:", 1)[1].strip() for line in original.splitlines() if "uri:" in line)
    site_path.write_text(original.replace(uri, str(clip)))
    site = load_site_config(site_path)
    server = WebServer(create_app(site, site_path, LiveHub(site)), "127.0.0.1", 0)
    server.start()
    try:
        page.goto(f"{server.url}/calibrate")
        page.wait_for_selector("body[data-frame-loaded=true]", timeout=10_000)
        page.select_option("#zoom", "1")
        while page.locator("#points tbody tr").count():
            page.locator("#points tbody tr button").first.click()
        # A 40 x 30 m rectangle seen in perspective.
        clicks = {(100, 400): (0.0, 0.0), (540, 400): (40.0, 0.0), (420, 150): (40.0, 30.0), (220, 150): (0.0, 30.0)}
        for (x, y), (gx, gy) in clicks.items():
            page.locator("#overlay").click(position={"x": x, "y": y})
            page.locator("#points input.gx").last.fill(str(gx))
            page.locator("#points input.gy").last.fill(str(gy))
        page.wait_for_selector("#fit-error[data-points='4']")
        page.check("input[value=line]")
        page.fill("#line-id", "browser_line")
        page.locator("#overlay").click(position={"x": 200, "y": 350})
        page.locator("#overlay").click(position={"x": 440, "y": 350})
        page.click("#save")
        page.wait_for_function("document.getElementById('save-result').textContent.startsWith('Saved')")
        screenshot(page, "calibration")
    finally:
        server.stop()
    saved = load_site_config(site_path)
    camera = saved.cameras[0]
    assert [tuple(p.image_px) for p in camera.calibration] == [tuple(map(float, xy)) for xy in clicks]
    assert [tuple(p.ground_m) for p in camera.calibration] == list(clicks.values())
    line = next(line for line in saved.counting_lines if line.id == "browser_line")
    (x0, y0), (x1, y1) = line.line_m
    assert 0 < x0 < x1 < 40 and 0 < y0 < 30 and abs(y1 - y0) < 0.5, line.line_m
    assert len(list(tmp_path.glob("site.yaml.bak-*"))) == 1
