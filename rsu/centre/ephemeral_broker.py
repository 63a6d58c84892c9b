"""A throwaway Mosquitto on a free loopback port, for tests and load runs.

Never touches the unit's own broker: each instance has its own config, persistence folder and log
in a temporary directory, and is stopped by its own process id.
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

DEFAULT_BINARY_PATHS = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")


class MosquittoNotFound(FileNotFoundError):
    """No mosquitto binary; the message says how to install one."""


def find_mosquitto() -> str:
    found = shutil.which("mosquitto")
    if found:
        return found
    for candidate in DEFAULT_BINARY_PATHS:
        if os.access(candidate, os.X_OK):
            return candidate
    raise MosquittoNotFound("mosquitto binary not found; install it (apt-get install mosquitto)")


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def port_accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class EphemeralMosquitto:
    """start() / stop() / restart() keep the same port, so clients and bridges can reconnect."""

    host = "127.0.0.1"

    def __init__(
        self,
        extra_config: str = "",
        *,
        persistence: bool = False,
        port: int | None = None,
        max_queued_messages: int = 1000,
        name: str = "broker",
    ) -> None:
        self.port = port if port is not None else free_loopback_port()
        self.name = name
        self.extra_config = extra_config
        self.persistence = persistence
        self.max_queued_messages = max_queued_messages
        self._workdir = Path(tempfile.mkdtemp(prefix=f"rsu-mosquitto-{name}-"))
        self.config_path = self._workdir / "mosquitto.conf"
        self.log_path = self._workdir / "mosquitto.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _config_text(self) -> str:
        lines = [
            f"listener {self.port} {self.host}",
            "allow_anonymous true",
            # Started as root, mosquitto would switch to the 'mosquitto' user and lose write access
            # to this temporary folder; for any other user this line has no effect.
            f"user {getpass.getuser()}",
            f"persistence {'true' if self.persistence else 'false'}",
            f"persistence_location {self._workdir}/",
            f"max_queued_messages {self.max_queued_messages}",
            "log_dest stderr",
            "log_type all",
            "",
            self.extra_config,
        ]
        return "\n".join(lines) + "\n"

    def start(self, timeout_s: float = 5.0) -> None:
        if self.running:
            return
        self.config_path.write_text(self._config_text())
        log = self.log_path.open("ab")
        try:
            self._process = subprocess.Popen(
                [find_mosquitto(), "-c", str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self._workdir,
            )
        finally:
            log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"mosquitto '{self.name}' exited at start; log:\n{self.log_tail()}")
            if port_accepts(self.host, self.port):
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"mosquitto '{self.name}' did not listen on {self.port} in {timeout_s} s")

    def stop(self, timeout_s: float = 5.0) -> None:
        """SIGTERM (mosquitto saves its persistence file on the way out), then SIGKILL if stuck."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout_s)

    def restart(self, timeout_s: float = 5.0) -> None:
        self.stop(timeout_s)
        self.start(timeout_s)

    def log_tail(self, max_chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-max_chars:]
        except OSError:
            return ""

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self._workdir, ignore_errors=True)

    def __enter__(self) -> EphemeralMosquitto:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.cleanup()
