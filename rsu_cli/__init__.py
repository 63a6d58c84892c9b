"""The `rsu` command line."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from rsu.runtime.mqtt import BrokerUnavailable
from rsu.runtime.preflight import PreflightError, RedisUnavailable
from rsu.runtime.shutdown import EXIT_REQUESTED_STOP
from rsu.runtime.stage import RunOptions
from rsu.samples import SAMPLE_SITE
from rsu_contracts.config import ConfigError, load_site_config
from rsu_contracts.enums import CameraSource


def _allow_open_bus(args: argparse.Namespace) -> None:
    """--allow-open-bus: the preflight (in this process) accepts an anonymously writable broker."""
    from rsu.runtime.preflight import ALLOW_OPEN_BUS_VARIABLE

    if getattr(args, "allow_open_bus", False):
        os.environ[ALLOW_OPEN_BUS_VARIABLE] = "1"


if TYPE_CHECKING:
    from rsu.demo import Observation


def start_line(command: str, site_path: Path, verbose: bool) -> str:
    """What a person needs at start: which unit, which site, where its page is, where logs go."""
    site = load_site_config(site_path)
    name = f" ({site.name})" if site.name else ""
    level = "stage activity (-v)" if verbose else "warnings and errors; -v for stage activity"
    return (
        f"rsu {command}: unit {site.unit_id}, site {site_path}{name}; "
        f"web page http://{site.web.host}:{site.web.port}/; logs to stderr ({level})"
    )


def _demo(args: argparse.Namespace) -> int:
    if getattr(args, "cabinet", None) == "ntcip":
        import tempfile

        from rsu_tools.cabinet.demo import virtual_cabinet_site

        print(start_line("demo", Path(args.site), args.verbose), flush=True)
        with (
            tempfile.TemporaryDirectory(prefix="rsu-demo-cabinet-") as folder,
            virtual_cabinet_site(Path(args.site), Path(folder)) as (cabinet_site, agent),
        ):
            print(
                "rsu demo: the unit drives a virtual NEMA cabinet over NTCIP 1202 "
                f"(SNMP on 127.0.0.1:{agent.port}, its own process); the simulated lamps follow the cabinet; real time",
                file=sys.stderr,
            )
            return _demo_on(args, cabinet_site, realtime=True)
    print(start_line("demo", Path(args.site), args.verbose), flush=True)
    return _demo_on(args, Path(args.site), realtime=args.realtime)


def _demo_on(args: argparse.Namespace, site_path: Path, realtime: bool) -> int:
    from rsu.demo import run_demo
    from rsu.runtime.preflight import open_bus_allowed

    _allow_open_bus(args)
    site = load_site_config(site_path)
    if open_bus_allowed(site.mqtt) or site.mqtt.credentials_dir is not None:
        # The site's own broker: already secured (credentials_dir), or open by explicit choice
        # (--allow-open-bus, RSU_ALLOW_OPEN_BUS, mqtt.allow_open_bus).
        summary = run_demo(site_path, duration_s=args.duration_s, realtime=realtime, seed=args.seed)
    else:
        # The unit's own private broker, secured as deployed: per-stage logins, no anonymous clients.
        from rsu_tools.secured_broker import SecuredMosquitto
        from rsu_tools.testing.mosquitto import MosquittoNotFound

        try:
            broker = SecuredMosquitto(site, name="demo")
        except MosquittoNotFound as exc:
            print(f"rsu: error: {exc} (or run the demo on an open broker with --allow-open-bus)", file=sys.stderr)
            return 2
        with broker:
            print(
                f"rsu demo: the unit's bus is a private Mosquitto on {broker.host}:{broker.port} "
                "(one login per stage, no anonymous clients)",
                file=sys.stderr,
            )
            demo_site = broker.site_file()
            summary = run_demo(demo_site, duration_s=args.duration_s, realtime=realtime, seed=args.seed)
    print(summary.render())
    # 1: the unit sent something its own readers could not parse; otherwise 0, also when the run
    # was stopped early by Ctrl-C or SIGTERM (EXIT_REQUESTED_STOP: it ended as asked).
    if summary.invalid_messages:
        return 1
    return EXIT_REQUESTED_STOP if summary.stopped_by else 0


def _run(args: argparse.Namespace) -> int:
    from rsu.demo import Observer, render_line_counts
    from rsu.runtime.broker_config import stage_login
    from rsu.runtime.bus import MqttBus
    from rsu.stages.v2x import topic_layout as wire_layout
    from rsu.unit import Unit, plays_recorded_video
    from rsu_contracts.bus_roles import BusRole

    _allow_open_bus(args)
    site_path = Path(args.config)
    site = load_site_config(site_path)
    print(start_line("run", site_path, args.verbose), flush=True)
    # A recorded clip runs on its own timestamps (as fast as the box can go); live sources on the wall clock.
    realtime = site.is_simulated or not plays_recorded_video(site)
    # A simulated junction on the wall clock starts its time now, so its timestamps are fresh for
    # the stages' input checks, which measure age on the wall clock (rsu.runtime.input_guard).
    sim_epoch_s = time.time() if site.is_simulated and realtime else 0.0
    unit = Unit(site_path, RunOptions(realtime=realtime, seed=args.seed, sim_epoch_s=sim_epoch_s))
    unit.preflight()
    observer = Observer(
        unit.topics,
        MqttBus(stage_login(site, BusRole.MONITOR), f"{site.unit_id}-run-observer-{os.getpid()}"),
        sim_epoch_s,
        wire_layout(site),
    )
    observer.start()
    started_s = time.monotonic()
    next_status_s = started_s + STATUS_PERIOD_S

    def on_tick() -> None:
        nonlocal next_status_s
        observer.pump()
        now_s = time.monotonic()
        if now_s >= next_status_s:
            next_status_s = now_s + STATUS_PERIOD_S
            print(status_line(observer.seen, unit.topics.tracks, now_s - started_s), flush=True)

    try:
        stopped_by = unit.run_forever(on_tick=on_tick)
    finally:
        observer.pump()
        observer.bus.close()
    seen = observer.seen
    how = f"stopped by {stopped_by}" if stopped_by else "stopped at the end of its input"
    print(f"rsu run: unit {site.unit_id} {how}")
    for name, trouble in sorted(unit.supervisor.troubled_stages().items()):
        print(f"  stage {name:<12} {trouble}")
    kinds = ", ".join(f"{kind} {count}" for kind, count in sorted(seen.warnings_new.items()))
    print(f"  warnings sent          {sum(seen.warnings_new.values())}" + (f" ({kinds})" if kinds else ""))
    print(f"  aggregates delivered   {len(seen.aggregates)}" + _why_no_aggregates(seen, site.uplink.interval_s))
    print("  counted at the lines:")
    print(render_line_counts(seen.line_counts))
    print("  messages per topic:")
    for topic, count in sorted(seen.messages_per_topic.items()):
        print(f"    {count:>8}  {topic}")
    # A requested stop (Ctrl-C, systemd's stop) is a normal end: EXIT_REQUESTED_STOP.
    return EXIT_REQUESTED_STOP if stopped_by else 0


def _broker_config(args: argparse.Namespace) -> int:
    from rsu.runtime.broker_config import DEFAULT_VEHICLE_PORT, BrokerConfigError, Listeners, write_broker_config

    site = load_site_config(Path(args.site))
    if (args.certfile is None) != (args.keyfile is None):
        print("rsu: error: --certfile and --keyfile go together", file=sys.stderr)
        return 2
    listeners = Listeners(
        local_host=args.local_host or site.mqtt.host,
        local_port=args.local_port or site.mqtt.port,
        vehicle_host=args.vehicle_host,
        vehicle_port=args.vehicle_port or DEFAULT_VEHICLE_PORT,
        certfile=Path(args.certfile) if args.certfile else None,
        keyfile=Path(args.keyfile) if args.keyfile else None,
    )
    try:
        files = write_broker_config(site, Path(args.out), listeners, args.vehicle, rotate=args.rotate)
    except BrokerConfigError as exc:
        print(f"rsu: error: {exc}", file=sys.stderr)
        return 2
    print(f"rsu broker-config: unit {site.unit_id}, broker files in {files.folder}")
    print(f"  mosquitto.conf   mosquitto -c {files.conf}")
    print(f"  local listener   {listeners.local_host}:{listeners.local_port}  logins: {', '.join(files.unit_logins)}")
    vehicles = ", ".join(files.vehicle_logins) or "(none: add them with --vehicle NAME)"
    print(f"  vehicle listener {listeners.vehicle_host}:{listeners.vehicle_port}  logins: {vehicles}")
    print(f"  passwords        {files.credentials} (mode 0600)")
    print(f"  site file        mqtt: {{credentials_dir: {files.credentials}}}")
    return 0


STATUS_PERIOD_S = 5.0


def status_line(seen: Observation, tracks_topic: str, elapsed_s: float) -> str:
    """One line of `rsu run`'s sign of life: frames, tracked objects, controller mode, warnings, aggregates."""
    return (
        f"rsu run: {elapsed_s:.0f} s: frames {seen.messages_per_topic.get(tracks_topic, 0)}, "
        f"tracks {seen.latest_objects}, mode {seen.latest_mode or 'not yet decided'}, "
        f"warnings {sum(seen.warnings_new.values())}, aggregates {len(seen.aggregates)}"
    )


def _why_no_aggregates(seen: Observation, interval_s: float) -> str:
    if seen.aggregates:
        return ""
    covered_s = seen.covered_s
    if covered_s < interval_s:
        return f" (the input covered {covered_s:.0f} s, shorter than the {interval_s:.0f} s interval)"
    return f" (the input covered {covered_s:.0f} s, but no sealed interval reached the centre: see the uplink's log)"


def _check_config(args: argparse.Namespace) -> int:
    from rsu.detectors.base import DetectorError
    from rsu.detectors.model_input import check_camera_input_size

    path = Path(args.config)
    site = load_site_config(path)
    # An exported model's input size is fixed: a detector.imgsz that differs is an error, found here.
    problems: list[str] = []
    for camera in site.cameras:
        if camera.source is not CameraSource.VIDEO:
            continue
        try:
            check_camera_input_size(camera, path.resolve().parent)
        except DetectorError as exc:
            problems.append(str(exc))
    if problems:
        for problem in problems:
            print(f"rsu: error: {args.config}: {problem}", file=sys.stderr)
        return 2
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


def _site_from_sumo(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from rsu_contracts.config.model import SiteConfig
    from rsu_tools.site_builders.sumo_net import SumoNetError, import_site, to_yaml

    reference = None
    if args.reference:
        try:
            latitude, longitude = (float(value) for value in args.reference.split(","))
        except ValueError:
            print(f"rsu: error: --reference {args.reference!r}: expected LAT,LON in degrees", file=sys.stderr)
            return 2
        reference = (latitude, longitude)
    out = Path(args.out) if args.out else Path(args.net).with_suffix("").with_suffix(".site.yaml")
    try:
        imported = import_site(args.net, args.tls, out, unit_id=args.unit_id, routes=args.routes, reference=reference)
        SiteConfig.model_validate(imported.site)
    except (SumoNetError, OSError) as exc:
        print(f"rsu: error: {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:
        hint = ""
        if any(error["loc"][:1] == ("reference",) for error in exc.errors()):
            hint = " (the network has no UTM projection: give --reference LAT,LON of the junction centre)"
        print(f"rsu: error: the imported site does not validate{hint}:\n{exc}", file=sys.stderr)
        return 2
    out.write_text(to_yaml(imported, f"{args.net} --tls {args.tls}"), encoding="utf-8")
    site = imported.site
    print(
        f"{out}: {len(site['approaches'])} approaches, {sum(len(a['lanes']) for a in site['approaches'])} lanes, "
        f"{len(site['signal_groups'])} signal groups ({'NEMA numbered' if imported.nema else 'no NEMA numbering'}), "
        f"{len(site['conflicts'])} conflicts, {len(site['controller']['stages'])} stages"
    )
    for note in imported.notes:
        print(f"  note: {note}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rsu", description="rsu-edge: the roadside traffic edge unit")
    parser.add_argument("-v", "--verbose", action="store_true", help="log stage activity")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser(
        "demo",
        help="run the whole unit on the simulated sample intersection",
        description="Run the whole unit (every stage, the real broker and Redis) on a simulated "
        "intersection (SUMO) for --duration-s simulated seconds, faster than real time unless "
        "--realtime, then print a summary. Exit 0 after a full or requested stop, 1 when a message "
        "could not be parsed by its readers, 2 when a check before start fails.",
    )
    demo.add_argument(
        "--site", default=str(SAMPLE_SITE), help=f"site config with a simulated camera (default {SAMPLE_SITE})"
    )
    demo.add_argument("--duration-s", type=float, default=600.0, help="simulated seconds to run (default 600)")
    demo.add_argument("--realtime", action="store_true", help="run at wall-clock speed instead of lock-step")
    demo.add_argument(
        "--seed", type=int, default=42, help="seed of the simulated demand: same seed, same run (default 42)"
    )
    demo.add_argument(
        "--allow-open-bus",
        action="store_true",
        help="use the site's broker as it is, even when anonymous clients can write it (development only); "
        "without it the demo runs on its own private secured Mosquitto",
    )
    demo.add_argument(
        "--cabinet",
        choices=["ntcip"],
        help="ntcip: drive a virtual NEMA signal cabinet over NTCIP 1202 (SNMP, its own process) whose outputs "
        "drive the simulated lamps; runs in real time",
    )
    demo.set_defaults(handler=_demo)

    run = commands.add_parser(
        "run",
        help="run the unit for a site (real camera or simulation) until stopped",
        description="Run the unit until Ctrl-C or SIGTERM (exit 0 after a clean stop, 2 when a check before "
        "start fails) or until a recorded clip has been played to its end.",
    )
    run.add_argument("--config", required=True, help="site config YAML")
    run.add_argument("--seed", type=int, default=42, help="seed of a simulated site's demand (default 42)")
    run.add_argument(
        "--allow-open-bus",
        action="store_true",
        help="start even when anonymous clients can write the unit's broker (development only; logged as a WARNING)",
    )
    run.set_defaults(handler=_run)

    broker = commands.add_parser(
        "broker-config",
        help="write a secured Mosquitto for a unit: per-stage logins, ACLs from the topic registry",
        description="Write mosquitto.conf, the access lists and password files of the unit's broker, and one "
        "password file per login (mode 0600) in OUT/credentials, the site's mqtt.credentials_dir. Passwords are "
        "kept when run again (--rotate: new ones).",
    )
    broker.add_argument("--site", required=True, help="site config YAML")
    broker.add_argument("--out", required=True, help="folder to write into (keep it out of version control)")
    broker.add_argument(
        "--vehicle",
        action="append",
        default=[],
        metavar="LOGIN",
        help="a vehicle or priority requester login (repeatable)",
    )
    broker.add_argument("--local-host", default=None, help="local listener address (default: the site's mqtt.host)")
    broker.add_argument("--local-port", type=int, default=None, help="local listener port (default: mqtt.port)")
    broker.add_argument("--vehicle-host", default="0.0.0.0", help="vehicle listener address (default 0.0.0.0)")
    broker.add_argument("--vehicle-port", type=int, default=None, help="vehicle listener port (default 8883)")
    broker.add_argument("--certfile", default=None, help="TLS certificate of the vehicle listener (PEM)")
    broker.add_argument("--keyfile", default=None, help="its private key (PEM)")
    broker.add_argument("--rotate", action="store_true", help="generate new passwords for every login")
    broker.set_defaults(handler=_broker_config)

    check = commands.add_parser(
        "check-config",
        help="validate a site config and say what is wrong",
        description="Load and validate a site config without starting anything: print a one-line summary "
        "(exit 0), or every problem with the file and the path of the field (exit 2).",
    )
    check.add_argument("config", help="site config YAML")
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

    site = commands.add_parser("site", help="build site files")
    site_commands = site.add_subparsers(dest="site_command", required=True)
    from_sumo = site_commands.add_parser(
        "from-sumo",
        help="write a site file for one traffic light of a SUMO network",
        description="Approaches, lanes and movements, signal groups from the traffic light's link indices, "
        "conflicts from the junction's foe matrix, NEMA numbering where it fits, stages from its program, "
        "geometry in metres around the junction centre.",
    )
    from_sumo.add_argument("net", help="SUMO network (.net.xml)")
    from_sumo.add_argument("--tls", required=True, help="id of the traffic light")
    from_sumo.add_argument("--out", help="site file to write (default: beside the network, NAME.site.yaml)")
    from_sumo.add_argument("--unit-id", help="the unit's id (default: sumo-<junction id>)")
    from_sumo.add_argument(
        "--routes", help="route file for the simulation section (default: from a .sumocfg beside it)"
    )
    from_sumo.add_argument(
        "--reference", help="LAT,LON of the junction centre (default: from the network's UTM projection)"
    )
    from_sumo.set_defaults(handler=_site_from_sumo)

    from rsu.centre.collector import add_centre_parser
    from rsu.detectors.export import add_export_parser
    from rsu.doctor import add_doctor_parser
    from rsu.uplink.bridge import add_bridge_parser
    from rsu_clients.priority_requester import add_priority_parser
    from rsu_clients.vehicle import add_vehicle_parser
    from rsu_tools.bench.cabinet import add_bench_cabinet_parser
    from rsu_tools.bench.conflicts import add_bench_conflicts_parser
    from rsu_tools.bench.latency import add_bench_latency_parser
    from rsu_tools.bench.perception import add_bench_perception_parser
    from rsu_tools.bench.resco import add_bench_cologne_parser
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
    add_bench_cologne_parser(benches)
    add_bench_cabinet_parser(benches)
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
