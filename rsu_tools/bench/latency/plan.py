"""What a latency run is given: its options and their bounds, and the loopback broker and bench site
it talks to."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rsu.samples import SAMPLE_SITE
from rsu_contracts.config import SiteConfig
from rsu_contracts.config.model import MqttConfig

OTC_SITE = SAMPLE_SITE.parent.parent / "opentrafficcam" / "site.yaml"
WARMUP_FRAMES = 10
MAX_FRAMES = 5000
MAX_CLIENTS = 1000
MAX_FANOUT_MESSAGES = 2000
READY_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class LatencyOptions:
    site: Path = OTC_SITE
    clip: str | None = None  # default: the site camera's uri
    fps: float = 10.0
    frames: int = 200
    # Detector input size; None keeps the site's. 320 keeps detection within the warning budget
    # on 2 cores (yolo11n on CPU: about 35 ms at 320, 75 ms at 640 for an 800x600 frame).
    imgsz: int | None = 320
    threads: int | None = None
    broker: str | None = None  # HOST:PORT; default: the site's MQTT broker
    clients: int = 200
    client_processes: int = 4
    fanout_messages: int = 100
    fanout_rate_hz: float = 10.0
    # raw: minimal MQTT v5 sessions that note arrival; paho: paho clients (their parsing, in Python,
    # for 200 clients on 2 cores, dominates what is measured).
    client_kind: str = "raw"
    run_path: bool = True
    run_fanout: bool = True
    timeout_s: float = 600.0
    # SCHED_RR priority of the warning path (site v2x.realtime_priority) and of the vehicle process,
    # which stands in for the vehicle's own computer; None: the site's setting.
    realtime_priority: int | None = None

    def check(self) -> None:
        if self.realtime_priority is not None and not 0 <= self.realtime_priority <= 99:
            raise ValueError(f"--realtime-priority must be in [0, 99], got {self.realtime_priority}")
        if not 0 < self.fps <= 60:
            raise ValueError(f"--fps must be in (0, 60], got {self.fps}")
        if not WARMUP_FRAMES < self.frames <= MAX_FRAMES:
            raise ValueError(f"--frames must be in ({WARMUP_FRAMES}, {MAX_FRAMES}], got {self.frames}")
        if not 1 <= self.clients <= MAX_CLIENTS:
            raise ValueError(f"--clients must be in [1, {MAX_CLIENTS}], got {self.clients}")
        if not 1 <= self.client_processes <= min(32, self.clients):
            raise ValueError("--client-processes must be between 1 and min(32, clients)")
        if not 1 <= self.fanout_messages <= MAX_FANOUT_MESSAGES:
            raise ValueError(f"--fanout-messages must be in [1, {MAX_FANOUT_MESSAGES}]")
        if not 0 < self.fanout_rate_hz <= 1000:
            raise ValueError("--fanout-rate-hz must be in (0, 1000]")
        if self.client_kind not in ("raw", "paho"):
            raise ValueError(f"--client-kind must be raw or paho, got {self.client_kind!r}")


def broker_of(site: SiteConfig, broker: str | None) -> MqttConfig:
    """The broker to use: HOST:PORT if given, else the site's; loopback only."""
    config = site.mqtt
    if broker:
        host, _, port = broker.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"--broker must be HOST:PORT, got {broker!r}")
        config = config.model_copy(update={"host": host, "port": int(port)})
    if not _is_loopback(config.host):
        raise ValueError(f"the bench only talks to a loopback broker, not {config.host}")
    return config


def _is_loopback(host: str) -> bool:
    try:
        return all(str(info[4][0]).startswith(("127.", "::1")) for info in socket.getaddrinfo(host, None))
    except OSError:
        return False


def _bench_site(
    site: SiteConfig, unit_id: str, mqtt_config: MqttConfig, realtime_priority: int | None = None
) -> SiteConfig:
    update: dict[str, Any] = {"unit_id": unit_id, "mqtt": mqtt_config}
    if realtime_priority is not None:
        update["v2x"] = site.v2x.model_copy(update={"realtime_priority": realtime_priority})
    return site.model_copy(update=update)
