"""Tiny stage bodies for supervisor tests: one that crashes, one that hangs, one that finishes.

Each records every start in a file named by the RSU_TEST_STAGE_LOG environment variable.
"""

from __future__ import annotations

import logging
import os
import sys
import time

from rsu.runtime.stage import StageContext


def _record_start(name: str) -> int:
    path = os.environ["RSU_TEST_STAGE_LOG"]
    with open(path, "a", encoding="utf-8") as log:
        log.write(f"{name}\n")
    with open(path, encoding="utf-8") as log:
        return sum(1 for line in log if line.strip() == name)


def crash_once(ctx: StageContext) -> None:
    """Dies on its first start; runs normally after a restart."""
    starts = _record_start(ctx.name)
    ctx.beat()
    if starts == 1:
        raise RuntimeError("simulated crash")
    while not ctx.stopping:
        ctx.beat()
        time.sleep(0.05)


def hang_once(ctx: StageContext) -> None:
    """Stops beating on its first start (a stuck loop); runs normally after a restart."""
    starts = _record_start(ctx.name)
    ctx.beat()
    if starts == 1:
        time.sleep(3600)
    while not ctx.stopping:
        ctx.beat()
        time.sleep(0.05)


def finish(ctx: StageContext) -> None:
    _record_start(ctx.name)
    ctx.beat()


def crash_always(ctx: StageContext) -> None:
    """Dies on every start with the same error."""
    _record_start(ctx.name)
    ctx.beat()
    raise RuntimeError(f"simulated fault in {ctx.name}: the device went away")


def log_error_and_exit(ctx: StageContext) -> None:
    """Logs an error and exits with a code, without an exception (as a stage giving up does)."""
    _record_start(ctx.name)
    ctx.beat()
    logging.getLogger(__name__).error("cannot open the camera at rtsp://10.0.0.9/stream")
    sys.exit(3)


def finish_after_a_while(ctx: StageContext) -> None:
    """Runs (beating) for RSU_TEST_STAGE_RUN_S seconds, then completes."""
    _record_start(ctx.name)
    until = time.monotonic() + float(os.environ.get("RSU_TEST_STAGE_RUN_S", "5"))
    while time.monotonic() < until and not ctx.stopping:
        ctx.beat()
        time.sleep(0.05)
