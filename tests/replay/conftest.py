"""Replay tests: committed inputs through the current logic, compared with committed references."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytest

from rsu_contracts.config import SiteConfig, load_site_config
from tests.replay import replaying

CompareWithReference = Callable[[str, Sequence[Mapping[str, Any]]], None]


@pytest.fixture(scope="session")
def recorded_site() -> SiteConfig:
    """The site the fixtures were recorded on (fixtures/recording.json), as it is configured now."""
    return load_site_config(replaying.REPLAY_DIR.parents[1] / replaying.recording()["site"])


@pytest.fixture
def compare_with_reference() -> CompareWithReference:
    """Compare output rows with references/<name>.jsonl, or rewrite it under RSU_REPLAY_REFRESH=1."""

    def compare(name: str, rows: Sequence[Mapping[str, Any]]) -> None:
        got = replaying.to_jsonl(rows)
        if replaying.refresh_requested():
            path = replaying.write_reference(name, got)
            # Not a pass: nothing was compared. The refreshed file shows up in review as a diff.
            pytest.skip(f"REFRESHED {path.relative_to(replaying.REPLAY_DIR)} ({len(got)} lines): review its git diff")
        report = replaying.mismatch_report(f"references/{name}.jsonl", replaying.read_reference(name), got)
        if report is not None:
            pytest.fail(
                f"{report}\nIf this change of behaviour is intended, refresh the references "
                f"({replaying.REFRESH_VARIABLE}=1, see tests/replay/README.md).",
                pytrace=False,
            )

    return compare
