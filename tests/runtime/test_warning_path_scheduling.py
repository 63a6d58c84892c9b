"""Scheduling of the warning path: raised (SCHED_RR) priority where it is configured and allowed,
never for the detector, a clear message where it is refused, and a publish that leaves a raised
section only once its message is on the wire."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable
from typing import TypeVar

import pytest

from rsu.runtime.bus import MqttBus
from rsu.runtime.latency import RealtimeSection, set_thread_realtime_priority
from rsu_contracts.config import SiteConfig
from rsu_contracts.config.model import MqttConfig

T = TypeVar("T")

can_raise = pytest.mark.skipif(
    os.geteuid() != 0 and os.getenv("RSU_TEST_RT") is None,
    reason="raising to SCHED_RR needs root or CAP_SYS_NICE (set RSU_TEST_RT=1 if this user has it)",
)


def on_a_fresh_thread(work: Callable[[], T]) -> T:
    """Scheduling is per thread: run the check on a throwaway one, never on pytest's own."""
    result: list[T] = []
    thread = threading.Thread(target=lambda: result.append(work()))
    thread.start()
    thread.join(10.0)
    return result[0]


def policy_of_this_thread() -> int:
    return os.sched_getscheduler(0)


@can_raise
def test_a_thread_raised_and_lowered_again() -> None:
    def work() -> tuple[str | None, int, int]:
        problem = set_thread_realtime_priority(10)
        raised = policy_of_this_thread()
        set_thread_realtime_priority(0)
        return problem, raised, policy_of_this_thread()

    problem, raised, lowered = on_a_fresh_thread(work)
    assert problem is None
    assert raised == os.SCHED_RR
    assert lowered == os.SCHED_OTHER


@can_raise
def test_threads_started_in_the_block_keep_the_priority_and_the_caller_does_not() -> None:
    def work() -> tuple[int, int]:
        seen: list[int] = []
        with RealtimeSection(10, "test"):
            network_thread = threading.Thread(target=lambda: seen.append(policy_of_this_thread()))
            network_thread.start()
        network_thread.join()
        return seen[0], policy_of_this_thread()

    network_thread_policy, caller_policy = on_a_fresh_thread(work)
    assert network_thread_policy == os.SCHED_RR
    assert caller_policy == os.SCHED_OTHER


@can_raise
def test_a_realtime_section_is_raised_only_inside() -> None:
    def work() -> tuple[int, int, int]:
        section = RealtimeSection(10, "test")
        before = policy_of_this_thread()
        with section:
            inside = policy_of_this_thread()
        return before, inside, policy_of_this_thread()

    assert on_a_fresh_thread(work) == (os.SCHED_OTHER, os.SCHED_RR, os.SCHED_OTHER)


def test_priority_zero_changes_nothing() -> None:
    def work() -> int:
        with RealtimeSection(0, "test"):
            return policy_of_this_thread()

    assert on_a_fresh_thread(work) == os.SCHED_OTHER


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become an unprivileged user for the check")
def test_without_the_capability_it_says_why_and_carries_on() -> None:
    script = (
        "import os, resource\n"
        "from rsu.runtime.latency import RealtimeSection, set_thread_realtime_priority\n"
        "resource.setrlimit(resource.RLIMIT_RTPRIO, (0, 0))\n"
        "os.setgid(65534); os.setuid(65534)\n"
        "print(set_thread_realtime_priority(10))\n"
        "with RealtimeSection(10, 'test'):\n"
        "    print(os.sched_getscheduler(0) == os.SCHED_OTHER)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60)
    problem, still_normal = result.stdout.strip().splitlines()
    assert "CAP_SYS_NICE" in problem and "priority 10" in problem
    assert still_normal == "True"


def test_the_setting_is_bounded_and_named_in_errors(sample_site: SiteConfig) -> None:
    from rsu_contracts.config import ConfigError
    from rsu_contracts.config.load import parse_site_config

    raw = sample_site.model_dump(mode="json")
    raw["v2x"]["realtime_priority"] = 120
    with pytest.raises(ConfigError, match=r"v2x\.realtime_priority"):
        parse_site_config(raw)


@pytest.mark.services
def test_publish_and_wait_returns_once_the_message_is_written(mqtt_broker: tuple[str, int]) -> None:
    host, port = mqtt_broker
    bus = MqttBus(MqttConfig(host=host, port=port), f"pub-{uuid.uuid4().hex[:8]}")
    bus.connect()
    try:
        assert bus.publish_and_wait(f"rsu-test/{uuid.uuid4().hex}/tracks", b"{}", timeout_s=2.0)
    finally:
        bus.close()
