"""A private, secured Mosquitto for one unit: `rsu demo` runs on it, and the attack tests attack it.

It is the broker `rsu broker-config` describes (rsu.runtime.broker_config): a local listener for
the unit's per-stage logins and a vehicle listener whose client ids are the vehicles' logins,
on two free loopback ports, in a temporary folder (mode 0700) stopped by its own process id.
``site_file()`` writes a copy of the site that points the unit at it (mqtt.host, mqtt.port,
mqtt.credentials_dir).
"""

from __future__ import annotations

import getpass
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from rsu.runtime.broker_config import BrokerFiles, Listeners, password_path, write_broker_config
from rsu_contracts.config import SiteConfig
from rsu_contracts.config.model import MqttConfig
from rsu_tools.testing.mosquitto import find_mosquitto, port_accepts
from rsu_tools.testing.servers import EphemeralServer, free_loopback_port


class SecuredMosquitto(EphemeralServer):
    """start() / stop() keep both ports, the logins and their passwords."""

    def __init__(
        self, site: SiteConfig, vehicles: Iterable[str] = (), *, name: str = "unit-broker", log_denials: bool = False
    ) -> None:
        """log_denials: log at debug level too, where Mosquitto 2.0 names every publish the access
        list refused ("Denied PUBLISH from ..."); it acknowledges them as if delivered."""
        super().__init__(f"mosquitto-{name}", None)
        self.site = site
        self.vehicles = tuple(vehicles)
        self.log_denials = log_denials
        self.vehicle_port = free_loopback_port()
        self.workdir.chmod(0o700)
        self.files: BrokerFiles | None = None

    @property
    def listeners(self) -> Listeners:
        return Listeners(self.host, self.port, self.host, self.vehicle_port)

    @property
    def broker_folder(self) -> Path:
        return self.workdir / "broker"

    @property
    def credentials_dir(self) -> Path:
        return self.broker_folder / "credentials"

    def password(self, login: str) -> str:
        return password_path(self.credentials_dir, login).read_text(encoding="utf-8").strip()

    def unit_config(self) -> MqttConfig:
        """The unit's broker as the site file gives it: the local listener and the logins' folder."""
        return self.site.mqtt.model_copy(
            update={"host": self.host, "port": self.port, "credentials_dir": str(self.credentials_dir)}
        )

    def vehicle_config(self, login: str | None, password: str | None = None) -> MqttConfig:
        """A client on the vehicle listener (login None: anonymous)."""
        if login is not None and password is None:
            password = self.password(login)
        return MqttConfig(host=self.host, port=self.vehicle_port, username=login, password=password)

    def local_config(self, login: str | None, password: str | None = None) -> MqttConfig:
        """A client on the local listener with any login (or none): for attacks on it."""
        return MqttConfig(host=self.host, port=self.port, username=login, password=password)

    def site_file(self, folder: Path | None = None) -> Path:
        """A copy of the site pointing at this broker (every path in it absolute)."""
        raw: dict[str, Any] = self.site.model_dump(mode="json", exclude_defaults=True)
        mqtt = dict(raw.get("mqtt", {}))
        mqtt.update(host=self.host, port=self.port, credentials_dir=str(self.credentials_dir))
        mqtt.pop("username", None)
        mqtt.pop("password", None)
        raw["mqtt"] = mqtt
        target = (folder or self.workdir) / "site.yaml"
        target.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
        return target

    def _command(self) -> list[str]:
        if self.files is None:
            extra = [
                # Started as root, mosquitto would switch to the 'mosquitto' user and lose read access
                # to the password files (mode 0600); for any other user this line has no effect.
                f"user {getpass.getuser()}",
                "persistence false",
                "log_dest stderr",
                "log_type error",
                "log_type warning",
                "log_type notice",
                "log_type subscribe",
                *(["log_type debug"] if self.log_denials else []),
            ]
            self.files = write_broker_config(
                self.site, self.broker_folder, self.listeners, self.vehicles, extra_global=extra
            )
        return [find_mosquitto(), "-c", str(self.files.conf)]

    def _ready(self) -> bool:
        return port_accepts(self.host, self.port) and port_accepts(self.host, self.vehicle_port)
