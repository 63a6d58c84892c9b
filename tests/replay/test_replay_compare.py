"""The comparison itself: a mismatch names the line and the field, rounding hides only float noise."""

from __future__ import annotations

import json

from tests.replay import replaying


def _lines(*rows: dict[str, object]) -> list[str]:
    return replaying.to_jsonl(rows)


def test_equal_outputs_give_no_report() -> None:
    rows = _lines({"a": 1.0, "b": [1, 2]}, {"a": 2.0})
    assert replaying.mismatch_report("x", rows, list(rows)) is None


def test_the_report_names_the_first_differing_line_and_field() -> None:
    expected = _lines({"step": 0, "groups": {"2": {"since_s": 1.0}}}, {"step": 1, "groups": {"2": {"since_s": 2.0}}})
    got = _lines({"step": 0, "groups": {"2": {"since_s": 1.0}}}, {"step": 1, "groups": {"2": {"since_s": 2.5}}})
    report = replaying.mismatch_report("ref.jsonl", expected, got)
    assert report is not None
    assert "line 2, field groups.2.since_s" in report
    assert "expected 2.0" in report and "got      2.5" in report


def test_a_list_of_another_length_and_missing_lines_are_reported() -> None:
    report = replaying.mismatch_report("r", _lines({"events": [1, 2]}), _lines({"events": [1]}))
    assert report is not None and "field events (length)" in report
    report = replaying.mismatch_report("r", _lines({"a": 1}, {"a": 2}), _lines({"a": 1}))
    assert report is not None and "2 lines were expected and 1 got" in report


def test_floats_are_compared_to_six_decimals_and_non_finite_ones_survive() -> None:
    assert _lines({"t": 1767225600.1000001}) == _lines({"t": 1767225600.1000002})
    assert _lines({"t": 0.1234564}) != _lines({"t": 0.1234574})
    assert json.loads(_lines({"d": float("inf"), "z": -0.0})[0]) == {"d": "inf", "z": 0.0}
