"""A requested stop: SIGINT (Ctrl-C) and SIGTERM (systemd) turn into a flag the main loop reads.

The handler only records the signal, so no exception lands in the middle of the supervisor's
bookkeeping or an MQTT call: the loop sees `requested`, stops the unit in order and prints its
summary. A second signal while stopping is ignored (the stop has a bounded timeout of its own).
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType, TracebackType
from typing import Any

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

# Exit code of the unit after a requested stop (Ctrl-C or SIGTERM): it ended as asked.
EXIT_REQUESTED_STOP = 0


class StopSignals:
    """Context manager: while active, SIGINT and SIGTERM set `received` instead of killing."""

    def __init__(self) -> None:
        self.received: str | None = None
        self._previous: dict[signal.Signals, Any] = {}

    @property
    def requested(self) -> bool:
        return self.received is not None

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.received is None:
            self.received = signal.Signals(signum).name
            log.info("%s received: stopping the unit", self.received)

    def __enter__(self) -> StopSignals:
        # Signal handlers can only be set from the main thread; elsewhere (a test's worker thread)
        # the default behaviour stays.
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()
