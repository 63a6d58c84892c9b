"""The web stage's inputs: every local topic of the unit from MQTT, and the uplink outbox's backlog.

Both run in their own threads and never raise out: a broker or Redis that is down is shown on the
page (and in /metrics) as down, while the page itself keeps being served.
"""

from __future__ import annotations

import logging
import threading
import time

from rsu.runtime.bus import BrokerUnavailable, MqttBus
from rsu.uplink.outbox import Outbox, OutboxUnavailable
from rsu.web.hub import LiveHub
from rsu_contracts.config.model import SiteConfig
from rsu_contracts.topics import Topics

log = logging.getLogger(__name__)

CONNECT_RETRY_S = 2.0
LINK_STATUS_PERIOD_S = 0.5
OUTBOX_PERIOD_S = 5.0


class MqttFeed:
    """Subscribes to `<prefix>/<unit>/#` and the unit's aggregates topic and feeds the hub."""

    def __init__(self, site: SiteConfig, hub: LiveHub, client_id: str) -> None:
        self.site = site
        self.hub = hub
        topics = Topics.for_site(site)
        self.bus = MqttBus(site.mqtt, client_id)
        self.bus.subscribe(f"{topics.base}/#")
        self.bus.subscribe(topics.aggregates)
        # Seconds on the monotonic clock when the loop last turned: the stage's heartbeat follows it.
        self.last_turn_monotonic_s = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="web-mqtt-feed", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        connected_once = False
        next_status_s = 0.0
        try:
            while not self._stop.is_set():
                self.last_turn_monotonic_s = time.monotonic()
                if not connected_once:
                    connected_once = self._try_connect()
                    continue
                item = self.bus.get(timeout_s=0.1)
                batch = [item, *self.bus.drain()] if item is not None else []
                for received in batch:
                    self.hub.absorb(received.topic, received.payload, received.received_monotonic_s)
                if time.monotonic() >= next_status_s:
                    next_status_s = time.monotonic() + LINK_STATUS_PERIOD_S
                    self.hub.set_link(
                        mqtt_connected=self.bus.connected,
                        mqtt_backlog=self.bus.inbox.qsize(),
                        mqtt_dropped=self.bus.dropped_inbound,
                    )
        finally:
            if connected_once:
                self.bus.close()

    def _try_connect(self) -> bool:
        try:
            self.bus.connect(timeout_s=CONNECT_RETRY_S)
        except BrokerUnavailable as exc:
            log.warning("web: %s; retrying", exc)
            self.hub.set_link(mqtt_connected=False)
            self._stop.wait(CONNECT_RETRY_S)
            return False
        self.hub.set_link(mqtt_connected=True)
        return True


class OutboxWatch:
    """Reads the uplink outbox's backlog every few seconds (Redis timeouts must not stall the feed)."""

    def __init__(self, site: SiteConfig, hub: LiveHub, period_s: float = OUTBOX_PERIOD_S) -> None:
        self.hub = hub
        self.period_s = period_s
        self.outbox = Outbox.from_url(site.redis.url, site.unit_id, site.uplink.outbox_max_records, timeout_s=0.5)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="web-outbox-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def poll(self) -> None:
        try:
            backlog = self.outbox.backlog()
            trimmed = self.outbox.trimmed_total()
        except OutboxUnavailable as exc:
            self.hub.set_link(outbox_backlog=None, outbox_trimmed=None, outbox_error=str(exc))
            return
        self.hub.set_link(outbox_backlog=backlog, outbox_trimmed=trimmed, outbox_error=None)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.poll()
            self._stop.wait(self.period_s)
        self.outbox.client.close()
