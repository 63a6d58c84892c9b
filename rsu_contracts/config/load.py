"""Loading a site file: YAML in, a validated SiteConfig out, or one error that names the field."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from rsu_contracts.config.model import FieldError, SiteConfig
from rsu_contracts.config.paths import SITE_DIR_CONTEXT_KEY, resolve_site_path


class ConfigError(Exception):
    """The site file is missing, unreadable or invalid; the message names the file and field."""


def describe_yaml_error(path: Path, exc: yaml.YAMLError) -> str:
    """One message naming the file, line and column (PyYAML's own text says `in "<unicode string>"`)."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        what = "; ".join(part for part in (exc.context, exc.problem) if part)
        return f"{path}:{mark.line + 1}:{mark.column + 1}: not valid YAML: {what}"
    return f"{path}: not valid YAML: {exc}"


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
        raise ConfigError(describe_yaml_error(path, exc)) from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    return parse_site_config(raw, source=str(path), site_dir=path.resolve().parent)


def parse_site_config(
    raw: dict[str, object], source: str = "<config>", site_dir: str | Path | None = None
) -> SiteConfig:
    """Validate a parsed site file. site_dir: the site file's folder, which relative paths are taken
    from (rsu_contracts.config.paths); None keeps every path as written."""
    context = {SITE_DIR_CONTEXT_KEY: Path(site_dir)} if site_dir is not None else None
    try:
        return SiteConfig.model_validate(raw, context=context)
    except ValidationError as exc:
        raise ConfigError(f"{source}: invalid site config:\n{describe_validation_error(exc)}") from None


def describe_validation_error(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        location = tuple(error["loc"])
        # A cross-field check names the field it found wrong, below the model that ran it.
        failed_check = error.get("ctx", {}).get("error")
        if isinstance(failed_check, FieldError):
            location += failed_check.location
        field = ".".join(str(part) for part in location) or "(top level)"
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown key (not part of the site config schema)"
        lines.append(f"  {field}: {message}")
    return "\n".join(lines)


def resolve_relative(config_path: str | Path, relative: str) -> Path:
    """A path from the site file by the site file's path rule (rsu_contracts.config.paths): variables expanded,
    relative to the file's own folder. The loader has already applied it to every path field; this is
    for values set in code. Raises PathExpansionError for an unset variable without a default."""
    candidate = Path(resolve_site_path(relative, None))
    if candidate.is_absolute():
        return candidate
    return (Path(config_path).resolve().parent / candidate).resolve()
