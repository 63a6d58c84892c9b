"""Checks run before the unit starts, each failing with a message that says what to fix.

preflight_site runs them all before any stage process starts: the web port is free, the broker
and Redis answer, the key and state folders are writable, the model and simulation files are
readable and the clock is plausible, and the local bus is not writable by anonymous clients
(check_open_bus). Each failure is one line naming the thing and the setting.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import redis

from rsu.runtime.broker_config import CredentialsError, stage_login
from rsu.runtime.bus import BrokerUnavailable, MqttBus
from rsu_contracts.bus_roles import BusRole
from rsu_contracts.config import SiteConfig, resolve_relative
from rsu_contracts.config.model import MqttConfig
from rsu_contracts.config.paths import is_bare_name, is_url
from rsu_contracts.topics import Topics

log = logging.getLogger(__name__)

# Set (1, true or yes) by `--allow-open-bus`, or in the environment of a development run: the same
# as the site's mqtt.allow_open_bus.
ALLOW_OPEN_BUS_VARIABLE = "RSU_ALLOW_OPEN_BUS"
# How long the unit's own subscription waits for the anonymous probe message. On the box's own
# broker delivery takes milliseconds; a loaded machine gets a wide margin.
OPEN_BUS_PROBE_WAIT_S = 1.5

# 2020-01-01T00:00Z: a box whose clock reads earlier lost its time (no RTC battery, no NTP yet), and
# every timestamp it sends (SPaT, warnings, aggregates) would be wrong.
EARLIEST_SANE_WALL_CLOCK_S = 1577836800.0
# How far the wall clock may differ from the file system's time before it is called wrong.
CLOCK_SKEW_LIMIT_S = 24 * 3600.0


class PreflightError(RuntimeError):
    """A check before start failed; the message is one line: what, and the setting to change."""


class RedisUnavailable(ConnectionError):
    """Redis could not be reached; the message names the URL."""


def check_broker(config: MqttConfig, client_id: str = "rsu-preflight") -> None:
    bus = MqttBus(config, client_id)
    try:
        bus.connect(timeout_s=3.0)
    except BrokerUnavailable:
        raise
    finally:
        bus.close()


@dataclass(frozen=True)
class OpenBusVerdict:
    """What an anonymous client could do on the unit's broker."""

    anonymous_connects: bool
    anonymous_write_delivered: bool
    probe_topic: str

    @property
    def open(self) -> bool:
        return self.anonymous_write_delivered

    def describe(self, address: str) -> str:
        if not self.anonymous_connects:
            return f"broker {address} refuses anonymous clients"
        if not self.anonymous_write_delivered:
            return (
                f"broker {address} accepts anonymous clients but does not deliver what they publish on the "
                "unit's topics"
            )
        return (
            f"broker {address} delivers what an anonymous client publishes on the unit's local topics "
            f"(probe {self.probe_topic}): anyone on it can forge signal states and tracks"
        )


def open_bus_allowed(config: MqttConfig) -> bool:
    """The explicit development flag: mqtt.allow_open_bus, --allow-open-bus or RSU_ALLOW_OPEN_BUS."""
    flag = os.environ.get(ALLOW_OPEN_BUS_VARIABLE, "").strip().lower()
    return config.allow_open_bus or flag in ("1", "true", "yes")


# The probe is not a registered topic; QoS 1 so a lost packet cannot pass for a refused write.
PROBE_QOS = 1
# The probe's subtopic under the signal state: a subscriber to the unit's whole tree sees it once
# per start on an open bus (its payload is plain text, not a message).
PROBE_SUBTOPIC_PREFIX = "preflight-probe-"


def probe_open_bus(site: SiteConfig, wait_s: float = OPEN_BUS_PROBE_WAIT_S) -> OpenBusVerdict:
    """Connect without credentials to the unit's broker and publish under one of the unit's local
    topics (a probe subtopic of its signal state, which no stage reads); the unit's own
    authenticated subscription tells whether the broker delivered it. Raises BrokerUnavailable
    when the unit's own login cannot connect, CredentialsError when its password is missing."""
    topics = Topics.for_site(site)
    probe_topic = f"{topics.signal_state}/{PROBE_SUBTOPIC_PREFIX}{uuid.uuid4().hex[:12]}"
    watcher = MqttBus(stage_login(site, BusRole.MONITOR), f"{site.unit_id}-monitor-probe-{os.getpid()}")
    anonymous_config = site.mqtt.model_copy(update={"username": None, "password": None, "credentials_dir": None})
    intruder = MqttBus(anonymous_config, f"rsu-anonymous-probe-{uuid.uuid4().hex[:12]}", refusal_expected=True)
    try:
        watcher.subscribe(probe_topic, qos=1)
        watcher.connect(timeout_s=3.0)
        try:
            intruder.connect(timeout_s=3.0)
        except BrokerUnavailable:
            return OpenBusVerdict(anonymous_connects=False, anonymous_write_delivered=False, probe_topic=probe_topic)
        info = intruder.publish(probe_topic, b"rsu preflight: an anonymous client wrote this", qos=PROBE_QOS)
        deadline = time.monotonic() + wait_s
        info.wait_for_publish(wait_s)
        while (remaining := deadline - time.monotonic()) > 0:
            received = watcher.get(timeout_s=remaining)
            if received is not None and received.topic == probe_topic:
                return OpenBusVerdict(True, True, probe_topic)
        return OpenBusVerdict(True, False, probe_topic)
    finally:
        intruder.close()
        watcher.close()


def check_open_bus(site: SiteConfig) -> OpenBusVerdict:
    """PreflightError when an anonymous client can write the unit's local topics, unless the
    development flag allows it (then a WARNING in the log)."""
    address = f"{site.mqtt.host}:{site.mqtt.port}"
    try:
        verdict = probe_open_bus(site)
    except CredentialsError as exc:
        raise PreflightError(str(exc)) from None
    if not verdict.open:
        return verdict
    if open_bus_allowed(site.mqtt):
        log.warning(
            "%s; starting anyway because the open bus is allowed (mqtt.allow_open_bus, --allow-open-bus or %s): "
            "development only",
            verdict.describe(address),
            ALLOW_OPEN_BUS_VARIABLE,
        )
        return verdict
    raise PreflightError(
        f"{verdict.describe(address)}; secure it (`rsu broker-config`, see deploy/mosquitto/README.md) or, "
        f"for development only, pass --allow-open-bus (site: mqtt.allow_open_bus: true)"
    )


def check_stage_logins(site: SiteConfig) -> None:
    """Every login of the unit has its password file (mqtt.credentials_dir)."""
    for role in BusRole:
        try:
            stage_login(site, role)
        except CredentialsError as exc:
            raise PreflightError(str(exc)) from None


def check_redis(url: str) -> None:
    client = redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise RedisUnavailable(
            f"Redis at {url} is unreachable ({exc}); is redis-server running? (scripts/setup.sh starts it)"
        ) from None
    finally:
        client.close()


def redis_is_up(url: str) -> bool:
    try:
        check_redis(url)
    except RedisUnavailable:
        return False
    return True


def check_web_port(host: str, port: int) -> None:
    probe = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        # The web server sets SO_REUSEADDR too: a port left in TIME_WAIT by the previous run is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))
    except OSError as exc:
        reason = "already in use" if exc.errno == errno.EADDRINUSE else exc.strerror or str(exc)
        raise PreflightError(
            f"web port {host}:{port} is {reason}; stop what holds it or set web.port (and web.host) in the site file"
        ) from None
    finally:
        probe.close()


def check_writable_folder(folder: Path, setting: str) -> None:
    """The folder exists (created if need be) and a file can be written in it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".rsu-preflight-"):
            pass
    except OSError as exc:
        raise PreflightError(f"folder {folder} is not writable ({exc.strerror or exc}); set {setting}") from None


def check_readable_file(path: Path, setting: str, what: str) -> None:
    if not path.exists():
        raise PreflightError(f"{what} {path} not found; set {setting}")
    if path.is_dir():
        # An OpenVINO model may be given as its folder: it must be listable.
        if not os.access(path, os.R_OK | os.X_OK):
            raise PreflightError(f"{what} {path} is not readable; fix its permissions or set {setting}")
        return
    try:
        with path.open("rb") as handle:
            handle.read(1)
    except OSError as exc:
        raise PreflightError(f"{what} {path} is not readable ({exc.strerror or exc}); set {setting}") from None


def model_files(site: SiteConfig, site_path: Path) -> list[tuple[Path, str]]:
    """The detector weights the stages will load, with their setting names.

    A bare Ultralytics name (yolo11n.pt) not in the site folder is Ultralytics' own to fetch, so it
    is not checked here.
    """
    found: list[tuple[Path, str]] = []
    for index, camera in enumerate(site.cameras):
        if camera.uri is None:
            continue  # the simulated camera has no detector
        detector = camera.detector
        candidates = [(detector.weights, f"cameras[{index}].detector.weights")]
        for region_index, region in enumerate(detector.detail_regions):
            if region.weights is not None:
                candidates.append((region.weights, f"cameras[{index}].detector.detail_regions[{region_index}].weights"))
        for weights, setting in candidates:
            if is_url(weights):
                continue
            if is_bare_name(weights):
                local = site_path.parent / weights
                if not local.exists():
                    continue
                found.append((local, setting))
            else:
                found.append((resolve_relative(site_path, weights), setting))
    return found


def check_clock(reference_folder: Path, now_s: float | None = None) -> None:
    """The wall clock is after 2020 and agrees with the file system's time within a day."""
    wall_s = time.time() if now_s is None else now_s
    if wall_s < EARLIEST_SANE_WALL_CLOCK_S:
        raise PreflightError(
            f"the wall clock reads {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(wall_s))} UTC, before 2020; "
            "set the system time (enable NTP: timedatectl set-ntp true)"
        )
    with tempfile.NamedTemporaryFile(dir=reference_folder, prefix=".rsu-clock-") as probe:
        file_system_s = os.stat(probe.name).st_mtime
    if abs(wall_s - file_system_s) > CLOCK_SKEW_LIMIT_S:
        raise PreflightError(
            f"the wall clock differs from the file system's time in {reference_folder} by "
            f"{wall_s - file_system_s:+.0f} s; set the system time (enable NTP: timedatectl set-ntp true)"
        )


def preflight_site(site: SiteConfig, site_path: Path) -> None:
    """Every check, cheapest first; the first failure raises with its one-line message."""
    from rsu.stages.unit_keys import state_dir

    missing = site.unit_requirements_missing()
    if missing:
        raise PreflightError(
            f"{site_path}: the unit cannot run without {' and '.join(missing)}; such a site is for signal-only "
            "library use"
        )

    check_web_port(site.web.host, site.web.port)
    if site.v2x.signing_key is not None:
        check_readable_file(resolve_relative(site_path, site.v2x.signing_key), "v2x.signing_key", "signing key")
    folder = state_dir(site, site_path)
    check_writable_folder(folder, "v2x.state_dir (or $RSU_STATE_DIR)")
    check_clock(folder)
    for path, setting in model_files(site, site_path):
        check_readable_file(path, setting, "model file")
    if site.is_simulated:
        for field, value in (("network", site.simulation.network), ("routes", site.simulation.routes)):
            check_readable_file(resolve_relative(site_path, value), f"simulation.{field}", "SUMO file")
    check_stage_logins(site)
    try:
        check_broker(stage_login(site, BusRole.MONITOR), f"{site.unit_id}-preflight")
        check_open_bus(site)
    except BrokerUnavailable as exc:
        raise PreflightError(f"{exc}; or set mqtt.host / mqtt.port in the site file") from None
    try:
        check_redis(site.redis.url)
    except RedisUnavailable as exc:
        raise PreflightError(f"{exc}; or set redis.url in the site file") from None
