"""Published JSON Schemas: one file per message schema and version, for subscribers in any language.

The pydantic models are the source of truth; these files are generated from them (`rsu schemas`)
and kept in `docs/schemas/`, where a test checks they still match the models.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rsu_contracts.messages.envelope import Message

SCHEMA_BASE_URI = "https://github.com/rsu-edge/rsu-edge/blob/main/docs/schemas/"


def schema_file_name(message_type: type[Message]) -> str:
    return f"{message_type.SCHEMA}.v{message_type.VERSION}.schema.json"


def json_schema(message_type: type[Message]) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one message type: what a decoder accepts (compact messages
    such as aggregates leave out fields at their default), with the name and version pinned."""
    schema = message_type.model_json_schema(mode="validation")
    properties = schema.get("properties", {})
    # schema_name and schema_version are constants of the type: say so in the schema.
    properties["schema_name"] = {"const": message_type.SCHEMA, "title": "Schema Name", "type": "string"}
    properties["schema_version"] = {
        "const": message_type.VERSION,
        "default": message_type.VERSION,
        "title": "Schema Version",
        "type": "integer",
    }
    schema["required"] = sorted(set(schema.get("required", [])) | {"schema_name"})
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_BASE_URI + schema_file_name(message_type),
        **schema,
    }


def render(message_type: type[Message]) -> str:
    return json.dumps(json_schema(message_type), indent=2, sort_keys=True) + "\n"


def write_schema_files(message_types: Iterable[type[Message]], folder: Path) -> list[Path]:
    """Write one schema file per message type into folder; returns the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for message_type in message_types:
        path = folder / schema_file_name(message_type)
        path.write_text(render(message_type))
        written.append(path)
    return written
