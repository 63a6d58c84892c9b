"""What one intersection sends upstream in the demo: at most 5 kB per minute.

Done when (issue 6): upstream bandwidth at most 5 kB per minute per intersection in the demo.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

import pytest

from rsu.demo import run_demo
from rsu_contracts.config import load_site_config
from rsu_tools.bench.uplink import wire_bytes
from rsu_tools.testing.mosquitto import EphemeralMosquitto
from rsu_tools.testing.redis_server import EphemeralRedis
from rsu_tools.testing.tcp_proxy import ByteCountingProxy
from tests.faults.harness import LocalListener, write_site

pytestmark = [pytest.mark.services, pytest.mark.sumo, pytest.mark.slow]  # a 15-minute demo: about 2 min

# Fifteen 1-minute intervals and one 15-minute interval: the long-run mix of what goes upstream.
DEMO_S = 900.0
LIMIT_BYTES_PER_MINUTE = 5_000  # 5 kB (decimal; 5 KiB would allow 5 120)
PING_BYTES = 4  # PINGREQ + PINGRESP, 2 bytes each


def test_upstream_bandwidth_in_the_demo_is_at_most_5_kb_per_minute(
    tmp_path: Path,
    local_broker: EphemeralMosquitto,
    unit_redis: EphemeralRedis,
    record_property: Callable[[str, object], None],
) -> None:
    """`rsu demo` on the sample junction (its own 60 s intervals), with the uplink's connection to
    the centre broker passing through a byte-counting TCP forwarder. As in the demo, the centre
    broker is the unit's own; only the uplink's upstream connection goes through the forwarder, so
    the count is everything the unit would send to and receive from a centre: CONNECT, every
    aggregate's PUBLISH and its PUBACK, keep-alive pings and DISCONNECT (MQTT bytes, i.e. TCP
    payload; TCP/IP headers are estimated separately in the printed figures).

    The demo runs in lock-step, faster than real time, so it sends fewer keep-alive pings per
    simulated minute than a unit on the street would; the figure adds a full minute of pings at
    the configured keep-alive on top, which over-counts slightly (a PUBLISH also keeps the link
    alive). The one-off CONNECT is spread over the run, which also errs on the high side.
    """
    forwarder = ByteCountingProxy(local_broker.host, local_broker.port)
    forwarder.start()
    site = write_site(
        tmp_path / "site",
        local_broker=local_broker,
        centre_host="127.0.0.1",
        centre_port=forwarder.port,
        redis_url=unit_redis.url,
    )
    centre_link = load_site_config(site.path).uplink.mqtt
    assert centre_link is not None
    listener = LocalListener(local_broker, site.topics)
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(forwarder.stop)
        cleanup.callback(listener.close)
        summary = run_demo(site.path, duration_s=DEMO_S, progress=None, wall_timeout_s=600)

    assert site.interval_s == 60.0, "the demo's own interval"
    assert summary.aggregates_delivered == summary.aggregates_expected == DEMO_S // site.interval_s
    assert forwarder.connections == 1, "only the uplink's centre connection should pass the forwarder"
    minutes = DEMO_S / 60.0
    measured_per_minute = forwarder.total_bytes / minutes
    keepalive_per_minute = PING_BYTES * 60.0 / centre_link.keepalive_s
    upstream_per_minute = measured_per_minute + keepalive_per_minute
    payloads = listener.heard.aggregate_payload_bytes
    assert summary.long_aggregates_delivered == 1
    assert len(payloads) == summary.aggregates_delivered + summary.long_aggregates_delivered
    mean_payload = sum(payloads) / len(payloads)
    with_tcp_ip = wire_bytes(site.topics.aggregates, round(mean_payload)) * len(payloads) / minutes
    record_property("upstream_mqtt_bytes_per_minute", round(upstream_per_minute))
    record_property("aggregate_payload_bytes_mean", round(mean_payload))
    print(
        f"\nupstream per intersection: {upstream_per_minute:.0f} B/min of MQTT "
        f"({forwarder.bytes_to_target / minutes:.0f} up, {forwarder.bytes_from_target / minutes:.0f} down "
        f"per simulated minute, + {keepalive_per_minute:.0f} for real-time keep-alives); "
        f"aggregate payload {mean_payload:.0f} B; publishes with TCP/IP headers about {with_tcp_ip:.0f} B/min; "
        f"= {upstream_per_minute * 60 / 1e3:.0f} kB/h"
    )
    assert upstream_per_minute <= LIMIT_BYTES_PER_MINUTE
