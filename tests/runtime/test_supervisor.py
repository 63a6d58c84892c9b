"""The supervisor restarts a stage that crashes or hangs, and leaves a finished one alone."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from rsu.runtime.stage import RunOptions
from rsu.runtime.supervisor import StageSpec, Supervisor
from rsu.samples import SAMPLE_SITE
from rsu.unit import Unit
from rsu_contracts.messages import UnitHealth, UnitStatus, decode

TARGETS = "tests.runtime.stages_for_tests"


def _run_until(supervisor: Supervisor, condition, timeout_s: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        supervisor.poll()
        if condition():
            return True
        time.sleep(0.1)
    return False


@pytest.fixture
def stage_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "starts.log"
    path.touch()
    monkeypatch.setenv("RSU_TEST_STAGE_LOG", str(path))
    return path


def test_a_crashed_stage_is_restarted(stage_log: Path) -> None:
    supervisor = Supervisor(SAMPLE_SITE, RunOptions(), [StageSpec("crasher", f"{TARGETS}:crash_once")])
    supervisor.start()
    try:
        restarted = _run_until(supervisor, lambda: stage_log.read_text().count("crasher") >= 2, 20)
        assert restarted, "the crashed stage was not started again"
        assert supervisor.restarts("crasher") == 1
        health = supervisor.health()[0]
        assert "exited with code 1" in health.detail
        assert _run_until(supervisor, lambda: supervisor.health()[0].alive, 5)
    finally:
        supervisor.stop()


def test_a_stage_whose_heartbeat_stops_is_killed_and_restarted(stage_log: Path) -> None:
    spec = StageSpec("hanger", f"{TARGETS}:hang_once", heartbeat_timeout_s=1.0, startup_grace_s=10.0)
    supervisor = Supervisor(SAMPLE_SITE, RunOptions(), [spec])
    supervisor.start()
    try:
        restarted = _run_until(supervisor, lambda: stage_log.read_text().count("hanger") >= 2, 20)
        assert restarted, "the hung stage was not restarted"
        assert "no heartbeat" in supervisor.health()[0].detail
    finally:
        supervisor.stop()


def test_a_stage_that_runs_to_completion_is_not_restarted(stage_log: Path) -> None:
    spec = StageSpec("finisher", f"{TARGETS}:finish", runs_to_completion=True)
    supervisor = Supervisor(SAMPLE_SITE, RunOptions(), [spec])
    supervisor.start()
    try:
        assert _run_until(supervisor, lambda: supervisor.is_completed("finisher"), 20)
        time.sleep(0.5)
        supervisor.poll()
        assert stage_log.read_text().count("finisher") == 1
        assert supervisor.restarts("finisher") == 0
    finally:
        supervisor.stop()


def test_a_stages_input_refusals_reach_the_supervisor_and_the_health_message(stage_log: Path) -> None:
    spec = StageSpec("guarded", f"{TARGETS}:refuse_forged_input")
    supervisor = Supervisor(SAMPLE_SITE, RunOptions(), [spec])
    supervisor.start()
    try:
        assert _run_until(supervisor, lambda: bool(supervisor.rejections()), 30), "no report from the stage"
        [rejection] = supervisor.rejections()
        assert (rejection.stage, rejection.reason, rejection.count) == ("guarded", "future", 1)
        assert rejection.topic.endswith("/perception/tracks")
        [problem] = supervisor.input_problems()
        assert "future" in problem and "ahead of the stage's clock" in problem
        unit = Unit(SAMPLE_SITE, RunOptions())
        unit.supervisor = supervisor
        health = decode(UnitHealth, unit.health().to_json())
        assert health.rejections == [rejection]
        assert problem in health.problems and health.status is UnitStatus.DEGRADED
    finally:
        supervisor.stop()


def test_a_stage_that_keeps_crashing_is_named_with_its_exception(stage_log: Path) -> None:
    spec = StageSpec("crasher", f"{TARGETS}:crash_always")
    supervisor = Supervisor(SAMPLE_SITE, RunOptions(), [spec])
    supervisor.start()
    try:
        assert _run_until(supervisor, lambda: supervisor.restarts("crasher") >= 2, 30)
        detail = supervisor.health()[0].detail
        assert "exited with code 1" in detail
        assert "RuntimeError: simulated fault in crasher: the device went away" in detail
        trouble = supervisor.troubled_stages()["crasher"]
        assert trouble.startswith("restarted ") and "the device went away" in trouble
        assert "Traceback" not in trouble
    finally:
        supervisor.stop()


def test_a_stage_that_logs_an_error_and_exits_is_named_with_that_line(stage_log: Path) -> None:
    spec = StageSpec("giver-up", f"{TARGETS}:log_error_and_exit")
    supervisor = Supervisor(SAMPLE_SITE, RunOptions(), [spec, StageSpec("steady", f"{TARGETS}:crash_once")])
    supervisor.start()
    try:
        assert _run_until(supervisor, lambda: supervisor.restarts("giver-up") >= 2, 30)
        assert supervisor.last_error("giver-up") == "cannot open the camera at rtsp://10.0.0.9/stream"
        health = {stage.name: stage for stage in supervisor.health()}
        assert "exited with code 3: cannot open the camera" in health["giver-up"].detail
        assert "giver-up" in supervisor.troubled_stages()
    finally:
        supervisor.stop()
