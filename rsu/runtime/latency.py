"""Process settings for stages on the warning path, where a pause of a few milliseconds matters."""

from __future__ import annotations

import gc
import logging
import os
import sys

log = logging.getLogger(__name__)

# paho's network thread writes what a stage publishes: it must get the GIL soon after a publish,
# not after CPython's default 5 ms switch interval.
GIL_SWITCH_INTERVAL_S = 0.0005
# Longest a raised-priority section waits for the network thread to have written its message.
PUBLISH_WAIT_S = 0.02
# Young-generation collections every 50,000 allocations instead of 700: fewer, still short pauses.
YOUNG_GENERATION_THRESHOLD = 50_000


def tune_interpreter_for_latency() -> None:
    """Shorter GIL switch interval and rarer young-generation collections."""
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, middle, old)


def freeze_startup_objects() -> None:
    """Collect once, then exclude everything built so far (models, config, libraries) from later
    collections: a full collection otherwise walks every torch and pydantic object, for tens of ms."""
    gc.collect()
    gc.freeze()


def set_thread_realtime_priority(priority: int) -> str | None:
    """SCHED_RR at `priority` (1-99) for the calling thread and the threads it starts from now on;
    0: back to normal scheduling. On a busy box this keeps the warning path from queueing behind
    other work. Needs CAP_SYS_NICE (the systemd unit in deploy/ grants it); returns why it failed,
    or None."""
    try:
        if priority > 0:
            os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(priority))
        else:
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    except (PermissionError, OSError) as exc:
        return f"cannot set SCHED_RR priority {priority}: {exc.strerror or exc} (needs CAP_SYS_NICE)"
    return None


class RealtimeSection:
    """`with section:` runs its body at SCHED_RR `priority` and returns to normal scheduling after:
    the work after the detector (tracking, zones, publishing) jumps the queue, the detector does not;
    threads started inside (paho's network thread at connect) keep the priority. Two system calls
    per use; after a refusal (no CAP_SYS_NICE) it warns once and does nothing. 0: does nothing."""

    def __init__(self, priority: int, what: str) -> None:
        self.priority = priority
        self.what = what
        self._active = False

    def __enter__(self) -> None:
        if self.priority <= 0:
            return
        problem = set_thread_realtime_priority(self.priority)
        if problem:
            log.warning("%s: %s; normal scheduling", self.what, problem)
            self.priority = 0
            return
        self._active = True

    def __exit__(self, *exc_info: object) -> None:
        if self._active:
            set_thread_realtime_priority(0)
            self._active = False
