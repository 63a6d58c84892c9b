"""The unit's Mosquitto bridge: only this unit's centre topics go up, queued while the centre is down.

Two throwaway Mosquitto instances on loopback: the unit's local broker running the generated
bridge config, and the centre's broker (with persistence, as a centre would run it).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from rsu.centre.store import AggregateStore
from rsu.uplink.bridge import mosquitto_bridge_config
from rsu_contracts.config import SiteConfig
from rsu_contracts.topics import Topics
from rsu_tools.testing.mosquitto import EphemeralMosquitto
from tests.centre.conftest import Publisher, make_aggregate, running_collector, wait_until


def test_the_generated_bridge_forwards_only_this_units_centre_topics_out(sample_site: SiteConfig) -> None:
    text = mosquitto_bridge_config(sample_site, "centre.example.org", 8883)
    settings = [line for line in text.splitlines() if line and not line.startswith("#")]

    assert [line for line in settings if line.startswith("topic ")] == [f"topic centre/{sample_site.unit_id}/# out 1"]
    assert "address centre.example.org:8883" in settings
    for required in ("cleansession false", "local_cleansession false", "bridge_protocol_version mqttv50"):
        assert required in settings
    assert not any(line.startswith("bridge_cafile") for line in settings), "TLS lines stay commented by default"
    with_tls = mosquitto_bridge_config(sample_site, "centre.example.org", 8883, tls_cafile="/etc/ca.crt")
    assert "bridge_cafile /etc/ca.crt" in with_tls.splitlines()


class _Watcher:
    """Records every topic that reaches the centre's broker."""

    def __init__(self, port: int) -> None:
        self.topics: list[str] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"watch-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5,
        )
        self.client.on_connect = lambda client, *_: client.subscribe("#", qos=1)
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(min_delay=1, max_delay=1)
        self.client.connect("127.0.0.1", port, keepalive=5)
        self.client.loop_start()

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.topics.append(message.topic)

    def seen(self) -> list[str]:
        with self._lock:
            return list(self.topics)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def brokers(sample_site: SiteConfig) -> Iterator[tuple[EphemeralMosquitto, EphemeralMosquitto]]:
    central = EphemeralMosquitto(persistence=True, name="central")
    central.start()
    bridge = mosquitto_bridge_config(sample_site, central.host, central.port, restart_timeout_s=1, keepalive_s=5)
    local = EphemeralMosquitto(bridge, persistence=True, name="local")
    try:
        local.start()
        yield local, central
    finally:
        local.cleanup()
        central.cleanup()


@pytest.mark.services
def test_aggregates_cross_the_bridge_once_each_in_order_even_across_a_centre_outage(
    sample_site: SiteConfig, brokers: tuple[EphemeralMosquitto, EphemeralMosquitto], tmp_path: Path
) -> None:
    local, central = brokers
    unit = sample_site.unit_id
    topics = Topics(unit, sample_site.mqtt.topic_prefix, sample_site.uplink.topic_prefix)
    watcher = _Watcher(central.port)
    unit_side = Publisher(local.host, local.port)
    with (
        AggregateStore(tmp_path / "centre.sqlite") as store,
        running_collector(central.host, central.port, store, client_id="centre-collector") as collector,
    ):
        try:
            # The bridge connects on its own schedule; the first aggregate waits for it if need be.
            unit_side.send(topics.aggregates, make_aggregate(unit, 0).to_json())
            assert wait_until(lambda: collector.stored == 1, 10.0), f"{collector.stats()}\n{local.log_tail()}"
            # Privacy: local topics and other units' topics stay on the unit's broker.
            unit_side.send(topics.tracks, b'{"tracks": "never upstream"}')
            unit_side.send(topics.detectors, b"{}")
            unit_side.send("centre/another-unit/aggregates", make_aggregate("another-unit", 0).to_json())

            central.stop()
            for seq in range(1, 6):  # sealed while the centre is unreachable
                unit_side.send(topics.aggregates, make_aggregate(unit, seq).to_json())
            time.sleep(2.0)
            central.start()
            for seq in range(6, 9):
                unit_side.send(topics.aggregates, make_aggregate(unit, seq).to_json())

            assert wait_until(lambda: len(store.intervals(unit)) == 9, 20.0), (
                f"{collector.stats()}\nlocal:\n{local.log_tail()}\ncentral:\n{central.log_tail()}"
            )
            time.sleep(0.5)  # room for stray late copies to show up
        finally:
            unit_side.close()
            watcher.close()

        assert [row.seq for row in store.intervals(unit)] == list(range(9))
        assert store.gaps(unit) == [] and store.missing_seqs(unit) == []
        assert store.units() == [unit]
        assert collector.invalid == 0
    seen = watcher.seen()
    assert topics.aggregates in seen
    leaked = [topic for topic in seen if not topic.startswith(f"centre/{unit}/")]
    assert leaked == [], f"topics that must stay on the unit reached the centre: {leaked}"
