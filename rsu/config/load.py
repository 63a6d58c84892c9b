"""Loading a site file: YAML in, a validated SiteConfig out, or one error that names the field."""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from pydantic import ValidationError

from rsu.config.model import MqttConfig, SiteConfig


class ConfigError(Exception):
    """The site file is missing, unreadable or invalid; the message names the file and field."""


def load_site_config(path: str | Path) -> SiteConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: site config file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read site config: {exc.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    return _with_broker_ca_files_resolved(parse_site_config(raw, source=str(path)), path)


def parse_site_config(raw: dict[str, object], source: str = "<config>") -> SiteConfig:
    try:
        return SiteConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{source}: invalid site config:\n{describe_validation_error(exc)}") from None


def describe_validation_error(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"]) or "(top level)"
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown key (not part of the site config schema)"
        lines.append(f"  {field}: {message}")
    return "\n".join(lines)


def resolve_relative(config_path: str | Path, relative: str) -> Path:
    """Paths inside a site file are relative to the file's own folder."""
    candidate = Path(relative)
    if candidate.is_absolute():
        return candidate
    return (Path(config_path).resolve().parent / candidate).resolve()


def _with_broker_ca_files_resolved(site: SiteConfig, site_path: Path) -> SiteConfig:
    """The brokers' ca_file, like every path in a site file, is relative to the file; the MQTT
    client takes the MqttConfig alone, so the path is made absolute here, once."""

    def resolved(config: MqttConfig) -> MqttConfig:
        if config.ca_file is None:
            return config
        ca_file = resolve_relative(site_path, os.path.expandvars(config.ca_file))
        return config.model_copy(update={"ca_file": str(ca_file)})

    if site.mqtt.ca_file is None and (site.uplink.mqtt is None or site.uplink.mqtt.ca_file is None):
        return site  # the usual case: nothing to resolve
    uplink = site.uplink
    if uplink.mqtt is not None:
        uplink = uplink.model_copy(update={"mqtt": resolved(uplink.mqtt)})
    return site.model_copy(update={"mqtt": resolved(site.mqtt), "uplink": uplink})
