"""The run: the broker checked once, then part (a) and part (b) as the options ask."""

from __future__ import annotations

import os

from rsu.runtime.bus import MqttBus
from rsu_contracts.config import load_site_config
from rsu_tools.bench.latency.fanout import run_fanout
from rsu_tools.bench.latency.plan import LatencyOptions, broker_of
from rsu_tools.bench.latency.playback import run_path
from rsu_tools.bench.latency.statistics import LatencyResult


def run_bench(options: LatencyOptions) -> LatencyResult:
    options.check()
    site = load_site_config(options.site)
    mqtt_config = broker_of(site, options.broker)
    probe = MqttBus(mqtt_config, f"bench-latency-probe-{os.getpid()}")
    probe.connect()
    probe.close()
    result = LatencyResult(
        broker=f"{mqtt_config.host}:{mqtt_config.port}",
        cpu_count=os.cpu_count() or 0,
        load_average_start=list(os.getloadavg()),
        load_average_end=[],
    )
    if options.run_path:
        result.path = run_path(options, mqtt_config, result.notes)
    if options.run_fanout:
        result.fanout = run_fanout(options, mqtt_config, result.notes)
    result.load_average_end = list(os.getloadavg())
    return result
