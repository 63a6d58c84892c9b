"""`rsu bench latency` on the command line (and `python -m rsu_tools.bench.latency`): options, exit code."""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

from rsu.runtime.bus import BrokerUnavailable
from rsu_tools.bench.latency.plan import LatencyOptions
from rsu_tools.bench.latency.report import render_table, write_json
from rsu_tools.bench.latency.runner import run_bench


def add_bench_latency_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser], name: str = "latency"
) -> argparse.ArgumentParser:
    """Add `rsu bench latency`."""
    import rsu_tools.bench.latency as package  # its docstring describes the command

    defaults = LatencyOptions()
    parser = subparsers.add_parser(
        name,
        help="camera-to-vehicle warning latency on real footage, and warning fan-out to many vehicles",
        description=package.__doc__.split("\n\n")[0] if package.__doc__ else None,
    )
    parser.add_argument("--site", default=str(defaults.site), help="site file with a video camera (default: OTC)")
    parser.add_argument("--clip", default=None, help="video file instead of the site camera's uri")
    parser.add_argument("--fps", type=float, default=defaults.fps, help=f"frames per second (default {defaults.fps:g})")
    parser.add_argument(
        "--frames", type=int, default=defaults.frames, help=f"frames to run (default {defaults.frames})"
    )
    parser.add_argument(
        "--imgsz",
        default=str(defaults.imgsz),
        help=f"detector input size, or 'site' for the site file's (default {defaults.imgsz})",
    )
    parser.add_argument("--threads", type=int, default=None, help="detector threads (default: the site's)")
    parser.add_argument("--broker", default=None, help="HOST:PORT of a loopback broker (default: the site's)")
    parser.add_argument("--clients", type=int, default=defaults.clients, help=f"fan-out clients ({defaults.clients})")
    parser.add_argument(
        "--client-processes",
        type=int,
        default=defaults.client_processes,
        help=f"processes the fan-out clients are spread over ({defaults.client_processes})",
    )
    parser.add_argument(
        "--fanout-messages",
        type=int,
        default=defaults.fanout_messages,
        help=f"messages sent in the fan-out run ({defaults.fanout_messages})",
    )
    parser.add_argument(
        "--fanout-rate-hz",
        type=float,
        default=defaults.fanout_rate_hz,
        help=f"rate of the fan-out messages ({defaults.fanout_rate_hz} Hz)",
    )
    parser.add_argument(
        "--client-kind",
        choices=["raw", "paho"],
        default=defaults.client_kind,
        help="fan-out clients: raw MQTT v5 sessions noting arrival (default) or paho clients",
    )
    parser.add_argument(
        "--realtime-priority",
        type=int,
        default=None,
        help="SCHED_RR priority of the warning path and the vehicle process (default: the site's "
        "v2x.realtime_priority; 0: normal scheduling)",
    )
    parser.add_argument("--no-path", action="store_true", help="skip (a), the camera-to-vehicle path")
    parser.add_argument("--no-fanout", action="store_true", help="skip (b), the fan-out")
    parser.add_argument("--json", default=None, help="write the figures here (default: a file in the temp folder)")
    parser.set_defaults(handler=run_bench_latency_command)
    return parser


def run_bench_latency_command(args: argparse.Namespace) -> int:
    try:
        options = LatencyOptions(
            site=Path(args.site),
            clip=args.clip,
            fps=args.fps,
            frames=args.frames,
            imgsz=None if args.imgsz == "site" else int(args.imgsz),
            threads=args.threads,
            broker=args.broker,
            clients=args.clients,
            client_processes=args.client_processes,
            fanout_messages=args.fanout_messages,
            fanout_rate_hz=args.fanout_rate_hz,
            client_kind=args.client_kind,
            run_path=not args.no_path,
            run_fanout=not args.no_fanout,
            realtime_priority=args.realtime_priority,
        )
        result = run_bench(options)
    except (ValueError, OSError, RuntimeError, BrokerUnavailable) as exc:
        print(f"rsu bench latency: error: {exc}", file=sys.stderr)
        return 2
    print(render_table(result))
    json_path = write_json(
        result, Path(args.json) if args.json else Path(tempfile.gettempdir()) / "rsu-bench-latency.json"
    )
    print(f"  figures written to {json_path}")
    passed = [] if result.path is None else list(result.path.passed.values())
    if result.fanout is not None:
        passed.append(result.fanout.passed)
    return 0 if all(passed) else 1


def main(argv: list[str] | None = None) -> int:
    """`python -m rsu_tools.bench.latency [options]`: the same as `rsu bench latency [options]`."""
    parser = argparse.ArgumentParser(prog="rsu")
    add_bench_latency_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["latency", *(sys.argv[1:] if argv is None else argv)])
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    return run_bench_latency_command(args)
