"""Hostile inputs for the fuzz tests: random bytes, random JSON, and schema-shaped JSON with hostile values.

Schema-shaped documents follow each message model's field annotations (so they get past the first
validation checks and reach the deeper ones) but draw every value from a hostile pool: huge and
tiny numbers, NaN/Infinity literals, far-future and negative timestamps, long strings, long lists,
wrong types and deep nesting. Sizes are bounded so one example stays well within memory.
"""

from __future__ import annotations

import enum
import json
import os
import types
import typing
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from rsu.samples import SAMPLE_SITE
from rsu_contracts.config import load_site_config

# The default profile ("quick") runs each fuzz test briefly so CI stays fast; any other profile
# (fuzz, soak, long) uses its own example count, or RSU_FUZZ_EXAMPLES when set.
_PROFILE = os.environ.get("RSU_HYPOTHESIS_PROFILE", "quick")
FUZZ_SETTINGS = settings(
    # RSU_FUZZ_EXAMPLES overrides the profile's count, to size a run to a time budget.
    max_examples=int(os.environ.get("RSU_FUZZ_EXAMPLES", settings().max_examples)) if _PROFILE != "quick" else 10,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)

NOW_S = 1_700_000_000.0
SITE = load_site_config(SAMPLE_SITE)

MAX_LIST = 40  # generous for a fuzz example, bounded for memory and time
MAX_TEXT = 2_000  # repetitions of a 6-character chunk


def _site_ids(value: Any, found: set[str]) -> set[str]:
    """Every id-like string in the site config: lane, group, crosswalk, camera ids (so values match)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, str) and (key == "id" or key.endswith("_id")):
                found.add(item)
            _site_ids(item, found)
    elif isinstance(value, list):
        for item in value:
            _site_ids(item, found)
    return found


SITE_IDS = sorted(_site_ids(SITE.model_dump(mode="json"), {SITE.unit_id}))

hostile_floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1e308, -1e308, 5e-324, 1e20, -1.0, float("nan"), float("inf"), float("-inf")]),
    st.floats(min_value=-1_000.0, max_value=1_000.0),
)
hostile_timestamps = st.one_of(
    st.floats(min_value=NOW_S - 3_600, max_value=NOW_S + 3_600),
    st.sampled_from([0.0, NOW_S + 1e6, NOW_S - 1e6, 1e20, 1e308, 253_402_300_800.0, -1.0]),
    hostile_floats,
)
hostile_ints = st.one_of(
    st.integers(min_value=-10, max_value=1_000),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([2**31, 2**63 - 1, 2**63, 2**64, -(2**63) - 1, 10**30]),
)
hostile_text = st.one_of(
    st.sampled_from(SITE_IDS),
    st.text(max_size=20),
    # Long strings are built, not drawn character by character: cheap to generate, still long.
    st.integers(min_value=1, max_value=MAX_TEXT).map(lambda n: "a/+#\x00é" * n),
)

json_values: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | hostile_ints | hostile_floats | hostile_text,
    lambda children: st.lists(children, max_size=8) | st.dictionaries(hostile_text, children, max_size=8),
    max_leaves=60,
)


def _is_timestamp(name: str) -> bool:
    return name.endswith("_time_s") or name in {"since_s", "time_s", "start_s", "end_s"}


def value_for(annotation: Any, name: str = "") -> st.SearchStrategy[Any]:
    """A mostly well-typed but hostile value for one annotated field."""
    origin = typing.get_origin(annotation)
    arguments = typing.get_args(annotation)
    if origin is typing.Annotated:
        return value_for(arguments[0], name)
    if origin in (typing.Union, types.UnionType):
        return st.one_of(*(value_for(argument, name) for argument in arguments))
    if annotation is type(None):
        return st.none()
    if origin in (list, tuple, set, frozenset, typing.Sequence):
        item = value_for(arguments[0], name) if arguments else json_values
        return st.lists(item, max_size=MAX_LIST)
    if origin is dict:
        return st.dictionaries(value_for(arguments[0]), value_for(arguments[1]), max_size=MAX_LIST // 2)
    if origin is typing.Literal:
        return st.sampled_from(arguments) | hostile_text
    if isinstance(annotation, type):
        if issubclass(annotation, BaseModel):
            return model_documents(annotation)
        if issubclass(annotation, enum.Enum):
            return st.sampled_from([member.value for member in annotation]) | hostile_text
        if annotation is bool:
            return st.booleans()
        if annotation is int:
            return hostile_ints
        if annotation is float:
            return hostile_timestamps if _is_timestamp(name) else hostile_floats
        if annotation is str:
            return hostile_text
    return json_values


@st.composite
def _model_document(draw: st.DrawFn, model: type[BaseModel]) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        roll = draw(st.integers(0, 19))
        if roll == 0:
            continue  # missing field
        if roll == 1:
            document[name] = draw(json_values)  # wrong type
        else:
            document[name] = draw(value_for(info.annotation, name))
    if draw(st.integers(0, 19)) == 0:
        document[draw(hostile_text)] = draw(json_values)  # unknown field
    return document


def model_documents(model: type[BaseModel]) -> st.SearchStrategy[dict[str, Any]]:
    return st.deferred(lambda: _model_document(model))


@st.composite
def message_documents(draw: st.DrawFn, model: type[BaseModel]) -> dict[str, Any]:
    """A message document of `model` with its schema header mostly right, so the body is checked."""
    document = draw(model_documents(model))
    schema = getattr(model, "SCHEMA", "")
    if draw(st.integers(0, 9)):
        document["schema_name"] = schema
        document["schema_version"] = 1
    return document


def encode_json(document: Any) -> bytes:
    # allow_nan: json.dumps writes NaN / Infinity / -Infinity literals, as a hostile sender would.
    return json.dumps(document, allow_nan=True).encode()


def deep_nesting(depth: int) -> bytes:
    return b'{"schema_name": ' + b"[" * depth + b"]" * depth + b"}"


hostile_payloads = st.one_of(
    st.binary(max_size=4_096),
    json_values.map(encode_json),
    st.integers(min_value=1, max_value=200_000).map(deep_nesting),
    st.integers(min_value=1, max_value=200_000).map(lambda depth: b"[" * depth),
    st.sampled_from([b"", b"{", b"null", b"NaN", b"Infinity", b"1e999999", b"-" + b"9" * 5_000, b"\xff\xfe"]),
)
