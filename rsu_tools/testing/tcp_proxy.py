"""A byte-counting TCP forwarder on a free loopback port, cut and restored to simulate an outage."""

from __future__ import annotations

import contextlib
import socket
import threading

from rsu_tools.testing.servers import free_loopback_port


class ByteCountingProxy:
    """Forwards 127.0.0.1:<port> to a target and counts the bytes each way (TCP payload, i.e. MQTT)."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_loopback_port()
        self.bytes_to_target = 0
        self.bytes_from_target = 0
        self.connections = 0
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._sockets: list[socket.socket] = []

    @property
    def total_bytes(self) -> int:
        with self._lock:
            return self.bytes_to_target + self.bytes_from_target

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen()
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        with self._lock:
            sockets, self._sockets = self._sockets, []
            listener, self._listener = self._listener, None
        for sock in [*sockets, *([listener] if listener else [])]:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # stopped
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, upstream]
                self.connections += 1
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, to_target: bool) -> None:
        try:
            while data := source.recv(65536):
                with self._lock:
                    if to_target:
                        self.bytes_to_target += len(data)
                    else:
                        self.bytes_from_target += len(data)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
