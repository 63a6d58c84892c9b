"""A throwaway Mosquitto on a free loopback port, for tests and load runs (`rsu bench uplink`).

Never touches the unit's own broker: each instance has its own config, persistence folder and log
in a temporary directory, and is stopped by its own process id.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket

from rsu_tools.testing.servers import EphemeralServer, free_loopback_port

__all__ = ["EphemeralMosquitto", "MosquittoNotFound", "find_mosquitto", "free_loopback_port", "port_accepts"]

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


def port_accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class EphemeralMosquitto(EphemeralServer):
    """start() / stop() / restart() keep the same port, so clients and bridges can reconnect."""

    def __init__(
        self,
        extra_config: str = "",
        *,
        persistence: bool = False,
        port: int | None = None,
        max_queued_messages: int = 1000,
        name: str = "broker",
    ) -> None:
        super().__init__(f"mosquitto-{name}", port)
        self.extra_config = extra_config
        self.persistence = persistence
        self.max_queued_messages = max_queued_messages
        self.config_path = self.workdir / "mosquitto.conf"

    def _config_text(self) -> str:
        lines = [
            f"listener {self.port} {self.host}",
            "allow_anonymous true",
            # Started as root, mosquitto would switch to the 'mosquitto' user and lose write access
            # to this temporary folder; for any other user this line has no effect.
            f"user {getpass.getuser()}",
            f"persistence {'true' if self.persistence else 'false'}",
            f"persistence_location {self.workdir}/",
            f"max_queued_messages {self.max_queued_messages}",
            "log_dest stderr",
            "log_type all",
            "",
            self.extra_config,
        ]
        return "\n".join(lines) + "\n"

    def _command(self) -> list[str]:
        self.config_path.write_text(self._config_text())
        return [find_mosquitto(), "-c", str(self.config_path)]

    def _ready(self) -> bool:
        return port_accepts(self.host, self.port)
