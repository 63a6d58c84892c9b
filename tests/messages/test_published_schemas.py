"""The JSON Schemas in docs/schemas are what subscribers in other languages code against: they
must exist for every message, be valid JSON Schema, and match the models exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from rsu_contracts.config.reference import SITE_SCHEMA_FILE_NAME
from rsu_contracts.messages import CollisionWarning, Participant, Severity, WarningKind, WarningStatus
from rsu_contracts.messages.schemas import json_schema, schema_file_name
from v2x.wire import JSON_SCHEMAS

SCHEMA_FOLDER = Path(__file__).resolve().parents[2] / "docs" / "schemas"


def published(schema_name: str) -> dict[str, object]:
    message_type = JSON_SCHEMAS[schema_name]
    return dict(json.loads((SCHEMA_FOLDER / schema_file_name(message_type)).read_text()))


@pytest.mark.parametrize("schema_name", sorted(JSON_SCHEMAS))
def test_every_message_has_a_published_schema_that_matches_its_model(schema_name: str) -> None:
    message_type = JSON_SCHEMAS[schema_name]
    path = SCHEMA_FOLDER / schema_file_name(message_type)
    assert path.exists(), f"{path.name} missing: run `rsu schemas`"
    assert json.loads(path.read_text()) == json_schema(message_type), f"{path.name} is stale: run `rsu schemas`"
    Draft202012Validator.check_schema(json.loads(path.read_text()))


def test_no_stale_schema_files_are_left_behind() -> None:
    # The site file's schema lives beside the message schemas (tests/config/test_site_reference.py checks it).
    expected = {schema_file_name(message_type) for message_type in JSON_SCHEMAS.values()} | {SITE_SCHEMA_FILE_NAME}
    assert {path.name for path in SCHEMA_FOLDER.glob("*.schema.json")} == expected


def _warning() -> CollisionWarning:
    participant = Participant(track_id=7, road_user="car", x_m=1.0, y_m=2.0, speed_mps=9.0, heading_deg=90.0)
    return CollisionWarning(
        unit_id="rsu-test",
        seq=3,
        capture_time_s=1_700_000_000.0,
        publish_time_s=1_700_000_000.02,
        warning_id="w-1",
        kind=WarningKind.REAR_END,
        status=WarningStatus.NEW,
        severity=Severity.CRITICAL,
        ttc_s=1.2,
        conflict_x_m=3.0,
        conflict_y_m=4.0,
        conflict_latitude_deg=48.0,
        conflict_longitude_deg=7.8,
        participants=[participant, participant.model_copy(update={"track_id": 8})],
    )


def test_a_published_schema_accepts_a_real_message_and_names_what_is_wrong_in_a_bad_one() -> None:
    validator = Draft202012Validator(published(CollisionWarning.SCHEMA))
    good = json.loads(_warning().to_json())
    assert list(validator.iter_errors(good)) == []
    bad = {**good, "schema_version": 2, "severity": "apocalyptic"}
    del bad["seq"]
    problems = {error.message for error in validator.iter_errors(bad)}
    assert any("seq" in problem for problem in problems)
    assert any("apocalyptic" in problem for problem in problems)
    assert any("1 was expected" in problem for problem in problems)
