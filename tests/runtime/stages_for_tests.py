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


def refuse_forged_input(ctx: StageContext) -> None:
    """Refuses one future-stamped message and reports its guard's counts while it runs."""
    from rsu.runtime.input_guard import InputGuard, TopicRule
    from rsu_contracts.messages import TrackList
    from rsu_contracts.topics import TRACKS, Topics

    topics = Topics.for_site(ctx.site)
    guard = InputGuard(ctx.name, [TopicRule.of(topics, TRACKS, newest_only=True)])
    now = time.time()
    forged = TrackList(
        unit_id=ctx.site.unit_id, seq=0, capture_time_s=now + 1e6, publish_time_s=now, camera_id="cam", objects=[]
    )
    guard.admit(topics.tracks, forged.to_json(), now)
    while not ctx.stopping:
        ctx.beat()
        ctx.report_inputs(guard.report())
        time.sleep(0.05)


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
