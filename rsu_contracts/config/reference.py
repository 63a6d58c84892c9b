"""The site-file reference, generated from the model: `docs/site-config.md` and its JSON Schema.

SiteConfig is the source of truth; `rsu site-reference` writes both files and a test checks they still
match the model, as for the message schemas (rsu_contracts.messages.schemas).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rsu_contracts.config.model import IDENTIFIER_PATTERN, SiteConfig
from rsu_contracts.config.paths import PathKind
from rsu_contracts.messages.schemas import SCHEMA_BASE_URI

SITE_SCHEMA_FILE_NAME = "site-config.schema.json"
DEFAULT_REFERENCE_PATH = Path("docs/site-config.md")
DEFAULT_SCHEMA_PATH = Path("docs/schemas") / SITE_SCHEMA_FILE_NAME

_FORMAT_NAMES = {
    PathKind.FILE.value: "path",
    PathKind.CAMERA_URI.value: "path, URL or device",
    PathKind.MODEL_WEIGHTS.value: "path or model name",
}

_PREAMBLE = """\
# Site file reference

<!-- Generated from rsu_contracts/config/model.py by `rsu site-reference`; do not edit by hand. -->

A site file (YAML) describes one intersection: its geometry, signals, cameras and the unit's services.
`rsu check-config <file>` validates one and names the field of every error. The JSON Schema of the
same model is [schemas/site-config.schema.json](schemas/site-config.schema.json) (editor completion).

Conventions: geometry is in metres in a local east-north frame (x east, y north) whose origin is
`reference`; a field name ends in its unit (`_m`, `_s`, `_mps`, `_hz`, `_px`, `_deg`). Unknown keys are
errors, so a typo fails at start. A dash in the default column means the field is required.

**Paths.** Every field of type *path* follows one rule, applied when the file is loaded:
`${VAR}` and `${VAR:-default}` are expanded from the environment (the default also applies when the
variable is set but empty; an unset `${VAR}` without a default is an error naming the field), `~` is the
home folder, and a relative path is taken from the site file's folder. A camera `uri` may also be a
stream URL (`rtsp://...`, variables expanded) or a device index (`0`); detector `weights` may also be a
bare model name such as `yolo11n.pt`, looked for in the site file's folder and then where Ultralytics
keeps its models.
"""


@dataclass(frozen=True)
class _Section:
    path: str  # where the section sits in the file, e.g. "approaches[].lanes[]"
    model_name: str  # its name in the schema's $defs ("" for the top level)
    definition: dict[str, Any]  # its JSON Schema object


def site_config_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a site file: what the loader accepts."""
    schema = SiteConfig.model_json_schema(mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_BASE_URI + SITE_SCHEMA_FILE_NAME,
        **schema,
    }


def render_schema() -> str:
    return json.dumps(site_config_schema(), indent=2, sort_keys=True) + "\n"


def render_reference() -> str:
    """docs/site-config.md: one table per section, in the order the sections appear in a file."""
    schema = site_config_schema()
    definitions: dict[str, dict[str, Any]] = schema.get("$defs", {})
    parts = [_PREAMBLE]
    sections = list(_sections(schema, definitions))
    section_paths = {section.model_name: section.path for section in sections}
    for section in sections:
        title = section.path or "Top level"
        parts.append(f"\n## `{title}`\n" if section.path else f"\n## {title}\n")
        if section.definition.get("description"):
            parts.append(f"\n{_one_line(section.definition['description'])}\n")
        parts.append("\n| Field | Type | Default | Bounds | Description |\n|---|---|---|---|---|\n")
        required = set(section.definition.get("required", []))
        for name, field in section.definition.get("properties", {}).items():
            row = (
                f"`{name}`",
                _type_name(field, definitions, section_paths),
                "—" if name in required else _default(field, definitions),
                _bounds(field),
                _one_line(field.get("description", "")),
            )
            parts.append("| " + " | ".join(_cell(text) for text in row) + " |\n")
    return "".join(parts)


def write_site_reference(
    reference_path: Path = DEFAULT_REFERENCE_PATH, schema_path: Path = DEFAULT_SCHEMA_PATH
) -> list[Path]:
    """Write the reference and the schema; returns the files written."""
    for path, text in ((reference_path, render_reference()), (schema_path, render_schema())):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return [reference_path, schema_path]


def _sections(schema: dict[str, Any], definitions: dict[str, dict[str, Any]]) -> Iterator[_Section]:
    """Every object section depth first; a model used in two places (mqtt) is listed once, where first met."""
    listed: set[str] = set()

    def visit(path: str, model_name: str, definition: dict[str, Any]) -> Iterator[_Section]:
        yield _Section(path, model_name, definition)
        for name, field in definition.get("properties", {}).items():
            found = _model_reference(field, definitions)
            if found is None or found[0] in listed:
                continue
            model_name, is_list = found
            listed.add(model_name)
            child_path = f"{path}.{name}" if path else name
            yield from visit(child_path + ("[]" if is_list else ""), model_name, definitions[model_name])

    yield from visit("", "", schema)


def _model_reference(field: dict[str, Any], definitions: dict[str, dict[str, Any]]) -> tuple[str, bool] | None:
    """(definition name, is a list of them) when the field holds a nested section (not an enum)."""
    for option in [field, *field.get("anyOf", [])]:
        ref = option.get("$ref") or option.get("items", {}).get("$ref")
        if ref:
            name = ref.rsplit("/", 1)[-1]
            if definitions[name].get("type") == "object":
                return name, "items" in option
    return None


def _type_name(field: dict[str, Any], definitions: dict[str, dict[str, Any]], section_paths: dict[str, str]) -> str:
    """A reader's name for the field's type; a nested section is named by where its table is."""
    options = field.get("anyOf")
    if options:
        named = [_type_name(option, definitions, section_paths) for option in options if option.get("type") != "null"]
        optional = any(option.get("type") == "null" for option in options)
        return " or ".join(named) + (" or null" if optional else "")
    if "$ref" in field:
        model_name = field["$ref"].rsplit("/", 1)[-1]
        definition = definitions[model_name]
        if "enum" in definition:
            return "one of " + ", ".join(f"`{value}`" for value in definition["enum"])
        return f"section `{section_paths[model_name]}`"
    if "const" in field:
        return f"`{field['const']}`"
    if "enum" in field:
        return "one of " + ", ".join(f"`{value}`" for value in field["enum"])
    kind = field.get("type")
    if kind == "array":
        if "prefixItems" in field:
            return "[" + ", ".join(_type_name(item, definitions, section_paths) for item in field["prefixItems"]) + "]"
        return "list of " + _type_name(field.get("items", {}), definitions, section_paths)
    if kind == "string" and field.get("format") in _FORMAT_NAMES:
        return _FORMAT_NAMES[field["format"]]
    if kind == "string" and field.get("pattern") == IDENTIFIER_PATTERN:
        return "id"
    return str(kind) if kind else "any"


def _default(field: dict[str, Any], definitions: dict[str, dict[str, Any]]) -> str:
    if "default" in field and field["default"] is None:
        return "null"
    section = _model_reference(field, definitions)
    if section is not None and not section[1]:
        return "(section defaults)"  # its own table lists them
    if "default" not in field:
        # Built by a default factory: an empty list, or a section made when the file leaves it out.
        return "`[]`" if field.get("type") == "array" else "(section defaults)"
    value = field["default"]
    if value == "":
        return '`""`'
    return f"`{value}`" if isinstance(value, str) else f"`{json.dumps(value)}`"


def _bounds(field: dict[str, Any]) -> str:
    options = [field, *(option for option in field.get("anyOf", []) if option.get("type") != "null")]
    bounds: list[str] = []
    for option in options:
        for key, symbol in (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"), ("exclusiveMaximum", "<")):
            if key in option:
                bounds.append(f"{symbol} {option[key]}")
        if option.get("type") == "array" and "prefixItems" not in option:
            low, high = option.get("minItems"), option.get("maxItems")
            if high is None and low is not None:
                bounds.append(f"at least {low} item{'s' if low > 1 else ''}")
            elif high is not None:
                bounds.append(f"{low or 0}–{high} items")
        if option.get("pattern") == IDENTIFIER_PATTERN:
            bounds.append(f"{option.get('minLength', 0)}–{option.get('maxLength', '∞')} characters A-Z a-z 0-9 _ . -")
        elif "pattern" in option:
            bounds.append(f"pattern `{option['pattern']}`")
        elif "minLength" in option:
            bounds.append(f"at least {option['minLength']} character(s)")
    return ", ".join(bounds)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _cell(text: str) -> str:
    return text.replace("|", "\\|")
