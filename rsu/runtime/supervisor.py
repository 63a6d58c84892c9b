"""The supervisor: starts every stage as its own process and restarts one that dies or hangs.

A stage proves it is alive by its heartbeat (a shared monotonic timestamp it writes every loop).
A stage whose process exits, or whose heartbeat is older than its timeout, is killed and started
again after a backoff. Stages that run to completion (the simulated world) are not restarted
when they exit cleanly.

Stopping: every stage has its own stop event, and stop() sets them one at a time in the order of
the specs (source first: world, perception, controller, V2X, uplink, web), waiting for each
process to leave its loop and run its exit code (the controller's last output, V2X's ENDED
warnings, the uplink's last forward) before the next is told. Stage processes ignore SIGINT, so a
Ctrl-C at the terminal (sent to the whole process group) reaches only the supervisor; a SIGTERM
sent to a stage itself (systemd's default KillMode signals the whole cgroup) sets that stage's
stop event, so it ends quietly as well.
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing as mp
import os
import queue
import signal
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.context import SpawnProcess
from multiprocessing.queues import Queue
from multiprocessing.sharedctypes import Synchronized, SynchronizedString
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import cast

from rsu.runtime.input_guard import GuardReport
from rsu.runtime.stage import RunOptions, StageContext, StageReport
from rsu_contracts.messages import CabinetReport, InputRejection, StageHealth

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
    reports: Queue[StageReport] | None = None
    guard_report: GuardReport | None = None
    # The newest report of the signal cabinet the stage drives (the controller with site.cabinet).
    cabinet_report: CabinetReport | None = None
    stop: Event | None = None


# Longest last-error text kept per stage (one line of an exception, not a whole traceback).
LAST_ERROR_MAX_CHARS = 300


def _last_error_line(exc: BaseException) -> str:
    text = "".join(traceback.format_exception_only(type(exc), exc)).strip().replace("\n", " ")
    return text[:LAST_ERROR_MAX_CHARS]


class _LastErrorHandler(logging.Handler):
    """Keeps the text of the newest ERROR (or worse) record the stage logged, for the supervisor."""

    def __init__(self, last_error: SynchronizedString) -> None:
        super().__init__(level=logging.ERROR)
        self._last_error = last_error

    def emit(self, record: logging.LogRecord) -> None:
        _store_last_error(self._last_error, record.getMessage())


def _store_last_error(last_error: SynchronizedString, text: str) -> None:
    encoded = text.replace("\n", " ").encode("utf-8", "replace")[: LAST_ERROR_MAX_CHARS - 1]
    last_error.value = encoded


def _stage_entry(
    spec: StageSpec,
    site_path: str,
    options: RunOptions,
    heartbeat: Synchronized[float],
    stop: Event,
    last_error: SynchronizedString,
    reports: Queue[StageReport] | None = None,
) -> None:
    # Ctrl-C goes to the terminal's whole process group: only the supervisor acts on it and stops
    # the stages in order. A SIGTERM aimed at this process asks it to stop like the supervisor does.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stop.set())
    level = os.environ.get("RSU_LOG_LEVEL", "WARNING")
    logging.basicConfig(level=level, format=f"%(asctime)s {spec.name} %(levelname)s %(message)s")
    logging.getLogger().addHandler(_LastErrorHandler(last_error))
    module_name, function_name = spec.target.split(":")
    try:
        function: Callable[[StageContext], None] = getattr(importlib.import_module(module_name), function_name)
        function(StageContext(spec.name, Path(site_path), options, heartbeat, stop, reports))
    except Exception as exc:
        # The supervisor names the stage and this line in its health and summary; the traceback
        # still goes to the log for whoever debugs it.
        _store_last_error(last_error, _last_error_line(exc))
        raise


class Supervisor:
    def __init__(self, site_path: Path, options: RunOptions, specs: list[StageSpec]) -> None:
        self.site_path = site_path
        self.options = options
        self._runs = {spec.name: _StageRun(spec, _ctx.Value("d", 0.0)) for spec in specs}
        # The newest error line of each stage, written by the stage process (a fixed-size buffer).
        self._last_errors: dict[str, SynchronizedString] = {
            spec.name: cast(SynchronizedString, _ctx.Array("c", LAST_ERROR_MAX_CHARS)) for spec in specs
        }
        self._stopping = False

    def start(self) -> None:
        for run in self._runs.values():
            self._start(run)

    def _start(self, run: _StageRun) -> None:
        run.heartbeat.value = 0.0
        run.stop = _ctx.Event()
        run.reports = _ctx.Queue(maxsize=REPORT_QUEUE_SIZE)
        run.guard_report = None
        run.cabinet_report = None
        process = _ctx.Process(
            target=_stage_entry,
            args=(
                run.spec,
                str(self.site_path),
                self.options,
                run.heartbeat,
                run.stop,
                self._last_errors[run.spec.name],
                run.reports,
            ),
            name=f"rsu-{run.spec.name}",
            daemon=True,
        )
        process.start()
        run.process = process
        run.started_monotonic_s = time.monotonic()

    def poll(self) -> None:
        """Check every stage once; restart the dead and the hung. Call this at 1-5 Hz."""
        if self._stopping:
            return
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
            last_error = self.last_error(run.spec.name)
            if last_error:
                problem = f"{problem}: {last_error}"
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
                report = run.reports.get_nowait()
            except (queue.Empty, OSError, EOFError, ValueError):
                return
            if isinstance(report, CabinetReport):
                run.cabinet_report = report
            else:
                run.guard_report = report

    def cabinet_report(self) -> CabinetReport | None:
        """The newest cabinet report of the running stages (None until one reported)."""
        reports = [run.cabinet_report for run in self._runs.values() if run.cabinet_report is not None]
        return reports[0] if reports else None

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

    def last_error(self, name: str) -> str:
        """The newest error the stage logged or died of ("" if none)."""
        return bytes(self._last_errors[name].value).decode("utf-8", "replace")

    def troubled_stages(self) -> dict[str, str]:
        """Every stage that was restarted: its name, restart count and the last problem, one line each."""
        return {
            run.spec.name: f"restarted {run.restarts}x, last: {run.last_problem}"
            for run in self._runs.values()
            if run.restarts
        }

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
        """Stop the stages one after another in spec order, each within its share of timeout_s."""
        self._stopping = True  # no restarts from here on
        deadline = time.monotonic() + timeout_s
        for run in self._runs.values():
            if run.stop is not None:
                run.stop.set()
            if run.process is not None:
                run.process.join(timeout=max(0.1, deadline - time.monotonic()))
                if run.process.is_alive():
                    log.warning("stage %s did not stop in time; killing it", run.spec.name)
                    run.process.kill()
                    run.process.join(timeout=2)
