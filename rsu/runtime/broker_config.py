"""The unit's own broker, secured: per-stage logins, access lists from the topic registry, two listeners.

``write_broker_config`` (``rsu broker-config --site SITE --out DIR``) writes everything a Mosquitto
2.x needs to carry one unit's local bus so that only the unit can write it:

    DIR/mosquitto.conf     per_listener_settings true; the local listener (unit logins only) and
                           the vehicle listener (vehicle logins only, client id = user name)
    DIR/local.acl          one block per login of the unit: read the unit's topics, write only the
                           topics bus_roles.PUBLISHER gives it
    DIR/local.passwd       the unit's logins (hashed by mosquitto_passwd)
    DIR/vehicles.acl       one block per vehicle login: read SPaT, MAP, warnings, objects, status
                           and priority answers; write only priority requests
    DIR/vehicles.passwd    the vehicle logins named with --vehicle (hashed)
    DIR/credentials/       <login>.password, one per login (mode 0600, folder 0700): the site's
                           mqtt.credentials_dir; vehicles' files are handed to the vehicles

Passwords are generated once and kept when the command is run again (``rotate=True`` makes new
ones). Client ids cannot be taken over: the vehicle listener sets every client id to the client's
user name (``use_username_as_clientid``), and vehicle logins may not be named like the unit's
(``<unit_id>-...``); the unit's logins exist only in the local listener's password file, which
vehicles cannot use.

``stage_login`` is the reading side: the broker connection of one of the unit's roles.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rsu_contracts.bus_roles import PUBLISHER, BusRole, login_name
from rsu_contracts.config import SiteConfig
from rsu_contracts.config.model import MqttConfig
from rsu_contracts.topics import REGISTRY, Scope, Topics
from v2x.wire import V2X_CLASSES, MessageClass, TopicLayout

CREDENTIALS_FOLDER = "credentials"
PASSWORD_SUFFIX = ".password"
DEFAULT_VEHICLE_PORT = 8883
# A vehicle login is a plain name: it becomes the client id, and appears in the ACL and password files.
_LOGIN_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class BrokerConfigError(ValueError):
    """The broker set-up cannot be written as asked; the message names the option or file."""


class CredentialsError(RuntimeError):
    """A stage's password file is missing or unreadable; the message names it and mqtt.credentials_dir."""


# -- the reading side ---------------------------------------------------------------------------


def password_path(credentials_dir: Path, login: str) -> Path:
    return credentials_dir / f"{login}{PASSWORD_SUFFIX}"


def stage_login(site: SiteConfig, role: BusRole) -> MqttConfig:
    """The unit's broker as one of its roles logs in to it: site.mqtt with that role's own user name
    and password when mqtt.credentials_dir is set, site.mqtt unchanged otherwise."""
    if site.mqtt.credentials_dir is None:
        return site.mqtt
    login = login_name(site.unit_id, role)
    path = password_path(Path(site.mqtt.credentials_dir), login)
    try:
        password = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise CredentialsError(
            f"password of login {login} not readable at {path} ({exc.strerror or exc}); run "
            "`rsu broker-config --site SITE --out DIR` or correct mqtt.credentials_dir"
        ) from None
    if not password:
        raise CredentialsError(f"password file {path} of login {login} is empty; run `rsu broker-config` again")
    return site.mqtt.model_copy(update={"username": login, "password": password, "credentials_dir": None})


# -- access lists ---------------------------------------------------------------------------------


def _layout(site: SiteConfig) -> TopicLayout:
    prefix = site.mqtt.topic_prefix
    return TopicLayout.china(prefix) if site.v2x.topic_layout == "china" else TopicLayout(prefix=prefix)


def role_writes(site: SiteConfig, role: BusRole) -> list[str]:
    """The concrete topics one role of the unit publishes (the registry's, plus V2X's wire layout)."""
    topics = Topics.for_site(site)
    writes = [topics.topic(spec) for spec in REGISTRY if PUBLISHER[spec.name] is role]
    if role is BusRole.V2X:
        layout = _layout(site)
        writes += [layout.topic(site.unit_id, message_class) for message_class in V2X_CLASSES]
    return sorted(set(writes))


def role_reads(site: SiteConfig, role: BusRole) -> list[str]:
    """Topic filters one role may read: everything of the unit on its broker; the monitor (the unit's
    own observers) also its aggregates and the V2X wire layout, as vehicles and the centre see them."""
    topics = Topics.for_site(site)
    reads = [f"{topics.base}/#"]
    if role in (BusRole.MONITOR, BusRole.UPLINK):
        reads.append(f"{site.uplink.topic_prefix}/{site.unit_id}/#")
    if role is BusRole.MONITOR:
        layout = _layout(site)
        wire = [layout.topic(site.unit_id, message_class) for message_class in MessageClass]
        reads += [topic for topic in wire if not topic.startswith(f"{topics.base}/")]
    return sorted(set(reads))


def local_acl(site: SiteConfig) -> str:
    """The local listener's access list: one block per login of the unit, nothing for anyone else."""
    lines = [
        f"# Local listener of unit {site.unit_id}: generated by `rsu broker-config` from the topic registry",
        "# (rsu_contracts/topics.py, rsu_contracts/bus_roles.py); regenerate instead of editing.",
        "# No line outside a user block: a login not listed here may neither read nor write.",
    ]
    for role in BusRole:
        lines += ["", f"user {login_name(site.unit_id, role)}"]
        lines += [f"topic read {topic}" for topic in role_reads(site, role)]
        lines += [f"topic write {topic}" for topic in role_writes(site, role)]
    return "\n".join(lines) + "\n"


def vehicle_topics(site: SiteConfig) -> tuple[list[str], list[str]]:
    """(read, write) for every vehicle and priority requester: the vehicle-facing topics the unit
    publishes, and the ones it reads from them (priority requests)."""
    topics = Topics.for_site(site)
    facing = [spec for spec in REGISTRY if spec.scope is Scope.VEHICLE]
    reads = {topics.topic(spec) for spec in facing if PUBLISHER[spec.name] is not None}
    layout = _layout(site)
    reads |= {layout.topic(site.unit_id, message_class) for message_class in MessageClass}
    writes = {topics.topic(spec) for spec in facing if PUBLISHER[spec.name] is None}
    return sorted(reads), sorted(writes)


def vehicle_acl(site: SiteConfig, vehicles: Iterable[str]) -> str:
    reads, writes = vehicle_topics(site)
    lines = [
        f"# Vehicle listener of unit {site.unit_id}: generated by `rsu broker-config`; regenerate instead of editing.",
        "# Every vehicle or priority requester login (--vehicle) gets the same block; any other login nothing.",
    ]
    for name in vehicles:
        lines += ["", f"user {name}"]
        lines += [f"topic read {topic}" for topic in reads]
        lines += [f"topic write {topic}" for topic in writes]
    return "\n".join(lines) + "\n"


# -- the broker's configuration ---------------------------------------------------------------------


@dataclass(frozen=True)
class Listeners:
    local_host: str
    local_port: int
    vehicle_host: str = "0.0.0.0"
    vehicle_port: int = DEFAULT_VEHICLE_PORT
    certfile: Path | None = None
    keyfile: Path | None = None


def mosquitto_conf(site: SiteConfig, folder: Path, listeners: Listeners, extra_global: Sequence[str] = ()) -> str:
    """The broker's whole configuration (files named by absolute path, in folder)."""
    folder = folder.resolve()
    lines = [
        f"# Mosquitto 2.x for the local bus of unit {site.unit_id}: generated by `rsu broker-config`.",
        "# Each listener has its own logins and access list.",
        "per_listener_settings true",
        *extra_global,
        "",
        "# The unit's stages (on the box only): one login each, see local.acl.",
        f"listener {listeners.local_port} {listeners.local_host}",
        "allow_anonymous false",
        f"password_file {folder / 'local.passwd'}",
        f"acl_file {folder / 'local.acl'}",
        "",
        "# Vehicles and priority requesters: read what the unit broadcasts, write only priority requests.",
        "# The client id is always the login, so nobody can connect as one of the unit's clients.",
        f"listener {listeners.vehicle_port} {listeners.vehicle_host}",
        "allow_anonymous false",
        "use_username_as_clientid true",
        f"password_file {folder / 'vehicles.passwd'}",
        f"acl_file {folder / 'vehicles.acl'}",
    ]
    if listeners.certfile is not None and listeners.keyfile is not None:
        lines += [f"certfile {listeners.certfile.resolve()}", f"keyfile {listeners.keyfile.resolve()}"]
    else:
        lines.append("# Plain TCP: give --certfile and --keyfile for TLS on a listener that leaves the box.")
    return "\n".join(lines) + "\n"


def find_mosquitto_passwd() -> str:
    found = shutil.which("mosquitto_passwd")
    if found is None:
        raise BrokerConfigError("mosquitto_passwd not found; install Mosquitto (apt-get install mosquitto)")
    return found


def _write_private(path: Path, text: str) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(path, 0o600)


def _password_for(credentials: Path, login: str, rotate: bool) -> str:
    path = password_path(credentials, login)
    if not rotate and path.is_file():
        kept = path.read_text(encoding="utf-8").strip()
        if kept:
            os.chmod(path, 0o600)
            return kept
    password = secrets.token_urlsafe(24)
    _write_private(path, password + "\n")
    return password


def _hashed_password_file(path: Path, logins: dict[str, str]) -> None:
    """A Mosquitto password file: plain user:password lines (mode 0600), hashed in place with
    mosquitto_passwd -U (no password on any command line)."""
    _write_private(path, "".join(f"{login}:{password}\n" for login, password in logins.items()))
    if not logins:
        return
    result = subprocess.run([find_mosquitto_passwd(), "-U", str(path)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        path.unlink(missing_ok=True)
        raise BrokerConfigError(f"mosquitto_passwd -U {path} failed: {result.stderr.strip() or result.stdout.strip()}")


def check_vehicle_logins(site: SiteConfig, vehicles: Iterable[str]) -> list[str]:
    names = list(vehicles)
    for name in names:
        if not _LOGIN_PATTERN.match(name):
            raise BrokerConfigError(f"--vehicle {name!r}: a login is letters, digits, '.', '_' and '-' (at most 64)")
        if name.startswith(f"{site.unit_id}-") or name == site.unit_id:
            raise BrokerConfigError(
                f"--vehicle {name!r}: names beginning with the unit id {site.unit_id} are the unit's own logins"
            )
    if len(set(names)) != len(names):
        raise BrokerConfigError("--vehicle: a login is named twice")
    return names


@dataclass(frozen=True)
class BrokerFiles:
    folder: Path
    conf: Path
    credentials: Path
    unit_logins: tuple[str, ...]
    vehicle_logins: tuple[str, ...]


def write_broker_config(
    site: SiteConfig,
    folder: Path,
    listeners: Listeners,
    vehicles: Iterable[str] = (),
    *,
    rotate: bool = False,
    extra_global: Sequence[str] = (),
) -> BrokerFiles:
    """Write the secured broker of one unit into folder (see the module's docstring)."""
    vehicle_logins = check_vehicle_logins(site, vehicles)
    if (listeners.certfile is None) != (listeners.keyfile is None):
        raise BrokerConfigError("--certfile and --keyfile go together")
    if listeners.local_port == listeners.vehicle_port:
        raise BrokerConfigError(f"--local-port and --vehicle-port are both {listeners.local_port}")
    folder.mkdir(parents=True, exist_ok=True)
    credentials = folder / CREDENTIALS_FOLDER
    credentials.mkdir(mode=0o700, exist_ok=True)
    os.chmod(credentials, 0o700)
    unit = {
        login_name(site.unit_id, role): _password_for(credentials, login_name(site.unit_id, role), rotate)
        for role in BusRole
    }
    cars = {name: _password_for(credentials, name, rotate) for name in vehicle_logins}
    _hashed_password_file(folder / "local.passwd", unit)
    _hashed_password_file(folder / "vehicles.passwd", cars)
    (folder / "local.acl").write_text(local_acl(site), encoding="utf-8")
    (folder / "vehicles.acl").write_text(vehicle_acl(site, vehicle_logins), encoding="utf-8")
    conf = folder / "mosquitto.conf"
    conf.write_text(mosquitto_conf(site, folder, listeners, extra_global), encoding="utf-8")
    return BrokerFiles(folder.resolve(), conf.resolve(), credentials.resolve(), tuple(unit), tuple(cars))
