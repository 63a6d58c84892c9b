"""Uvicorn in a background thread of the web stage's process.

The listening socket is bound here, before uvicorn starts, so a port that is taken fails at once
with a message naming the port and the config field (uvicorn itself would only log and exit its
thread), and so tests can ask for port 0 and read back the port they got.
"""

from __future__ import annotations

import errno
import socket
import threading
import time

import uvicorn
from fastapi import FastAPI


class WebServerError(RuntimeError):
    """The web server cannot listen or did not start; the message says what to change."""


class WebServer:
    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        self.app = app
        self.host = host
        self.requested_port = port
        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._socket is None:
            return self.requested_port
        return int(self._socket.getsockname()[1])

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"

    def _bind(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.requested_port))
        except OSError as exc:
            sock.close()
            if exc.errno == errno.EADDRINUSE:
                raise WebServerError(
                    f"web page: port {self.requested_port} on {self.host} is already in use "
                    "(another unit or program?); set web.port in the site config"
                ) from None
            raise WebServerError(
                f"web page: cannot listen on {self.host}:{self.requested_port} ({exc.strerror}); check web.host"
            ) from None
        sock.listen(64)
        sock.set_inheritable(True)
        return sock

    def start(self, timeout_s: float = 10.0) -> None:
        self._socket = self._bind()
        config = uvicorn.Config(
            self.app,
            log_config=None,
            access_log=False,
            lifespan="off",
            ws_ping_interval=20.0,
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        sockets = [self._socket]
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": sockets}, name="web-server")
        self._thread.daemon = True
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise WebServerError(f"web page: the server on {self.host}:{self.port} did not start")
            time.sleep(0.02)

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout_s: float = 5.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)
        if self._socket is not None:
            self._socket.close()
