"""docs/site-config.md and docs/schemas/site-config.schema.json are generated from the model
(`rsu site-reference`): they must match it, and every field must say what it is."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator
from pydantic import BaseModel

from rsu_cli import main
from rsu_contracts.config.model import SiteConfig
from rsu_contracts.config.reference import (
    DEFAULT_REFERENCE_PATH,
    DEFAULT_SCHEMA_PATH,
    render_reference,
    site_config_schema,
)

REPO = Path(__file__).resolve().parents[2]
SITE_FILES = sorted((REPO / "datasets").glob("*/site.yaml"))


def models_of_the_site_file() -> list[type[BaseModel]]:
    found: list[type[BaseModel]] = []
    pending: list[type[BaseModel]] = [SiteConfig]
    while pending:
        model = pending.pop()
        if model in found:
            continue
        found.append(model)
        for field in model.model_fields.values():
            for candidate in _types_in(field.annotation):
                if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                    pending.append(candidate)
    return found


def _types_in(annotation: object) -> list[object]:
    arguments = getattr(annotation, "__args__", ())
    return [annotation, *(inner for argument in arguments for inner in _types_in(argument))]


def test_the_published_reference_matches_the_model() -> None:
    path = REPO / DEFAULT_REFERENCE_PATH
    assert path.exists(), f"{path} missing: run `rsu site-reference`"
    assert path.read_text(encoding="utf-8") == render_reference(), f"{path.name} is stale: run `rsu site-reference`"


def test_the_published_schema_matches_the_model_and_is_valid_json_schema() -> None:
    path = REPO / DEFAULT_SCHEMA_PATH
    assert path.exists(), f"{path} missing: run `rsu site-reference`"
    published = json.loads(path.read_text(encoding="utf-8"))
    assert published == site_config_schema(), f"{path.name} is stale: run `rsu site-reference`"
    Draft202012Validator.check_schema(published)


@pytest.mark.parametrize("site_file", SITE_FILES, ids=lambda path: path.parent.name)
def test_every_shipped_site_file_is_valid_against_the_published_schema(site_file: Path) -> None:
    validator = Draft202012Validator(json.loads((REPO / DEFAULT_SCHEMA_PATH).read_text(encoding="utf-8")))
    assert [error.message for error in validator.iter_errors(yaml.safe_load(site_file.read_text()))] == []


def test_every_field_of_every_section_has_a_description() -> None:
    models = models_of_the_site_file()
    assert len(models) > 25  # every nested section was found, not just the top level
    undescribed = [
        f"{model.__name__}.{name}"
        for model in models
        for name, field in model.model_fields.items()
        if not (field.description and field.description.strip())
    ]
    assert undescribed == []


def test_every_field_appears_in_the_reference() -> None:
    reference = render_reference()
    for model in models_of_the_site_file():
        for name in model.model_fields:
            assert f"| `{name}` |" in reference, f"{model.__name__}.{name} missing from the reference"


def test_the_command_writes_both_files(tmp_path: Path) -> None:
    doc, schema = tmp_path / "ref.md", tmp_path / "schemas" / "site.schema.json"
    assert main(["site-reference", "--doc", str(doc), "--schema", str(schema)]) == 0
    assert doc.read_text(encoding="utf-8") == render_reference()
    assert json.loads(schema.read_text(encoding="utf-8")) == site_config_schema()
