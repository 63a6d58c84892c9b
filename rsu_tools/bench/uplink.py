"""Load run of the upstream path: many simulated units -> one broker -> CentreCollector -> SQLite.

How the units are simulated: a few publisher *processes* (default 2), each with ONE paho client
publishing QoS 1 on behalf of its share of the unit ids, on each unit's real topic
`centre/{unit_id}/aggregates`. So the broker sees a few connections, not one per unit; the
collector and the store, which are what this run measures, see exactly the traffic of N units.
Payloads are built with the real Aggregate model for the sample 8-lane intersection, with counts,
speeds and queues drawn for the simulated interval length.

Timing: each unit seals one interval per `period_s` of wall time (1-minute intervals every
second = 60x accelerated). Units are aligned to the same period boundary plus a random offset of
up to `jitter_fraction` of the period, as NTP-synchronised units all sealing at the full minute
would be. period_s 0 publishes as fast as possible (capacity).

Bounded: units x intervals messages, a hard timeout, and loopback brokers only. By default a
throwaway Mosquitto is started on a free loopback port, so the unit's broker is never loaded.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import math
import multiprocessing
import multiprocessing.queues
import multiprocessing.synchronize
import queue
import shutil
import socket
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from rsu.centre.collector import CentreCollector
from rsu.centre.store import AggregateStore
from rsu.runtime.bus import BrokerUnavailable
from rsu.samples import SAMPLE_SITE
from rsu_contracts.config import SiteConfig, load_site_config
from rsu_contracts.config.model import MqttConfig
from rsu_contracts.messages.aggregates import Aggregate, LaneAggregate, MovementCount, PhaseAggregate
from rsu_contracts.messages.warnings import WarningKind
from rsu_contracts.topics import AGGREGATES
from rsu_tools.testing.mosquitto import EphemeralMosquitto

log = logging.getLogger(__name__)

# Assumption for the comparison: what a unit would send if it streamed its camera instead.
DEFAULT_CAMERA_BITRATE_MBPS = 4.0  # 1080p25 H.264, typical CCTV main stream
# Per-message overhead on the wire beyond the payload, for the bytes/hour estimate.
TCP_IP_HEADER_BYTES = 52  # IPv4 20 + TCP 20 + TCP timestamps 12, per segment
TCP_MSS_BYTES = 1448
# Vehicles per hour per lane, by the lane's first movement; the class split of that flow.
FLOW_VEH_PER_H = {"through": 500.0, "right": 250.0, "left": 160.0, "uturn": 20.0}
CLASS_SHARE = {"car": 0.86, "truck": 0.06, "bus": 0.02, "motorcycle": 0.03, "bicycle": 0.03}
PEDESTRIANS_PER_H_PER_LINE = 60.0


# realistic payloads


def realistic_aggregate(
    site: SiteConfig,
    unit_id: str,
    seq: int,
    interval_start_s: float,
    interval_s: float,
    publish_time_s: float,
    rng: np.random.Generator,
) -> Aggregate:
    """One interval of plausible traffic at the site, through the real message model."""
    hours = interval_s / 3600.0
    lanes = []
    for lane in site.lanes:
        flow = FLOW_VEH_PER_H.get(lane.movements[0].value, 300.0) * hours
        counts = {name: int(rng.poisson(flow * share)) for name, share in CLASS_SHARE.items()}
        counts["pedestrian"] = 0
        mean_speed = float(rng.uniform(6.0, 13.0))
        mean_queue_m = float(rng.uniform(0.0, 45.0))
        lanes.append(
            LaneAggregate(
                lane_id=lane.id,
                counts_by_class=counts,
                mean_speed_mps=mean_speed,
                speed_p85_mps=mean_speed * float(rng.uniform(1.15, 1.35)),
                occupancy_ratio=float(rng.uniform(0.05, 0.6)),
                mean_queue_m=mean_queue_m,
                max_queue_m=mean_queue_m * float(rng.uniform(1.2, 2.5)),
                mean_queue_vehicles=mean_queue_m / 7.0,
            )
        )
    lines = []
    for line in site.counting_lines:
        flow = 2 * FLOW_VEH_PER_H["through"] * hours
        counts = {name: int(rng.poisson(flow * share)) for name, share in CLASS_SHARE.items()}
        counts["pedestrian"] = int(rng.poisson(PEDESTRIANS_PER_H_PER_LINE * hours))
        lines.append(MovementCount(line_id=line.id, counts_by_class=counts))
    cycles = max(1, round(interval_s / 90.0))
    phases = []
    for group in site.signal_groups:
        green_starts = int(rng.integers(max(0, cycles - 1), cycles + 1))
        gap_outs = int(rng.integers(0, green_starts + 1))
        phases.append(
            PhaseAggregate(
                signal_group=group.id,
                green_time_s=float(rng.uniform(0.15, 0.45)) * interval_s,
                green_starts=green_starts,
                gap_outs=gap_outs,
                max_outs=green_starts - gap_outs,
            )
        )
    warnings = {
        WarningKind.REAR_END.value: int(rng.poisson(2.0 * hours * 60)),
        WarningKind.VULNERABLE_ROAD_USER.value: int(rng.poisson(1.0 * hours * 60)),
    }
    return Aggregate(
        unit_id=unit_id,
        seq=seq,
        capture_time_s=interval_start_s + interval_s,
        publish_time_s=publish_time_s,
        interval_start_s=interval_start_s,
        interval_s=interval_s,
        lanes=lanes,
        lines=lines,
        phases=phases,
        warnings_by_kind={kind: count for kind, count in warnings.items() if count},
        detector_valid_ratio=float(rng.uniform(0.97, 1.0)),
    )


def mqtt_publish_frame_bytes(topic: str, payload_bytes: int) -> int:
    """Size of an MQTT v5 QoS 1 PUBLISH: fixed header, topic, packet id, empty properties, payload."""
    remaining = 2 + len(topic.encode()) + 2 + 1 + payload_bytes
    length_bytes = 1 if remaining < 128 else 2 if remaining < 16_384 else 3 if remaining < 2_097_152 else 4
    return 1 + length_bytes + remaining


def wire_bytes(topic: str, payload_bytes: int) -> int:
    frame = mqtt_publish_frame_bytes(topic, payload_bytes)
    return frame + math.ceil(frame / TCP_MSS_BYTES) * TCP_IP_HEADER_BYTES


# publishers (separate processes)


@dataclass(frozen=True)
class PublisherPlan:
    host: str
    port: int
    unit_ids: tuple[str, ...]
    topic_prefix: str
    intervals: int
    period_s: float
    interval_s: float
    jitter_fraction: float
    seed: int


@dataclass(frozen=True)
class PublisherReport:
    published: int
    acknowledged: int
    payload_bytes: int
    error: str = ""


def _publisher_main(
    plan: PublisherPlan,
    ready: multiprocessing.queues.Queue[str],
    go: multiprocessing.synchronize.Event,
    start_wall_s: Synchronized[float],
    reports: multiprocessing.queues.Queue[PublisherReport],
) -> None:
    try:
        reports.put(_publish_units(plan, ready, go, start_wall_s))
    except Exception as exc:  # reported to the parent, which shows it
        reports.put(PublisherReport(0, 0, 0, error=f"{type(exc).__name__}: {exc}"))


def _publish_units(
    plan: PublisherPlan,
    ready: multiprocessing.queues.Queue[str],
    go: multiprocessing.synchronize.Event,
    start_wall_s: Synchronized[float],
) -> PublisherReport:
    site = load_site_config(SAMPLE_SITE)
    rng = np.random.default_rng(plan.seed)
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=f"rsu-bench-publisher-{uuid.uuid4().hex[:8]}",
        protocol=mqtt.MQTTv5,
    )
    # Let QoS 1 messages stream without waiting for each PUBACK; never drop while queued.
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect(plan.host, plan.port, keepalive=30)
    client.loop_start()
    try:
        ready.put("ready")
        if not go.wait(60.0):
            raise TimeoutError("never told to start")
        start = start_wall_s.value
        offsets = rng.uniform(0.0, plan.jitter_fraction * plan.period_s, size=len(plan.unit_ids))
        schedule = sorted(
            (start + round_index * plan.period_s + float(offsets[unit_index]), round_index, unit_index)
            for round_index in range(plan.intervals)
            for unit_index in range(len(plan.unit_ids))
        )
        # Simulated intervals end at an aligned boundary just before the run starts.
        first_start_s = math.floor(start / plan.interval_s) * plan.interval_s - plan.intervals * plan.interval_s
        in_flight: list[mqtt.MQTTMessageInfo] = []
        payload_bytes = 0
        for due_s, round_index, unit_index in schedule:
            delay_s = due_s - time.time()
            if delay_s > 0:
                time.sleep(delay_s)
            unit_id = plan.unit_ids[unit_index]
            payload = realistic_aggregate(
                site,
                unit_id,
                seq=round_index,
                interval_start_s=first_start_s + round_index * plan.interval_s,
                interval_s=plan.interval_s,
                publish_time_s=time.time(),
                rng=rng,
            ).to_json()
            payload_bytes += len(payload)
            # A raw paho client stands in for many units at once: topic and QoS from the registry.
            topic = AGGREGATES.format(unit_id, centre_prefix=plan.topic_prefix)
            in_flight.append(client.publish(topic, payload, qos=AGGREGATES.qos, retain=AGGREGATES.retain))
        deadline = time.monotonic() + 30.0
        for info in in_flight:
            info.wait_for_publish(max(0.01, deadline - time.monotonic()))
        acknowledged = sum(info.is_published() for info in in_flight)
        return PublisherReport(len(in_flight), acknowledged, payload_bytes)
    finally:
        client.disconnect()
        client.loop_stop()


# the run


@dataclass(frozen=True)
class BenchOptions:
    units: int = 500
    intervals: int = 20
    period_s: float = 1.0
    interval_s: float = 60.0
    jitter_fraction: float = 0.1
    publisher_processes: int = 2
    broker: str | None = None  # "host:port" of a loopback broker; None starts a throwaway one
    timeout_s: float = 120.0
    camera_bitrate_mbps: float = DEFAULT_CAMERA_BITRATE_MBPS
    seed: int = 1


@dataclass(frozen=True)
class BenchResult:
    units: int
    intervals_per_unit: int
    publisher_processes: int
    period_s: float
    simulated_interval_s: float
    messages_expected: int
    messages_published: int
    messages_acknowledged_by_broker: int
    messages_stored: int
    duplicates: int
    invalid: int
    losses: int
    duration_s: float
    messages_per_s_sustained: float
    delay_p50_ms: float
    delay_p99_ms: float
    delay_max_ms: float
    mean_payload_bytes: float
    payload_bytes_1min: int
    payload_bytes_15min: int
    upstream_bytes_per_hour_1min: int
    upstream_bytes_per_hour_15min: int
    camera_bitrate_mbps: float
    camera_bytes_per_hour: int
    reduction_factor_1min: float
    reduction_factor_15min: float
    assumptions: str


def _require_loopback(host: str) -> None:
    try:
        address = ipaddress.ip_address(socket.gethostbyname(host))
    except (OSError, ValueError):
        raise ValueError(f"cannot resolve broker host {host!r}") from None
    if not address.is_loopback:
        raise ValueError(f"the load run only targets loopback brokers; {host} is {address}")


def _mean_payload_bytes(site: SiteConfig, interval_s: float, samples: int, seed: int) -> int:
    rng = np.random.default_rng(seed)
    now = time.time()
    sizes = [
        len(realistic_aggregate(site, "rsu-0001", 100_000 + i, now, interval_s, now, rng).to_json())
        for i in range(samples)
    ]
    return round(sum(sizes) / len(sizes))


def bandwidth_figures(site: SiteConfig, camera_bitrate_mbps: float, seed: int = 1) -> dict[str, int | float]:
    """Upstream bytes per hour for one intersection at 1- and 15-minute intervals vs. its camera."""
    topic = AGGREGATES.format(site.unit_id)
    payload_1min = _mean_payload_bytes(site, 60.0, 50, seed)
    payload_15min = _mean_payload_bytes(site, 900.0, 50, seed)
    per_hour_1min = 60 * wire_bytes(topic, payload_1min)
    per_hour_15min = 4 * wire_bytes(topic, payload_15min)
    camera = round(camera_bitrate_mbps * 1e6 / 8 * 3600)
    return {
        "payload_bytes_1min": payload_1min,
        "payload_bytes_15min": payload_15min,
        "upstream_bytes_per_hour_1min": per_hour_1min,
        "upstream_bytes_per_hour_15min": per_hour_15min,
        "camera_bytes_per_hour": camera,
        "reduction_factor_1min": camera / per_hour_1min,
        "reduction_factor_15min": camera / per_hour_15min,
    }


def run_bench(options: BenchOptions, db_path: str | Path | None = None) -> BenchResult:
    """db_path: an SQLite file, or postgresql://... (empty); default: a temporary SQLite file."""
    if options.units < 1 or options.intervals < 1 or options.publisher_processes < 1:
        raise ValueError("units, intervals and publisher processes must be at least 1")
    site = load_site_config(SAMPLE_SITE)
    run_id = uuid.uuid4().hex[:8]
    broker: EphemeralMosquitto | None = None
    if options.broker is None:
        # A centre broker sized to queue a whole run for the collector without dropping.
        broker = EphemeralMosquitto(max_queued_messages=0, name="bench")
        broker.start()
        host, port, topic_prefix = broker.host, broker.port, "centre"
    else:
        host, _, port_text = options.broker.rpartition(":")
        port = int(port_text)
        _require_loopback(host)
        # Own prefix so a shared development broker's other subscribers see none of this.
        topic_prefix = f"rsu-bench-{run_id}"
    workdir = Path(tempfile.mkdtemp(prefix="rsu-bench-uplink-"))  # holds the database unless db_path is given
    db = db_path or workdir / "centre.sqlite"
    try:
        with AggregateStore(db) as store:
            return _measure(options, site, store, host, port, topic_prefix, run_id)
    finally:
        if broker is not None:
            broker.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)


def _measure(
    options: BenchOptions,
    site: SiteConfig,
    store: AggregateStore,
    host: str,
    port: int,
    topic_prefix: str,
    run_id: str,
) -> BenchResult:
    collector = CentreCollector(
        MqttConfig(host=host, port=port),
        store,
        AGGREGATES.format("+", centre_prefix=topic_prefix),
        client_id=f"rsu-bench-centre-{run_id}",
        session_expiry_s=300,
    )
    collector.start()
    stop = threading.Event()
    collector_thread = threading.Thread(target=collector.run, args=(stop,), name="centre-collector", daemon=True)
    collector_thread.start()

    unit_ids = [f"rsu-bench-{index:04d}" for index in range(options.units)]
    shares = [tuple(unit_ids[i :: options.publisher_processes]) for i in range(options.publisher_processes)]
    context = multiprocessing.get_context("spawn")  # no fork of a process with paho threads
    ready: multiprocessing.queues.Queue[str] = context.Queue()
    reports: multiprocessing.queues.Queue[PublisherReport] = context.Queue()
    go = context.Event()
    start_wall_s: Synchronized[float] = context.Value("d", 0.0)
    processes = [
        context.Process(
            target=_publisher_main,
            args=(
                PublisherPlan(
                    host,
                    port,
                    share,
                    topic_prefix,
                    options.intervals,
                    options.period_s,
                    options.interval_s,
                    options.jitter_fraction,
                    options.seed + index,
                ),
                ready,
                go,
                start_wall_s,
                reports,
            ),
            name=f"bench-publisher-{index}",
        )
        for index, share in enumerate(shares)
        if share
    ]
    deadline = time.monotonic() + options.timeout_s
    publisher_reports: list[PublisherReport] = []
    try:
        for process in processes:
            process.start()
        for _ in processes:
            ready.get(timeout=max(0.1, deadline - time.monotonic()))
        start_wall_s.value = time.time() + 0.2
        go.set()
        for _ in processes:
            publisher_reports.append(reports.get(timeout=max(0.1, deadline - time.monotonic())))
        expected = options.units * options.intervals
        while collector.stored < expected and time.monotonic() < deadline:
            time.sleep(0.05)
    except queue.Empty:
        log.error("publishers did not finish within %.0f s", options.timeout_s)
    finally:
        stop.set()
        collector_thread.join(10.0)
        for process in processes:
            process.join(5.0)
            if process.is_alive():
                process.terminate()
                process.join(5.0)
    errors = [report.error for report in publisher_reports if report.error]
    if errors:
        raise RuntimeError(f"publisher failed: {errors[0]}")
    return _summarise(options, site, store, collector, publisher_reports)


def _summarise(
    options: BenchOptions,
    site: SiteConfig,
    store: AggregateStore,
    collector: CentreCollector,
    reports: list[PublisherReport],
) -> BenchResult:
    expected = options.units * options.intervals
    published = sum(report.published for report in reports)
    payload_total = sum(report.payload_bytes for report in reports)
    delays_s = np.array([row[0] for row in store.query("SELECT stored_time_s - publish_time_s FROM intervals")])
    stored = len(delays_s)
    first_publish_s, last_stored_s = store.query("SELECT MIN(publish_time_s), MAX(stored_time_s) FROM intervals")[0]
    duration_s = (last_stored_s - first_publish_s) if stored else 0.0
    figures = bandwidth_figures(site, options.camera_bitrate_mbps, options.seed)

    def percentile_ms(q: float) -> float:
        return float(np.percentile(delays_s, q) * 1000) if stored else math.nan

    return BenchResult(
        units=options.units,
        intervals_per_unit=options.intervals,
        publisher_processes=options.publisher_processes,
        period_s=options.period_s,
        simulated_interval_s=options.interval_s,
        messages_expected=expected,
        messages_published=published,
        messages_acknowledged_by_broker=sum(report.acknowledged for report in reports),
        messages_stored=stored,
        duplicates=collector.duplicates,
        invalid=collector.invalid,
        losses=expected - stored,
        duration_s=duration_s,
        messages_per_s_sustained=stored / duration_s if duration_s > 0 else math.nan,
        delay_p50_ms=percentile_ms(50),
        delay_p99_ms=percentile_ms(99),
        delay_max_ms=percentile_ms(100),
        mean_payload_bytes=payload_total / published if published else math.nan,
        payload_bytes_1min=int(figures["payload_bytes_1min"]),
        payload_bytes_15min=int(figures["payload_bytes_15min"]),
        upstream_bytes_per_hour_1min=int(figures["upstream_bytes_per_hour_1min"]),
        upstream_bytes_per_hour_15min=int(figures["upstream_bytes_per_hour_15min"]),
        camera_bitrate_mbps=options.camera_bitrate_mbps,
        camera_bytes_per_hour=int(figures["camera_bytes_per_hour"]),
        reduction_factor_1min=float(figures["reduction_factor_1min"]),
        reduction_factor_15min=float(figures["reduction_factor_15min"]),
        assumptions=(
            f"camera: one 1080p H.264 stream at {options.camera_bitrate_mbps:g} Mbit/s; aggregates: sample "
            f"8-lane site ({len(site.lanes)} lanes, {len(site.counting_lines)} counting lines, "
            f"{len(site.signal_groups)} signal groups), JSON, MQTT v5 QoS 1 PUBLISH plus TCP/IPv4 headers "
            f"({TCP_IP_HEADER_BYTES} B per {TCP_MSS_BYTES} B segment); TLS (~30 B/record) and keepalives "
            "not counted; units simulated by "
            f"{options.publisher_processes} publisher processes with one MQTT client each"
        ),
    )


def render_table(result: BenchResult) -> str:
    acceleration = result.simulated_interval_s / result.period_s if result.period_s > 0 else math.inf
    rows = [
        ("units (simulated intersections)", f"{result.units}"),
        ("intervals per unit", f"{result.intervals_per_unit}"),
        (
            "pace",
            f"{result.simulated_interval_s:g} s intervals every {result.period_s:g} s ({acceleration:g}x)"
            if result.period_s > 0
            else "as fast as possible",
        ),
        ("publisher processes / clients", f"{result.publisher_processes}"),
        ("messages expected / published", f"{result.messages_expected} / {result.messages_published}"),
        ("messages stored", f"{result.messages_stored}"),
        ("duplicates dropped", f"{result.duplicates}"),
        ("invalid", f"{result.invalid}"),
        ("losses", f"{result.losses}"),
        ("duration (first publish -> last stored)", f"{result.duration_s:.2f} s"),
        ("messages/s sustained", f"{result.messages_per_s_sustained:.0f}"),
        (
            "end-to-end delay p50 / p99 / max",
            f"{result.delay_p50_ms:.1f} / {result.delay_p99_ms:.1f} / {result.delay_max_ms:.1f} ms",
        ),
        ("mean payload", f"{result.mean_payload_bytes:.0f} B"),
        (
            "upstream per intersection, 1-min",
            f"{_human(result.upstream_bytes_per_hour_1min)}/h ({result.payload_bytes_1min} B payload x 60)",
        ),
        (
            "upstream per intersection, 15-min",
            f"{_human(result.upstream_bytes_per_hour_15min)}/h ({result.payload_bytes_15min} B payload x 4)",
        ),
        (
            "raw camera stream (assumed)",
            f"{_human(result.camera_bytes_per_hour)}/h ({result.camera_bitrate_mbps:g} Mbit/s)",
        ),
        (
            "camera / aggregates",
            f"{result.reduction_factor_1min:,.0f}x (1-min), {result.reduction_factor_15min:,.0f}x (15-min)",
        ),
    ]
    width = max(len(name) for name, _ in rows)
    lines = ["uplink load run (loopback)", *(f"  {name:<{width}}  {value}" for name, value in rows)]
    lines.append(f"  assumptions: {result.assumptions}")
    return "\n".join(lines)


def _human(size_bytes: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if size_bytes < 1000 or unit == "GB":
            return f"{size_bytes:.1f} {unit}" if unit != "B" else f"{size_bytes:.0f} B"
        size_bytes /= 1000
    raise AssertionError("unreachable")


# command line


def add_bench_uplink_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser], name: str = "uplink"
) -> argparse.ArgumentParser:
    """Add the load run of units -> broker -> centre collector (`rsu bench uplink`)."""
    defaults = BenchOptions()
    parser = subparsers.add_parser(
        name,
        help="load run: N simulated units publish aggregates through one broker into the centre collector",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument("--units", type=int, default=defaults.units, help=f"simulated units (default {defaults.units})")
    parser.add_argument(
        "--intervals", type=int, default=defaults.intervals, help=f"intervals per unit (default {defaults.intervals})"
    )
    parser.add_argument(
        "--period-s",
        type=float,
        default=defaults.period_s,
        help="wall seconds between a unit's intervals (default 1.0; 0 = as fast as possible)",
    )
    parser.add_argument("--interval-s", type=float, default=defaults.interval_s, help="simulated interval length")
    parser.add_argument("--processes", type=int, default=defaults.publisher_processes, help="publisher processes")
    parser.add_argument(
        "--broker", default=None, help="HOST:PORT of a loopback broker (default: start a throwaway Mosquitto)"
    )
    parser.add_argument("--timeout-s", type=float, default=defaults.timeout_s, help="hard limit for the run")
    parser.add_argument("--camera-mbps", type=float, default=defaults.camera_bitrate_mbps, help="assumed camera rate")
    parser.add_argument("--json", default=None, help="write the figures here (default: a file in the temp folder)")
    parser.add_argument(
        "--db", default=None, help="keep the centre database here, or postgresql://... (default: temporary SQLite)"
    )
    parser.set_defaults(handler=run_bench_uplink_command)
    return parser


def run_bench_uplink_command(args: argparse.Namespace) -> int:
    options = BenchOptions(
        units=args.units,
        intervals=args.intervals,
        period_s=args.period_s,
        interval_s=args.interval_s,
        publisher_processes=args.processes,
        broker=args.broker,
        timeout_s=args.timeout_s,
        camera_bitrate_mbps=args.camera_mbps,
    )
    try:
        result = run_bench(options, args.db)
    except (ValueError, OSError, RuntimeError, BrokerUnavailable) as exc:
        print(f"rsu bench uplink: error: {exc}", file=sys.stderr)
        return 2
    print(render_table(result))
    json_path = Path(args.json) if args.json else Path(tempfile.gettempdir()) / "rsu-bench-uplink.json"
    json_path.write_text(json.dumps(asdict(result), indent=2) + "\n")
    print(f"  figures written to {json_path}")
    return 0 if result.losses == 0 and result.invalid == 0 else 1


def main(argv: list[str] | None = None) -> int:
    """`python -m rsu_tools.bench.uplink [options]`: the same as `rsu bench uplink [options]`."""
    parser = argparse.ArgumentParser(prog="rsu")
    add_bench_uplink_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["uplink", *(sys.argv[1:] if argv is None else argv)])
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    return run_bench_uplink_command(args)


if __name__ == "__main__":
    sys.exit(main())
