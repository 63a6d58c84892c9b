"""A throwaway Redis with append-only persistence, for tests.

Each service runs on a free loopback port with its own temporary folder and is stopped by its own
process id, so the shared Mosquitto and Redis other people use are never touched.
"""

from __future__ import annotations

import shutil

import redis

from rsu_tools.testing.servers import EphemeralServer

REDIS_SERVER = "/usr/bin/redis-server"


class EphemeralRedis(EphemeralServer):
    """redis-server with AOF persistence (appendonly yes) in a temporary folder.

    stop() is a clean shutdown (SIGTERM: Redis fsyncs the AOF on the way out); start() again on the
    same port and folder loads the AOF, so the outbox survives a restart as it would on a unit.
    """

    def __init__(self, extra_config: dict[str, str] | None = None, name: str = "redis") -> None:
        super().__init__(name)
        self.extra_config = dict(extra_config or {})

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host=self.host, port=self.port, socket_timeout=2.0, socket_connect_timeout=2.0)

    def _command(self) -> list[str]:
        settings = {
            "port": str(self.port),
            "bind": self.host,
            "dir": str(self.workdir),
            "appendonly": "yes",
            "appendfsync": "everysec",
            "save": "",
            "daemonize": "no",
            **self.extra_config,
        }
        command = [shutil.which("redis-server") or REDIS_SERVER]
        for key, value in settings.items():
            command += [f"--{key}", value]
        return command

    def _ready(self) -> bool:
        probe = self.client()
        try:
            return bool(probe.ping())  # also fails while the AOF is still loading
        except redis.RedisError:
            return False
        finally:
            probe.close()
