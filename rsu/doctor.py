"""`rsu doctor --config SITE`: is this box ready to run the unit? Each check says what to fix.

Checks, in order: the site config is valid; each camera opens and delivers a frame (video) or its
SUMO files exist (simulation), and its calibration fits; each detector's model file exists; the
MQTT broker and Redis answer; the signal cabinet (site.cabinet) answers SNMP with the configured
community and reports a usable state (read only: the doctor never writes to it); the clock is
plausible and NTP-synchronised; there is free disk.
A finding is ok, warn (works, but look at it) or FAIL (the unit will not work properly); the exit
code is 1 when anything failed (with --strict also on warnings), else 0.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

import redis

from rsu.cabinet.heads import NtcipSignalHeads
from rsu.cabinet.snmp import SnmpError
from rsu.perception.homography import Homography, HomographyError
from rsu.runtime.broker_config import CredentialsError, stage_login
from rsu.runtime.bus import BrokerUnavailable
from rsu.runtime.preflight import (
    ALLOW_OPEN_BUS_VARIABLE,
    RedisUnavailable,
    check_broker,
    check_redis,
    open_bus_allowed,
    probe_open_bus,
)
from rsu_contracts.bus_roles import BusRole
from rsu_contracts.config import ConfigError, SiteConfig, load_site_config, resolve_relative
from rsu_contracts.config.model import CameraConfig, MqttConfig
from rsu_contracts.enums import CameraSource
from signal_control.backends.ntcip_objects import UNIT_BACKUP_TIME

# A calibration worse than this (RMS over its points) misplaces road users by a lane.
MAX_REPROJECTION_ERROR_M = 1.0
MIN_PLAUSIBLE_YEAR = 2024
MAX_PLAUSIBLE_YEAR = 2100
DEFAULT_MIN_FREE_GB = 1.0
CAMERA_TIMEOUT_S = 10.0


class Level(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "FAIL"
    SKIP = "skip"


@dataclass(frozen=True)
class Finding:
    check: str
    level: Level
    message: str
    fix: str = ""


# `timedatectl show -p NTPSynchronized --value`: returns (exit code, output); replaceable in tests.
CommandRunner = Callable[[Sequence[str]], tuple[int, str]]


def run_command(command: Sequence[str]) -> tuple[int, str]:
    try:
        done = subprocess.run(list(command), capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 127, str(exc)
    return done.returncode, (done.stdout or done.stderr).strip()


# -- config ---------------------------------------------------------------------------------------


def check_config(path: Path) -> tuple[SiteConfig | None, Finding]:
    try:
        site = load_site_config(path)
    except ConfigError as exc:
        return None, Finding(
            "config", Level.FAIL, str(exc), f"correct the field(s) named above in {path}; `rsu check-config` re-checks"
        )
    cameras = ", ".join(f"{c.id} ({c.source.value})" for c in site.cameras)
    return site, Finding(
        "config",
        Level.OK,
        f"valid site config for unit {site.unit_id}: {len(site.lanes)} lanes, "
        f"{len(site.signal_groups)} signal groups, cameras {cameras}",
    )


# -- cameras and models ---------------------------------------------------------------------------


def check_camera(camera: CameraConfig, site_path: Path, timeout_s: float = CAMERA_TIMEOUT_S) -> list[Finding]:
    name = f"camera {camera.id}"
    if camera.source is CameraSource.SIMULATION:
        return []  # the simulated world's files are checked by check_simulation
    from rsu.sensors.video import UriError, VideoSource, VideoSourceError, expand_uri, redact_uri

    assert camera.uri is not None  # the config model requires it for video cameras
    fix = (
        f"correct cameras[{camera.id}].uri in {site_path.name} (a relative path is taken from the site file's "
        "folder; for a stream check address, credentials and that the camera is powered)"
    )
    try:
        uri = expand_uri(camera.uri, site_path.resolve().parent)
    except UriError as exc:
        return [Finding(name, Level.FAIL, f"cameras[{camera.id}].uri: {exc}", fix)]
    try:
        with VideoSource(uri, connect_timeout_s=timeout_s) as source:
            frame = source.read(timeout_s=timeout_s)
            fps = source.fps
    except VideoSourceError as exc:
        return [Finding(name, Level.FAIL, f"cameras[{camera.id}].uri: {exc}", fix)]
    if frame is None:
        return [Finding(name, Level.FAIL, f"cameras[{camera.id}]: {redact_uri(uri)} delivered no frame", fix)]
    height, width = frame.image.shape[:2]
    findings = [
        Finding(name, Level.OK, f"{redact_uri(uri)} opens: {width}x{height}" + (f" at {fps:g} fps" if fps else ""))
    ]
    findings.extend(check_calibration(camera, width, height))
    return findings


def check_calibration(camera: CameraConfig, width: int, height: int) -> list[Finding]:
    name = f"calibration {camera.id}"
    fix = "recalibrate on the unit's web page (/calibrate) or correct cameras[].calibration"
    try:
        homography = Homography.from_points(camera.calibration)
    except HomographyError as exc:
        return [Finding(name, Level.FAIL, f"cameras[{camera.id}].calibration: {exc}", fix)]
    findings = []
    outside = [
        i + 1
        for i, p in enumerate(camera.calibration)
        if not (0 <= p.image_px[0] < width and 0 <= p.image_px[1] < height)
    ]
    if outside:
        findings.append(
            Finding(
                name,
                Level.FAIL,
                f"cameras[{camera.id}].calibration points {outside} lie outside the {width}x{height} frame "
                "(calibrated for another resolution?)",
                fix,
            )
        )
    error = homography.reprojection_error_m()
    if error > MAX_REPROJECTION_ERROR_M:
        findings.append(
            Finding(
                name,
                Level.WARN,
                f"cameras[{camera.id}]: RMS reprojection error {error:.2f} m (over {MAX_REPROJECTION_ERROR_M} m)",
                fix,
            )
        )
    elif not outside:
        findings.append(
            Finding(name, Level.OK, f"{len(camera.calibration)} points, RMS reprojection error {error:.3f} m")
        )
    return findings


def check_model(camera: CameraConfig, site_path: Path) -> Finding:
    name = f"model {camera.id}"
    detector = camera.detector
    config_dir = site_path.resolve().parent
    fix = (
        f"copy the model file there, or set cameras[{camera.id}].detector.weights in {site_path.name} to a file "
        "that exists (a relative path is taken from the site file's folder)"
    )
    from rsu.detectors.base import DetectorError

    try:
        if detector.type == "ultralytics":
            from rsu.detectors.ultralytics_backend import resolve_weights

            resolved = resolve_weights(detector.weights, config_dir)
            if not Path(resolved).is_file():
                return Finding(
                    name, Level.WARN, f"{resolved} is not on this box; Ultralytics will download it at start", fix
                )
            path = Path(resolved)
        else:
            path = _exported_model(detector.weights, config_dir, ".xml" if detector.type == "openvino" else ".onnx")
    except DetectorError as exc:
        return Finding(name, Level.FAIL, f"cameras[{camera.id}].detector: {exc}", fix)
    if not os.access(path, os.R_OK):
        return Finding(name, Level.FAIL, f"{path} is not readable by this user", "fix the file's permissions")
    return Finding(name, Level.OK, f"{detector.type} model {path} ({path.stat().st_size / 1e6:.1f} MB)")


def _exported_model(weights: str, config_dir: Path, suffix: str) -> Path:
    """The OpenVINO / ONNX model file, by the detector's own rules where that module is available."""
    try:
        from rsu.detectors.exported_yolo import resolve_model_file
    except ImportError:
        from rsu.detectors.base import DetectorError
        from rsu.sensors.video import expand_uri

        path = Path(expand_uri(weights, config_dir))
        if not path.exists():
            raise DetectorError(f"detector model not found: {path} (detector.weights: {weights!r})") from None
        return path
    return resolve_model_file(weights, config_dir, suffix)


def check_simulation(site: SiteConfig, site_path: Path) -> list[Finding]:
    if not site.is_simulated:
        return []
    missing = [
        f"simulation.{field}: {resolve_relative(site_path, value)}"
        for field, value in (("network", site.simulation.network), ("routes", site.simulation.routes))
        if not resolve_relative(site_path, value).is_file()
    ]
    if missing:
        return [Finding("simulation", Level.FAIL, "SUMO file(s) not found: " + "; ".join(missing), "correct the paths")]
    return [Finding("simulation", Level.OK, "simulated camera; SUMO network and routes found")]


# -- services -------------------------------------------------------------------------------------


def check_mqtt(config: MqttConfig, name: str, client_id: str, needed: bool) -> Finding:
    try:
        check_broker(config, client_id)
    except BrokerUnavailable as exc:
        if needed:
            fix = "start the broker (systemctl start mosquitto) or correct mqtt.host / mqtt.port in the site config"
            return Finding(name, Level.FAIL, str(exc), fix)
        return Finding(
            name, Level.WARN, f"{exc}; aggregates wait in the Redis outbox until it answers", "check the backhaul link"
        )
    return Finding(name, Level.OK, f"MQTT broker {config.host}:{config.port} accepts connections")


def check_local_bus(site: SiteConfig) -> Finding:
    """Whether an anonymous client can write the unit's local topics (rsu.runtime.preflight.probe_open_bus)."""
    name = "local bus"
    address = f"{site.mqtt.host}:{site.mqtt.port}"
    fix = "secure the broker with `rsu broker-config` (deploy/mosquitto/README.md) and set mqtt.credentials_dir"
    try:
        verdict = probe_open_bus(site)
    except (BrokerUnavailable, CredentialsError) as exc:
        return Finding(name, Level.FAIL, f"not checked: {exc}", fix)
    if not verdict.open:
        return Finding(name, Level.OK, f"{verdict.describe(address)}: only the unit's logins can write its topics")
    if open_bus_allowed(site.mqtt):
        return Finding(
            name,
            Level.WARN,
            f"{verdict.describe(address)}; allowed for development (mqtt.allow_open_bus / {ALLOW_OPEN_BUS_VARIABLE})",
            fix,
        )
    return Finding(name, Level.FAIL, f"{verdict.describe(address)}; the unit refuses to start on it", fix)


def check_redis_server(url: str) -> Finding:
    fix = "start Redis (systemctl start redis-server) or correct redis.url in the site config"
    try:
        check_redis(url)
    except RedisUnavailable as exc:
        return Finding("redis", Level.FAIL, str(exc), fix)
    client = redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
    try:
        appendonly = client.config_get("appendonly").get("appendonly")
    except redis.RedisError:
        appendonly = None  # CONFIG may be disabled on a hardened server: not our business then
    finally:
        client.close()
    if appendonly == "no":
        return Finding(
            "redis",
            Level.WARN,
            f"Redis at {url} answers but keeps nothing on disk (appendonly no): the uplink outbox is lost "
            "if Redis restarts",
            "set `appendonly yes` in /etc/redis/redis.conf and restart Redis",
        )
    return Finding("redis", Level.OK, f"Redis at {url} answers")


# -- signal cabinet -------------------------------------------------------------------------------


def check_cabinet(site: SiteConfig) -> list[Finding]:
    """Poll the configured cabinet once, read only: does it answer with this community, what does
    it show, is it in flash, and is the backup time the unit needs readable."""
    cabinet = site.cabinet
    if cabinet is None:
        return []
    name = "signal cabinet"
    address = f"{cabinet.host}:{cabinet.port} (SNMP v{'2c' if cabinet.snmp_version == 2 else '1'})"
    try:
        heads = NtcipSignalHeads(site, cabinet)
    except (ValueError, OSError) as exc:
        return [Finding(name, Level.FAIL, f"cabinet {address}: {exc}", "correct site.cabinet")]
    try:
        shown = heads.poll()
        health = heads.health
        if not health.reachable:
            return [
                Finding(
                    name,
                    Level.FAIL,
                    f"cabinet {address} gives no usable answer: {health.last_error}",
                    "check the cabinet's address and port, that SNMP is enabled on its controller, the network "
                    "path (UDP), and that cabinet.community is the controller's read-write community",
                )
            ]
        try:
            backup_s = heads.client.get([UNIT_BACKUP_TIME])[UNIT_BACKUP_TIME]
            backup = f"unitBackupTime now {backup_s} s (the unit writes {cabinet.backup_time_s} s)"
        except SnmpError as exc:
            return [
                Finding(
                    name,
                    Level.FAIL,
                    f"cabinet {address} answers the status objects but not unitBackupTime: {exc}",
                    "the unit needs unitBackupTime (NTCIP 1202 asc.3.3) to hand control back safely; check the "
                    "controller's NTCIP support level",
                )
            ]
    finally:
        heads.close()
    greens = ", ".join(sorted(g for g, indication in shown.items() if indication.value == "green")) or "none"
    summary = f"cabinet {address} answers with the configured community; green: {greens}; {backup}"
    if health.flashing:
        return [
            Finding(
                name,
                Level.WARN,
                f"{summary}; it is in FLASH: the unit cannot control it until it leaves flash",
                "check the cabinet (MMU fault, flash switch) before relying on the unit",
            )
        ]
    problems = heads.status.problems(heads.map) if heads.status is not None else []
    if problems:
        return [
            Finding(
                name,
                Level.WARN,
                f"{summary}; inconsistent outputs: {'; '.join(problems)}",
                "check cabinet.vehicle_phases / pedestrian_phases / overlaps against the controller's phase numbering",
            )
        ]
    return [Finding(name, Level.OK, summary)]


# -- clock and disk -------------------------------------------------------------------------------


def check_clock(now_s: float, runner: CommandRunner = run_command) -> list[Finding]:
    findings = []
    now = datetime.fromtimestamp(now_s, UTC)
    if not MIN_PLAUSIBLE_YEAR <= now.year <= MAX_PLAUSIBLE_YEAR:
        findings.append(
            Finding(
                "clock",
                Level.FAIL,
                f"the system clock says {now:%Y-%m-%d %H:%M} UTC: SPaT times and aggregates would be wrong",
                "set the time and enable NTP: timedatectl set-ntp true (or configure chrony)",
            )
        )
    else:
        findings.append(Finding("clock", Level.OK, f"system time {now:%Y-%m-%d %H:%M:%S} UTC"))
    if shutil.which("timedatectl") is None:
        findings.append(Finding("ntp", Level.SKIP, "timedatectl not found: NTP synchronisation not checked"))
        return findings
    code, output = runner(["timedatectl", "show", "-p", "NTPSynchronized", "--value"])
    if code == 0 and output == "yes":
        findings.append(Finding("ntp", Level.OK, "the clock is NTP-synchronised"))
    elif code == 0 and output == "no":
        findings.append(
            Finding(
                "ntp",
                Level.FAIL,
                "the clock is not NTP-synchronised: vehicles would get wrong signal change times",
                "enable time sync (timedatectl set-ntp true) and check that an NTP server is reachable",
            )
        )
    else:
        findings.append(
            Finding("ntp", Level.WARN, f"cannot tell whether the clock is NTP-synchronised (timedatectl: {output})")
        )
    return findings


def check_disk(paths: Sequence[Path], min_free_gb: float) -> list[Finding]:
    findings = []
    seen: set[int] = set()
    for path in paths:
        if not path.exists():
            continue
        device = path.stat().st_dev
        if device in seen:
            continue
        seen.add(device)
        usage = shutil.disk_usage(path)
        free_gb = usage.free / 1e9
        text = f"{path}: {free_gb:.1f} GB free of {usage.total / 1e9:.0f} GB"
        if free_gb < min_free_gb:
            fix = "free space (old journal logs: journalctl --vacuum-size=200M; old site-file backups)"
            findings.append(Finding("disk", Level.FAIL, f"{text} (below {min_free_gb:g} GB)", fix))
        elif free_gb < 2 * min_free_gb:
            findings.append(Finding("disk", Level.WARN, f"{text} (getting low)", "free some space soon"))
        else:
            findings.append(Finding("disk", Level.OK, text))
    return findings


# -- all together ---------------------------------------------------------------------------------


def run_checks(
    site_path: Path,
    min_free_gb: float = DEFAULT_MIN_FREE_GB,
    clock: Callable[[], float] = time.time,
    runner: CommandRunner = run_command,
) -> list[Finding]:
    site, finding = check_config(site_path)
    findings = [finding]
    findings.extend(check_clock(clock(), runner))
    disk_paths = [site_path.resolve().parent, Path("/var/lib/redis"), Path("/var/log/journal")]
    findings.extend(check_disk(disk_paths, min_free_gb))
    if site is None:
        findings.append(Finding("cameras, model, broker, Redis", Level.SKIP, "not checked: the site config is invalid"))
        return findings
    findings.extend(check_simulation(site, site_path))
    for camera in site.cameras:
        findings.extend(check_camera(camera, site_path))
        if camera.source is CameraSource.VIDEO:
            findings.append(check_model(camera, site_path))
    try:
        broker = check_mqtt(stage_login(site, BusRole.MONITOR), "broker", f"{site.unit_id}-doctor", needed=True)
    except CredentialsError as exc:
        broker = Finding("broker", Level.FAIL, str(exc), "run `rsu broker-config` or correct mqtt.credentials_dir")
    findings.append(broker)
    if broker.level is Level.OK:
        findings.append(check_local_bus(site))
    else:
        findings.append(Finding("local bus", Level.SKIP, "not checked: the broker does not accept the unit"))
    if site.uplink.mqtt is not None:
        findings.append(check_mqtt(site.uplink.mqtt, "centre broker", f"{site.unit_id}-doctor-centre", needed=False))
    findings.append(check_redis_server(site.redis.url))
    findings.extend(check_cabinet(site))
    return findings


def render(findings: Sequence[Finding], site_path: Path) -> str:
    width = max(len(f.check) for f in findings)
    lines = [f"rsu doctor: {site_path}"]
    for finding in findings:
        message_lines = finding.message.splitlines() or [""]
        lines.append(f"  {finding.level.value:<4}  {finding.check:<{width}}  {message_lines[0]}")
        indent = " " * (10 + width)
        lines.extend(f"{indent}{extra}" for extra in message_lines[1:])
        if finding.fix and finding.level in (Level.FAIL, Level.WARN):
            lines.append(f"{indent}fix: {finding.fix}")
    failed = sum(f.level is Level.FAIL for f in findings)
    warned = sum(f.level is Level.WARN for f in findings)
    verdict = "the unit is ready" if not failed else "the unit is NOT ready"
    lines.append(f"{failed} problem(s), {warned} warning(s): {verdict}")
    return "\n".join(lines)


def exit_code(findings: Sequence[Finding], strict: bool = False) -> int:
    bad = {Level.FAIL, Level.WARN} if strict else {Level.FAIL}
    return 1 if any(f.level in bad for f in findings) else 0


def run_doctor_command(args: argparse.Namespace) -> int:
    site_path = Path(args.config)
    if getattr(args, "allow_open_bus", False):
        os.environ[ALLOW_OPEN_BUS_VARIABLE] = "1"
    findings = run_checks(site_path, min_free_gb=args.min_free_gb)
    print(render(findings, site_path), file=sys.stdout)
    return exit_code(findings, strict=args.strict)


def add_doctor_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Add `doctor`: check camera, model, broker, Redis, clock, disk and config; say what to fix."""
    parser = subparsers.add_parser(
        "doctor",
        help="check that this box can run the unit (camera, model, broker, Redis, clock, disk, config)",
        description="Check everything the unit needs and say, for each missing piece, what to fix. "
        "Exit code 1 if anything failed.",
    )
    parser.add_argument("--config", required=True, help="site config YAML (e.g. /etc/rsu/<site>.yaml)")
    parser.add_argument(
        "--min-free-gb", type=float, default=DEFAULT_MIN_FREE_GB, help="least free disk space (default 1 GB)"
    )
    parser.add_argument("--strict", action="store_true", help="also exit 1 on warnings")
    parser.add_argument(
        "--allow-open-bus",
        action="store_true",
        help="development only: report an anonymously writable local broker as a warning, not a failure",
    )
    parser.set_defaults(handler=run_doctor_command)
    return parser
