"""Throwaway server processes (Mosquitto, Redis) on free loopback ports, for tests and load runs.

Each instance has its own temporary folder and is stopped by its own process id, so the shared
services other people use are never touched.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class EphemeralServer:
    """start() / stop() / restart() keep the same port and folder, so clients can reconnect and
    what the server persisted survives a restart. Subclasses say how to launch and probe it."""

    host = "127.0.0.1"

    def __init__(self, name: str, port: int | None = None) -> None:
        self.name = name
        self.port = port if port is not None else free_loopback_port()
        self.workdir = Path(tempfile.mkdtemp(prefix=f"rsu-{name}-"))
        self.log_path = self.workdir / f"{name}.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _command(self) -> Sequence[str]:
        raise NotImplementedError

    def _ready(self) -> bool:
        raise NotImplementedError

    def start(self, timeout_s: float = 10.0) -> None:
        if self.running:
            return
        log = self.log_path.open("ab")
        try:
            self._process = subprocess.Popen(self._command(), stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir)
        finally:
            log.close()
        self._wait(self._ready, timeout_s)

    def _wait(self, ready: Callable[[], bool], timeout_s: float) -> None:
        process = self._process
        assert process is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start; log:\n{self.log_tail()}")
            if ready():
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.name} did not answer on port {self.port} within {timeout_s} s")

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM (both servers save what they persist on the way out), then SIGKILL if stuck."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout_s)

    def restart(self, timeout_s: float = 10.0) -> None:
        self.stop(timeout_s)
        self.start(timeout_s)

    def log_tail(self, max_chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-max_chars:]
        except OSError:
            return ""

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.cleanup()
