"""Where the MQTT side and the web side of the web stage meet: one lock around the live state.

The feed thread writes messages in (`absorb`); the web server's handlers read snapshots and the
newest camera preview out. A version number tells a WebSocket handler whether anything changed
since it last sent, so idle pages cost nothing and busy ones get at most one snapshot per tick.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rsu.metrics import UnitMetrics
from rsu.web.state import Arrival, LiveState
from rsu_contracts.config.model import SiteConfig
from rsu_contracts.messages import MessageError
from rsu_contracts.topics import CAMERA_PREVIEW

# A snapshot is rebuilt at most this often even when nothing changed, so ages and countdowns move on.
SNAPSHOT_REFRESH_S = 0.5


@dataclass
class LinkStatus:
    """The web stage's own view of the broker and of the uplink outbox."""

    mqtt_connected: bool = False
    mqtt_backlog: int = 0
    mqtt_dropped: int = 0
    outbox_backlog: int | None = None
    outbox_trimmed: int | None = None
    outbox_error: str | None = None


@dataclass(frozen=True)
class PreviewFrame:
    version: int
    jpeg: bytes
    received_monotonic_s: float


class LiveHub:
    def __init__(
        self,
        site: SiteConfig,
        realtime: bool = True,
        wall_clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.site = site
        self.state = LiveState(site, realtime)
        self.metrics = UnitMetrics(site.unit_id)
        self.link = LinkStatus()
        self.preview_topic = self.state.topics.camera_preview
        self._wall_clock = wall_clock
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._version = 0
        self._frame: PreviewFrame | None = None
        self._frames_received = 0
        self._cached: tuple[int, float, str] | None = None

    @property
    def version(self) -> int:
        return self._version

    def absorb(self, topic: str, payload: bytes, received_monotonic_s: float | None = None) -> None:
        """One MQTT message from the unit's broker. Bad payloads are counted, never raised."""
        monotonic_now = self._monotonic()
        received = monotonic_now if received_monotonic_s is None else received_monotonic_s
        arrival = Arrival(self._wall_clock() - (monotonic_now - received), received)
        if topic == self.preview_topic:
            with self._lock:
                self._frames_received += 1
                self._frame = PreviewFrame(self._frames_received, payload, received)
            return
        try:
            with self._lock:
                message = self.state.absorb(topic, payload, arrival)
                self._version += 1
        except (MessageError, UnicodeDecodeError):
            self.metrics.count_invalid(topic)
            return
        if message is not None:
            self.metrics.observe(message, arrival.wall_s if self.state.realtime else None)

    def set_link(self, **changes: Any) -> None:
        with self._lock:
            for name, value in changes.items():
                setattr(self.link, name, value)
            link = self.link
            self._version += 1
        self.metrics.set_mqtt(link.mqtt_connected, link.mqtt_backlog, link.mqtt_dropped)
        if "outbox_backlog" in changes:
            self.metrics.set_outbox(link.outbox_backlog, link.outbox_trimmed)

    def frame(self) -> PreviewFrame | None:
        with self._lock:
            return self._frame

    def snapshot(self) -> dict[str, Any]:
        now_monotonic = self._monotonic()
        with self._lock:
            snapshot = self.state.snapshot(self._wall_clock(), now_monotonic)
            link = self.link
            frame = self._frame
            snapshot["link"] = {
                "mqtt_connected": link.mqtt_connected,
                "mqtt_backlog": link.mqtt_backlog,
                "mqtt_dropped": link.mqtt_dropped,
                "outbox_backlog": link.outbox_backlog,
                "outbox_trimmed": link.outbox_trimmed,
                "outbox_error": link.outbox_error,
            }
            if frame is None:
                snapshot["camera"] = None
            else:
                age_s = round(max(0.0, now_monotonic - frame.received_monotonic_s), 2)
                snapshot["camera"] = {"frames": frame.version, "age_s": age_s, "stale": CAMERA_PREVIEW.is_stale(age_s)}
        snapshot["metrics"] = self.metrics.summary()
        return snapshot

    def snapshot_json(self) -> tuple[int, str]:
        """(version, JSON text); rebuilt when the state changed or the cached one is getting old."""
        version = self._version
        now = self._monotonic()
        cached = self._cached
        if cached is not None and cached[0] == version and now - cached[1] < SNAPSHOT_REFRESH_S:
            return version, cached[2]
        text = json.dumps(finite(self.snapshot()), separators=(",", ":"), allow_nan=False)
        self._cached = (version, now, text)
        return version, text


def finite(value: Any) -> Any:
    """The same data with NaN and infinities replaced by None: browsers' JSON.parse rejects them."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite(item) for item in value]
    return value
