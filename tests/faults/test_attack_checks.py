"""The pure parts of the attack checks (rsu_tools.testing.attack_checks) on plain data."""

from __future__ import annotations

import io
import logging

from rsu.runtime.input_guard import InputGuard, Rejection, TopicRule
from rsu.samples import SAMPLE_SITE
from rsu_contracts.config import load_site_config
from rsu_contracts.topics import DETECTORS, Topics
from rsu_tools.testing.attack_checks import StageRejection, guard_log_lines, missing_intervals, spat_back_at_rate
from tests.v2x_wire.builders import spat

SITE = load_site_config(SAMPLE_SITE)
TOPICS = Topics.for_site(SITE)


def test_missing_intervals_are_the_gaps_between_the_first_and_last_seq() -> None:
    assert missing_intervals([]) == []
    assert missing_intervals([7, 8, 9]) == []
    assert missing_intervals([9, 7, 7, 11]) == [8, 10]


def test_spat_must_be_back_within_one_second_and_at_its_rate() -> None:
    message = spat(SITE.unit_id)
    at_rate = [(100.0 + 0.5 + k * 0.1, message) for k in range(25)]
    assert spat_back_at_rate(at_rate, 100.0, 10.0) is None
    late = [(100.0 + 1.2 + k * 0.1, message) for k in range(25)]
    assert spat_back_at_rate(late, 100.0, 10.0) == "the first SPaT came 1.20 s after the attack's end"
    sparse = [(100.0 + 0.2 + k * 0.5, message) for k in range(5)]
    assert "4 SPaTs in the 2 s" in (spat_back_at_rate(sparse, 100.0, 10.0) or "")
    assert spat_back_at_rate([(99.0, message)], 100.0, 10.0) == "no SPaT after the attack"


def test_guard_log_lines_read_the_stage_log_format() -> None:
    # The guard's own log call, formatted as a stage process formats it (rsu.runtime.supervisor).
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s controller %(levelname)s %(message)s"))
    logger = logging.getLogger("tests.attack_checks.guard")
    logger.addHandler(handler)
    logger.propagate = False
    clock = [0.0]
    guard = InputGuard(
        "controller", [TopicRule.of(TOPICS, DETECTORS, newest_only=True)], monotonic=lambda: clock[0], logger=logger
    )
    for second in range(25):  # a flood of refusals over 25 s: one line per 10 s
        clock[0] = float(second)
        guard.reject(TOPICS.detectors, Rejection.FUTURE, "capture time 1e6 s ahead")
        guard.reject(TOPICS.detectors, Rejection.STALE, "10 s old")
    text = stream.getvalue()
    future = guard_log_lines(text, StageRejection("controller", TOPICS.detectors, "future"))
    assert len(future) == 3
    assert "(9 more since the last line)" in future[1]
    assert len(guard_log_lines(text, StageRejection("controller", TOPICS.detectors, "stale"))) == 3
    assert guard_log_lines(text, StageRejection("v2x", TOPICS.detectors, "future")) == []
