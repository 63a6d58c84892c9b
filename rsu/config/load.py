"""Loading a site file: YAML in, a validated SiteConfig out, or one error that names the field."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from rsu.config.model import SiteConfig


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
    return parse_site_config(raw, source=str(path))


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
