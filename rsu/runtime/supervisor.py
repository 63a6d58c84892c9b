"""The supervisor: starts every stage as its own process and restarts one that dies or hangs.

A stage proves it is alive by its heartbeat (a shared monotonic timestamp it writes every loop).
A stage whose process exits, or whose heartbeat is older than its timeout, is killed and started
again after a backoff. Stages that run to completion (the simulated world) are not restarted
when they exit cleanly.
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing as mp
import os
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.context import SpawnProcess
from multiprocessing.queues import Queue
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event
from pathlib import Path

from rsu.runtime.input_guard import GuardReport
from rsu.runtime.stage import RunOptions, StageContext
from rsu_contracts.messages import InputRejection, StageHealth

log = logging.getLogger(__name__)
_ctx = mp.get_context("spawn")
# Reports come once a second; a supervisor that lags a few seconds loses nothing but old counts.
REPORT_QUEUE_SIZE = 16


@dataclass(frozen=True)
class StageSpec:
    name: str
    # "module:function" taking a StageContext; importable so spawned processes can find it.
    target: str
    heartbeat_timeout_s: float = 10.0
    # Time a fresh process gets to import and connect before its heartbeat is checked.
    startup_grace_s: float = 30.0
    runs_to_completion: bool = False


@dataclass
class _StageRun:
    spec: StageSpec
    heartbeat: Synchronized[float]
    process: SpawnProcess | None = None
    started_monotonic_s: float = 0.0
    restarts: int = 0
    next_start_monotonic_s: float = 0.0
    completed: bool = False
    last_problem: str = ""
    backoff_s: float = 1.0
    # The running process's input guard reports (one queue per process: a killed writer cannot
    # leave a lock held for the next one), and the newest report read from it.
    reports: Queue[GuardReport] | None = None
    guard_report: GuardReport | None = None


def _stage_entry(
    spec: StageSpec,
    site_path: str,
    options: RunOptions,
    heartbeat: Synchronized[float],
    stop: Event,
    reports: Queue[GuardReport] | None = None,
) -> None:
    level = os.environ.get("RSU_LOG_LEVEL", "WARNING")
    logging.basicConfig(level=level, format=f"%(asctime)s {spec.name} %(levelname)s %(message)s")
    module_name, function_name = spec.target.split(":")
    function: Callable[[StageContext], None] = getattr(importlib.import_module(module_name), function_name)
    function(StageContext(spec.name, Path(site_path), options, heartbeat, stop, reports))


class Supervisor:
    def __init__(self, site_path: Path, options: RunOptions, specs: list[StageSpec]) -> None:
        self.site_path = site_path
        self.options = options
        self._stop = _ctx.Event()
        self._runs = {spec.name: _StageRun(spec, _ctx.Value("d", 0.0)) for spec in specs}

    def start(self) -> None:
        for run in self._runs.values():
            self._start(run)

    def _start(self, run: _StageRun) -> None:
        run.heartbeat.value = 0.0
        run.reports = _ctx.Queue(maxsize=REPORT_QUEUE_SIZE)
        run.guard_report = None
        process = _ctx.Process(
            target=_stage_entry,
            args=(run.spec, str(self.site_path), self.options, run.heartbeat, self._stop, run.reports),
            name=f"rsu-{run.spec.name}",
            daemon=True,
        )
        process.start()
        run.process = process
        run.started_monotonic_s = time.monotonic()

    def poll(self) -> None:
        """Check every stage once; restart the dead and the hung. Call this at 1-5 Hz."""
        now = time.monotonic()
        for run in self._runs.values():
            self._read_reports(run)
            if run.completed:
                continue
            process = run.process
            if process is None:
                if now >= run.next_start_monotonic_s:
                    self._start(run)
                continue
            problem = self._problem(run, now)
            if problem is None:
                # A stage that has stayed up for a minute earns back a short backoff.
                if now - run.started_monotonic_s > 60:
                    run.backoff_s = 1.0
                continue
            if problem == "completed":
                run.completed = True
                continue
            log.warning("stage %s: %s; restarting in %.0f s", run.spec.name, problem, run.backoff_s)
            run.last_problem = problem
            if process.is_alive():
                process.kill()
            process.join(timeout=5)
            run.process = None
            run.restarts += 1
            run.next_start_monotonic_s = now + run.backoff_s
            run.backoff_s = min(run.backoff_s * 2, 30.0)

    def _problem(self, run: _StageRun, now: float) -> str | None:
        process = run.process
        assert process is not None
        if not process.is_alive():
            if process.exitcode == 0 and run.spec.runs_to_completion:
                return "completed"
            return f"process exited with code {process.exitcode}"
        beat = run.heartbeat.value
        if now - run.started_monotonic_s < run.spec.startup_grace_s and beat == 0.0:
            return None
        reference = beat if beat > 0 else run.started_monotonic_s
        if now - reference > run.spec.heartbeat_timeout_s:
            return f"no heartbeat for {now - reference:.1f} s"
        return None

    @staticmethod
    def _read_reports(run: _StageRun) -> None:
        if run.reports is None:
            return
        while True:
            try:
                run.guard_report = run.reports.get_nowait()
            except (queue.Empty, OSError, EOFError, ValueError):
                return

    def rejections(self) -> list[InputRejection]:
        """Inputs each stage's guard refused, per topic and reason, since the stage (re)started."""
        return [
            InputRejection(stage=run.spec.name, topic=entry.topic, reason=entry.reason, count=entry.count)
            for run in self._runs.values()
            if run.guard_report is not None
            for entry in run.guard_report.rejections
        ]

    def input_problems(self) -> list[str]:
        """What each stage's guard refused lately (a forged signal state, a stale input), in words."""
        return [
            run.guard_report.problem
            for run in self._runs.values()
            if run.guard_report is not None and run.guard_report.problem is not None
        ]

    def is_completed(self, name: str) -> bool:
        return self._runs[name].completed

    def pid(self, name: str) -> int | None:
        process = self._runs[name].process
        return None if process is None else process.pid

    def restarts(self, name: str) -> int:
        return self._runs[name].restarts

    def health(self) -> list[StageHealth]:
        now = time.monotonic()
        stages = []
        for run in self._runs.values():
            alive = run.completed or (run.process is not None and run.process.is_alive())
            beat = run.heartbeat.value
            stages.append(
                StageHealth(
                    name=run.spec.name,
                    alive=alive,
                    restarts=run.restarts,
                    heartbeat_age_s=None if beat == 0.0 else max(0.0, now - beat),
                    detail="completed" if run.completed else run.last_problem,
                )
            )
        return stages

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        deadline = time.monotonic() + timeout_s
        for run in self._runs.values():
            if run.process is not None:
                run.process.join(timeout=max(0.1, deadline - time.monotonic()))
        for run in self._runs.values():
            if run.process is not None and run.process.is_alive():
                run.process.kill()
                run.process.join(timeout=2)
