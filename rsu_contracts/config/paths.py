"""The one rule for paths in a site file, applied to every path field when the file is loaded.

1. `${VAR}` and `${VAR:-default}` are expanded from the environment (as in the shell, `:-` also
   applies when the variable is set but empty); an unset `${VAR}` without a default is an error.
2. `~` is the user's home folder.
3. A relative path is taken from the site file's folder, so a site file works from any working
   directory; the result is normalised (path arithmetic only: nothing is looked up on disk).

Two kinds of value are not files and keep their text after step 1: URLs (`rtsp://...`, anything with
`scheme://`) in any path field, and device indices (`0`) in a camera uri. A detector's weights may be
a bare file name (`yolo11n.pt`), which is kept too: the detector looks for it in the site file's
folder first and then where Ultralytics keeps (or downloads) its standard models.

The annotated types `SitePath`, `CameraUri` and `ModelWeights` apply the rule during validation when
the validation context names the site file's folder (`{"site_dir": folder}`, as the loader does).
Without it (a model built in code) values are kept as written, and the code that opens them applies
the same rule with the folder it knows (`expand_uri`, `resolve_relative`).
"""

from __future__ import annotations

import os
import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, Field, ValidationInfo

SITE_DIR_CONTEXT_KEY = "site_dir"

_VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


class PathExpansionError(ValueError):
    """A path or uri in the site file cannot be expanded (an unset variable without a default)."""


class PathKind(StrEnum):
    """What a path field may hold besides a file path (see the module docstring)."""

    FILE = "site-path"  # a file or folder
    CAMERA_URI = "camera-uri"  # a file, a stream URL or a device index
    MODEL_WEIGHTS = "model-weights"  # a file, a folder or a bare standard model name


def expand_variables(text: str) -> str:
    """`${VAR}` and `${VAR:-default}` replaced from the environment; raises PathExpansionError."""

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group("name"), match.group("default")
        value = os.environ.get(name)
        if value:
            return value
        if default is not None:
            return default
        raise PathExpansionError(
            f"{text!r}: environment variable {name} is not set and has no default (write ${{{name}:-...}})"
        )

    return _VARIABLE.sub(substitute, text)


def is_url(text: str) -> bool:
    return bool(_SCHEME.match(text))


def is_bare_name(text: str) -> bool:
    """A file name without a folder, variable or home: `yolo11n.pt`."""
    return not any(marker in text for marker in ("/", "\\", "$", "~"))


def resolve_site_path(value: str, site_dir: str | Path | None, kind: PathKind = PathKind.FILE) -> str:
    """The rule: variables expanded, then a relative file path anchored at site_dir and normalised.

    site_dir None: variables and `~` are expanded but a relative path stays relative.
    """
    expanded = expand_variables(value.strip())
    if not expanded:
        raise PathExpansionError(f"{value!r} expands to an empty string")
    if is_url(expanded):
        return expanded
    if kind is PathKind.CAMERA_URI and expanded.isdigit():
        return expanded
    if kind is PathKind.MODEL_WEIGHTS and is_bare_name(value.strip()):
        return expanded
    path = Path(expanded).expanduser()
    if not path.is_absolute() and site_dir is not None:
        path = Path(site_dir).expanduser() / path
    return os.path.normpath(path)


def _site_dir(info: ValidationInfo) -> Path | None:
    context: Any = info.context
    if isinstance(context, dict) and context.get(SITE_DIR_CONTEXT_KEY) is not None:
        return Path(context[SITE_DIR_CONTEXT_KEY])
    return None


def _resolver(kind: PathKind) -> AfterValidator:
    def resolve(value: str, info: ValidationInfo) -> str:
        site_dir = _site_dir(info)
        if site_dir is None:
            return value
        return resolve_site_path(value, site_dir, kind)

    return AfterValidator(resolve)


# The JSON Schema `format` marks these fields so the generated reference can say which rule applies.
SitePath = Annotated[str, _resolver(PathKind.FILE), Field(json_schema_extra={"format": PathKind.FILE.value})]
CameraUri = Annotated[
    str, _resolver(PathKind.CAMERA_URI), Field(json_schema_extra={"format": PathKind.CAMERA_URI.value})
]
ModelWeights = Annotated[
    str, _resolver(PathKind.MODEL_WEIGHTS), Field(json_schema_extra={"format": PathKind.MODEL_WEIGHTS.value})
]
