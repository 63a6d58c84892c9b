"""The input guard: what every stage checks on a message from the local bus before acting on it.

The unit's broker may be misconfigured so that any client can write the unit's own topics, so
no stage trusts a local message because of the topic it came on. Before a stage acts on one:

- it must decode against its schema, which bounds every number and list (rsu_contracts.messages);
- its capture time must be fresh on the stage's own clock: not ahead of it by more than
  FUTURE_TOLERANCE_S (one forged future stamp must not win every "newest" comparison for the
  rest of the run), and not older than the topic's staleness bound from the topic registry;
- on a state topic (the newest message supersedes every earlier one: detector states, signal
  states, track lists) a drained backlog is acted on once, for its newest message; the rest is
  skipped, never replayed, and a message older than one already acted on is refused.

Every refusal is counted per topic and reason and logged at most once per topic and reason per
log period, so a flood of forged messages neither floods the log nor goes unnoticed; the counts
travel to the unit's health message and /metrics (rsu.runtime.stage.StageContext.report_inputs).

Pure logic, plain data in and out: the clock is passed in (None in lock-step simulation, where
the stage has no clock of its own and message time is the only time), the log is the caller's.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, Protocol, TypeVar

from rsu_contracts.messages import Message, decode
from rsu_contracts.topics import Topics, TopicSpec

log = logging.getLogger(__name__)

# Clocks of the unit's processes agree to well within this; a camera's timestamp may lead a little.
FUTURE_TOLERANCE_S = 0.5
# One log line per topic and reason per this many seconds at most.
LOG_PERIOD_S = 10.0
# A refusal other than a superseded backlog keeps the stage's health note this long.
PROBLEM_HOLD_S = 10.0


class Rejection(StrEnum):
    """Why an input was not acted on."""

    INVALID = "invalid"  # not its schema, or a value out of bounds (NaN, infinity, oversized list)
    FUTURE = "future"  # capture time ahead of the stage's clock
    STALE = "stale"  # older than the topic's staleness bound
    SUPERSEDED = "superseded"  # an older message of a state topic in a backlog drained at once
    OUT_OF_ORDER = "out_of_order"  # older than a message of the same state topic already acted on
    # The V2X stage's own checks of a signal state before it signs a SPaT.
    CONFLICTING_GREENS = "conflicting_greens"
    UNKNOWN_SIGNAL_GROUP = "unknown_signal_group"
    TOO_OLD_TO_SIGN = "too_old_to_sign"


class Delivery(Protocol):
    """What a stage drained from its bus (rsu.runtime.bus.Received)."""

    @property
    def topic(self) -> str: ...

    @property
    def payload(self) -> bytes: ...


D = TypeVar("D", bound=Delivery)


# A stage's own check of a decoded, fresh message at the stage's clock (None in lock-step): why it
# must not be acted on, or None.
MessageCheck = Callable[[Message, float | None], "tuple[Rejection, str] | None"]


@dataclass(frozen=True)
class TopicRule:
    """How a stage takes one of its subscribed topics."""

    topic: str
    schema: type[Message]
    # Older than this on the stage's clock: dropped. None: any age is acted on.
    stale_after_s: float | None
    # A state topic: only the newest of a backlog counts, and time never goes back.
    newest_only: bool
    # The stage's own check (the V2X stage's conflict check of a signal state). Run at admission,
    # so a refused newest message of a backlog falls back to the genuine one before it.
    check: MessageCheck | None = None

    @classmethod
    def of(
        cls,
        topics: Topics,
        spec: TopicSpec,
        newest_only: bool,
        check_age: bool = True,
        check: MessageCheck | None = None,
    ) -> TopicRule:
        """The rule of a registered topic: its schema and staleness bound come from the registry."""
        if spec.schema is None:
            raise ValueError(f"topic {spec.name} has no message model to check its inputs against")
        return cls(topics.topic(spec), spec.schema, spec.stale_after_s if check_age else None, newest_only, check)


@dataclass(frozen=True)
class Admitted(Generic[D]):
    """One delivery the stage may act on; message is None for a topic the guard has no rule for."""

    delivery: D
    message: Message | None


@dataclass(frozen=True)
class RejectionCount:
    topic: str
    reason: str
    count: int


@dataclass(frozen=True)
class GuardReport:
    """The guard's counts as plain data, for the stage's health report."""

    rejections: tuple[RejectionCount, ...]
    # The latest refusal (not a superseded backlog) if it is recent: what health says is wrong.
    problem: str | None


@dataclass
class _LogWindow:
    next_log_s: float
    suppressed: int = 0


class InputGuard:
    """Checks, counts and rate-limited logs of one stage's inputs."""

    def __init__(
        self,
        stage: str,
        rules: Iterable[TopicRule],
        future_tolerance_s: float = FUTURE_TOLERANCE_S,
        log_period_s: float = LOG_PERIOD_S,
        monotonic: Callable[[], float] = time.monotonic,
        logger: logging.Logger = log,
    ) -> None:
        self.stage = stage
        self.rules = {rule.topic: rule for rule in rules}
        self.future_tolerance_s = future_tolerance_s
        self.log_period_s = log_period_s
        self._monotonic = monotonic
        self._log = logger
        self.counts: Counter[tuple[str, Rejection]] = Counter()
        self._newest_accepted_s: dict[str, float] = {}
        self._log_windows: dict[tuple[str, Rejection], _LogWindow] = {}
        self._problem: tuple[float, str] | None = None

    # --- checks -------------------------------------------------------------------------------

    def admit(self, topic: str, payload: bytes, now_s: float | None) -> Message | None:
        """The decoded message if the stage may act on it, else None (counted and logged)."""
        rule = self.rules.get(topic)
        if rule is None:
            raise KeyError(f"{self.stage}: no input rule for topic {topic}")
        try:
            message = decode(rule.schema, payload)
        except ValueError as exc:
            self.reject(topic, Rejection.INVALID, str(exc))
            return None
        if not self.is_fresh(topic, message.capture_time_s, now_s):
            return None
        refused = rule.check(message, now_s) if rule.check is not None else None
        if refused is not None:
            self.reject(topic, *refused)
            return None
        if rule.newest_only:
            self._newest_accepted_s[topic] = max(message.capture_time_s, self._newest_accepted_s.get(topic, 0.0))
        return message

    def is_fresh(self, topic: str, capture_time_s: float, now_s: float | None) -> bool:
        """Whether a capture time may be acted on at now_s (None: no clock, only the order is checked)."""
        rule = self.rules.get(topic)
        if now_s is not None:
            ahead_s = capture_time_s - now_s
            if ahead_s > self.future_tolerance_s:
                self.reject(topic, Rejection.FUTURE, f"capture time {ahead_s:.3f} s ahead of the stage's clock")
                return False
            stale_after_s = rule.stale_after_s if rule is not None else None
            if stale_after_s is not None and -ahead_s > stale_after_s:
                self.reject(topic, Rejection.STALE, f"{-ahead_s:.3f} s old (bound {stale_after_s:.3f} s)")
                return False
        if rule is not None and rule.newest_only:
            newest_s = self._newest_accepted_s.get(topic)
            if newest_s is not None and capture_time_s < newest_s:
                self.reject(
                    topic,
                    Rejection.OUT_OF_ORDER,
                    f"capture time {newest_s - capture_time_s:.3f} s before one already acted on",
                )
                return False
        return True

    def take(self, deliveries: Sequence[D], now_s: float | None) -> list[Admitted[D]]:
        """A drained backlog, checked: in arrival order, what the stage may act on.

        Of a state topic only the newest delivery that passes the checks is kept (the earlier
        ones are counted as superseded without being decoded: a burst costs one decode); every
        delivery of any other ruled topic is checked on its own; topics without a rule (such as
        signed priority requests, which their own gate checks) pass through untouched.
        """
        keep: dict[int, Message | None] = {}
        newest_first: dict[str, list[int]] = {}
        for index, delivery in enumerate(deliveries):
            rule = self.rules.get(delivery.topic)
            if rule is None:
                keep[index] = None
            elif rule.newest_only:
                newest_first.setdefault(delivery.topic, []).insert(0, index)
            else:
                message = self.admit(delivery.topic, delivery.payload, now_s)
                if message is not None:
                    keep[index] = message
        for topic, indices in newest_first.items():
            for position, index in enumerate(indices):
                message = self.admit(topic, deliveries[index].payload, now_s)
                if message is not None:
                    keep[index] = message
                    skipped = len(indices) - position - 1
                    if skipped:
                        self.reject(topic, Rejection.SUPERSEDED, f"{skipped} older in the backlog", count=skipped)
                    break
        return [Admitted(deliveries[index], keep[index]) for index in sorted(keep)]

    # --- counting and logging -----------------------------------------------------------------

    def reject(self, topic: str, reason: Rejection, detail: str, count: int = 1) -> None:
        """Count a refusal and log it, at most once per topic and reason per log period."""
        key = (topic, reason)
        self.counts[key] += count
        now = self._monotonic()
        if reason is not Rejection.SUPERSEDED:
            self._problem = (now, f"{self.stage} refused input on {topic}: {reason.value}: {detail}")
        window = self._log_windows.get(key)
        if window is not None and now < window.next_log_s:
            window.suppressed += count
            return
        suppressed = window.suppressed if window is not None else 0
        self._log_windows[key] = _LogWindow(now + self.log_period_s)
        more = f" ({suppressed} more since the last line)" if suppressed else ""
        self._log.warning(
            "%s: dropped input on %s: %s: %s; %d in total%s",
            self.stage,
            topic,
            reason.value,
            detail,
            self.counts[key],
            more,
        )

    def count(self, topic: str, reason: Rejection) -> int:
        return self.counts[(topic, reason)]

    def report(self) -> GuardReport:
        problem = None
        if self._problem is not None and self._monotonic() - self._problem[0] <= PROBLEM_HOLD_S:
            problem = self._problem[1]
        rejections = tuple(
            RejectionCount(topic, reason.value, count) for (topic, reason), count in sorted(self.counts.items())
        )
        return GuardReport(rejections, problem)
