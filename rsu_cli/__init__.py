"""The `rsu` command line."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

from rsu.runtime.mqtt import BrokerUnavailable
from rsu.runtime.preflight import PreflightError, RedisUnavailable
from rsu.runtime.shutdown import EXIT_REQUESTED_STOP
from rsu.runtime.stage import RunOptions
from rsu.samples import SAMPLE_SITE
from rsu_contracts.config import ConfigError, load_site_config


def _demo(args: argparse.Namespace) -> int:
    from rsu.demo import run_demo

    summary = run_demo(Path(args.site), duration_s=args.duration_s, realtime=args.realtime, seed=args.seed)
    print(summary.render())
    # 1: the unit sent something its own readers could not parse; otherwise 0, also when the run
    # was stopped early by Ctrl-C or SIGTERM (EXIT_REQUESTED_STOP: it ended as asked).
    if summary.invalid_messages:
        return 1
    return EXIT_REQUESTED_STOP if summary.stopped_by else 0


def _run(args: argparse.Namespace) -> int:
    from rsu.demo import Observer, render_line_counts
    from rsu.runtime.bus import MqttBus
    from rsu.unit import Unit, plays_recorded_video

    site_path = Path(args.config)
    site = load_site_config(site_path)
    # A recorded clip runs on its own timestamps (as fast as the box can go); live sources on the wall clock.
    realtime = site.is_simulated or not plays_recorded_video(site)
    # A simulated junction on the wall clock starts its time now, so its timestamps are fresh for
    # the stages' input checks, which measure age on the wall clock (rsu.runtime.input_guard).
    sim_epoch_s = time.time() if site.is_simulated and realtime else 0.0
    unit = Unit(site_path, RunOptions(realtime=realtime, seed=args.seed, sim_epoch_s=sim_epoch_s))
    unit.preflight()
    observer = Observer(unit.topics, MqttBus(site.mqtt, f"{site.unit_id}-run-observer-{os.getpid()}"), sim_epoch_s)
    observer.start()
    try:
        stopped_by = unit.run_forever(on_tick=observer.pump)
    finally:
        observer.pump()
        observer.bus.close()
    seen = observer.seen
    how = f"stopped by {stopped_by}" if stopped_by else "stopped at the end of its input"
    print(f"rsu run: unit {site.unit_id} {how}")
    for name, trouble in sorted(unit.supervisor.troubled_stages().items()):
        print(f"  stage {name:<12} {trouble}")
    print(f"  warnings sent          {sum(seen.warnings_new.values())} {dict(seen.warnings_new) or ''}")
    print(f"  aggregates delivered   {len(seen.aggregates)}")
    print("  counted at the lines:")
    print(render_line_counts(seen.line_counts))
    print("  messages per topic:")
    for topic, count in sorted(seen.messages_per_topic.items()):
        print(f"    {count:>8}  {topic}")
    # A requested stop (Ctrl-C, systemd's stop) is a normal end: EXIT_REQUESTED_STOP.
    return EXIT_REQUESTED_STOP if stopped_by else 0


def _check_config(args: argparse.Namespace) -> int:
    site = load_site_config(Path(args.config))
    print(
        f"{args.config}: valid site config for unit {site.unit_id}: {len(site.approaches)} approaches, "
        f"{len(site.lanes)} lanes, {len(site.signal_groups)} signal groups, {len(site.cameras)} camera(s)"
    )
    return 0


def _schemas(args: argparse.Namespace) -> int:
    from rsu_contracts.messages.schemas import write_schema_files
    from v2x.wire import JSON_SCHEMAS

    for path in write_schema_files(JSON_SCHEMAS.values(), Path(args.out)):
        print(path)
    return 0


def _site_reference(args: argparse.Namespace) -> int:
    from rsu_contracts.config.reference import write_site_reference

    for path in write_site_reference(Path(args.doc), Path(args.schema)):
        print(path)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rsu", description="rsu-edge: the roadside traffic edge unit")
    parser.add_argument("-v", "--verbose", action="store_true", help="log stage activity")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="run the whole unit on the simulated sample intersection")
    demo.add_argument("--site", default=str(SAMPLE_SITE), help="site config with a simulated camera")
    demo.add_argument("--duration-s", type=float, default=600.0, help="simulated seconds to run (default 600)")
    demo.add_argument("--realtime", action="store_true", help="run at wall-clock speed instead of lock-step")
    demo.add_argument("--seed", type=int, default=42)
    demo.set_defaults(handler=_demo)

    run = commands.add_parser(
        "run",
        help="run the unit for a site (real camera or simulation) until stopped",
        description="Run the unit until Ctrl-C or SIGTERM (exit 0 after a clean stop, 2 when a check before "
        "start fails) or until a recorded clip has been played to its end.",
    )
    run.add_argument("--config", required=True, help="site config YAML")
    run.add_argument("--seed", type=int, default=42)
    run.set_defaults(handler=_run)

    check = commands.add_parser("check-config", help="validate a site config and say what is wrong")
    check.add_argument("config")
    check.set_defaults(handler=_check_config)

    schemas = commands.add_parser("schemas", help="write the JSON Schema of every message, one file per schema")
    schemas.add_argument("--out", default="docs/schemas", help="folder to write into (default docs/schemas)")
    schemas.set_defaults(handler=_schemas)

    from rsu_contracts.config.reference import DEFAULT_REFERENCE_PATH, DEFAULT_SCHEMA_PATH

    reference = commands.add_parser(
        "site-reference", help="write the site file reference (Markdown) and its JSON Schema from the config model"
    )
    reference.add_argument(
        "--doc", default=str(DEFAULT_REFERENCE_PATH), help=f"Markdown file (default {DEFAULT_REFERENCE_PATH})"
    )
    reference.add_argument(
        "--schema", default=str(DEFAULT_SCHEMA_PATH), help=f"JSON Schema file (default {DEFAULT_SCHEMA_PATH})"
    )
    reference.set_defaults(handler=_site_reference)

    from rsu.centre.collector import add_centre_parser
    from rsu.detectors.export import add_export_parser
    from rsu.doctor import add_doctor_parser
    from rsu.uplink.bridge import add_bridge_parser
    from rsu_clients.priority_requester import add_priority_parser
    from rsu_clients.vehicle import add_vehicle_parser
    from rsu_tools.bench.conflicts import add_bench_conflicts_parser
    from rsu_tools.bench.latency import add_bench_latency_parser
    from rsu_tools.bench.perception import add_bench_perception_parser
    from rsu_tools.bench.signal import add_bench_signal_parser
    from rsu_tools.bench.uplink import add_bench_uplink_parser
    from rsu_tools.track_export import add_track_parser

    bench = commands.add_parser("bench", help="benchmarks: each prints a table and writes JSON")
    benches = bench.add_subparsers(dest="bench", required=True)
    add_bench_uplink_parser(benches)
    add_bench_signal_parser(benches)
    add_bench_perception_parser(benches)
    add_bench_latency_parser(benches)
    add_bench_conflicts_parser(benches)
    add_centre_parser(commands)
    add_doctor_parser(commands)
    add_export_parser(commands)
    add_track_parser(commands)
    add_bridge_parser(commands)
    add_vehicle_parser(commands)
    add_priority_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.verbose:
        os.environ["RSU_LOG_LEVEL"] = "INFO"  # inherited by the stage processes
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    try:
        return int(args.handler(args))
    except (ConfigError, BrokerUnavailable, RedisUnavailable, PreflightError) as exc:
        print(f"rsu: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
