"""Issue 15's "done when", checked in one place for every attack on a running unit.

After an attack on the unit's bus, the unit must show, seen from outside:

1. no forged or stale message signed: every SPaT, warning and shared-objects message verifies
   against the unit's public key, none carries the attacker's content (the test says what it
   forged), no SPaT was signed for a decision older than v2x.max_spat_age_s, and none arrived
   late (a queue signed long after the fact);
2. SPaT at its normal rate within 1 s of the attack's end;
3. no stage restart;
4. no lost aggregate interval: every interval sealed during the run reached the centre topic,
   none missing by seq, up to one sealed after the attack;
5. the rejection counted per topic and reason (the stages' input guards report it to the
   supervisor, from where it goes into the health message and /metrics; a refusal by the broker
   or the vehicle SDK is counted there) and logged, without flooding: one line per topic and
   reason per log period of the guard.

`UnitWatch` listens the way a vehicle and the centre do; `stage_logs_to` sends the stage
processes' log to a file the test reads; `assert_withstood` checks the five.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from rsu.metrics import UnitMetrics
from rsu.runtime.bus import MqttBus
from rsu.runtime.input_guard import LOG_PERIOD_S
from rsu.runtime.supervisor import Supervisor
from rsu_contracts.config import SiteConfig
from rsu_contracts.config.model import MqttConfig
from rsu_contracts.messages import Aggregate, Message, Spat, decode
from rsu_contracts.messages.health import InputRejection, UnitHealth
from rsu_contracts.topics import Topics
from v2x.signing import SignatureError, SignatureVerifier, public_key_from_pem
from v2x.wire import MessageClass, TopicLayout, decode_payload

# A SPaT that reaches a vehicle more than this after it was signed was queued: stale when it counts.
MAX_DELIVERY_LAG_S = 0.5
# Within this after the attack's end SPaT must be back (issue 15).
SPAT_BACK_WITHIN_S = 1.0
# Of the SPaTs due in the window after the first one, at least this share must arrive.
SPAT_RATE_SHARE = 0.6
SPAT_RATE_WINDOW_S = 2.0
# Clock and scheduling slack between the V2X stage's age check and its signature's timestamp.
SIGNING_SLACK_S = 0.05
# The guard logs one line per topic and reason per LOG_PERIOD_S; the log itself and the first
# line of a new period may add one.
_GUARD_LINE = re.compile(
    r" (?P<stage>[a-z0-9_]+) WARNING (?P=stage): dropped input on (?P<topic>\S+): (?P<reason>[a-z_]+):"
)


@dataclass(frozen=True)
class Heard:
    """One signed V2X message a vehicle received from the unit."""

    message_class: MessageClass
    arrived_monotonic_s: float
    arrived_wall_s: float
    message: Message | None
    payload: bytes
    # The signature's timestamp; None when it did not verify (a forgery or a broken signature).
    signed_at_s: float | None
    refused: str | None


@dataclass(frozen=True)
class StageRejection:
    """A rejection the unit's own input guard must have counted and logged."""

    stage: str
    topic: str
    reason: str


@dataclass(frozen=True)
class CountedElsewhere:
    """A refusal by something other than the unit's stages (the broker, the vehicle SDK): its count
    and the log lines that say it, as the test read them there."""

    what: str
    count: int
    log_lines: Sequence[str]


@contextlib.contextmanager
def stage_logs_to(path: Path) -> Iterator[Path]:
    """Stage processes started inside write their log (their stderr) to `path`, for the test to read.

    The supervisor's processes inherit file descriptor 2; this process's own stderr is restored on
    exit (a stage restarted later logs to it again: the checks assert there is no restart)."""
    sys.stderr.flush()
    saved = os.dup(2)
    target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.dup2(target, 2)
        yield path
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(target)


class UnitWatch:
    """A vehicle's view of the unit (signed SPaT, warnings, shared objects) and the centre's
    (aggregates by seq), each on its own broker connection, collected from start to close."""

    def __init__(
        self,
        site: SiteConfig,
        public_key_path: Path,
        vehicle_bus: MqttConfig,
        centre_bus: MqttConfig | None,
        health_bus: MqttConfig | None = None,
    ) -> None:
        self.site = site
        self.topics = Topics.for_site(site)
        self.layout = TopicLayout()
        self._classes = {
            self.layout.topic(site.unit_id, message_class): message_class
            for message_class in (MessageClass.SPAT, MessageClass.WARNINGS, MessageClass.OBJECTS)
        }
        # A wide window: stale messages must verify here so that their age can be measured.
        self._verifier = SignatureVerifier([public_key_from_pem(public_key_path.read_bytes())], window_s=3_600.0)
        self.heard: list[Heard] = []
        self.aggregate_seqs: list[int] = []
        self.health: UnitHealth | None = None
        self._lock = threading.Lock()
        tag = uuid.uuid4().hex[:6]
        self._vehicle = MqttBus(vehicle_bus, f"watch-vehicle-{tag}")
        for topic in self._classes:
            self._vehicle.subscribe(topic)
        self._buses = [self._vehicle]
        self._centre: MqttBus | None = None
        if centre_bus is not None:
            self._centre = MqttBus(centre_bus, f"watch-centre-{tag}")
            self._centre.subscribe(self.topics.aggregates, qos=1)
            self._buses.append(self._centre)
        self._health: MqttBus | None = None
        if health_bus is not None:
            self._health = MqttBus(health_bus, f"watch-health-{tag}")
            self._health.subscribe(self.topics.health)
            self._buses.append(self._health)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="unit-watch", daemon=True)

    def start(self) -> UnitWatch:
        for bus in self._buses:
            bus.connect()
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5.0)
        for bus in self._buses:
            bus.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            got = False
            for item in self._vehicle.drain():
                got = True
                self._take_v2x(item.topic, item.payload, item.user_properties, item.received_monotonic_s)
            if self._centre is not None:
                for item in self._centre.drain():
                    got = True
                    with contextlib.suppress(ValueError):
                        seq = decode(Aggregate, item.payload).seq
                        with self._lock:
                            self.aggregate_seqs.append(seq)
            if self._health is not None:
                for item in self._health.drain():
                    with contextlib.suppress(ValueError):
                        health = decode(UnitHealth, item.payload)
                        with self._lock:
                            self.health = health
            if not got:
                time.sleep(0.01)

    def _take_v2x(
        self, topic: str, payload: bytes, properties: Sequence[tuple[str, str]], arrived_monotonic_s: float
    ) -> None:
        message_class = self._classes.get(topic)
        if message_class is None or not payload:
            return  # an empty payload clears a retained message: nobody's message
        arrived_wall_s = time.time() - (time.monotonic() - arrived_monotonic_s)
        signed_at_s: float | None = None
        refused: str | None = None
        message: Message | None = None
        try:
            verified = self._verifier.verify(topic, payload, list(properties), arrived_wall_s)
            signed_at_s = verified.timestamp_s
            message = decode_payload(message_class, payload, verified.properties).message
        except (SignatureError, ValueError) as exc:
            refused = f"{type(exc).__name__}: {exc}"
        heard = Heard(message_class, arrived_monotonic_s, arrived_wall_s, message, payload, signed_at_s, refused)
        with self._lock:
            self.heard.append(heard)

    # --- views ----------------------------------------------------------------------------------

    def messages(self, message_class: MessageClass) -> list[Heard]:
        with self._lock:
            return [heard for heard in self.heard if heard.message_class is message_class]

    def spats(self) -> list[tuple[float, Spat]]:
        """(arrival monotonic time, SPaT) of every verified SPaT so far."""
        return [
            (heard.arrived_monotonic_s, heard.message)
            for heard in self.messages(MessageClass.SPAT)
            if isinstance(heard.message, Spat)
        ]

    def seqs(self) -> list[int]:
        with self._lock:
            return list(self.aggregate_seqs)


def spat_back_at_rate(spats: Sequence[tuple[float, Spat]], attack_end_s: float, rate_hz: float) -> str | None:
    """Why SPaT was not back at its rate within 1 s of attack_end_s (monotonic), or None."""
    after = sorted(arrived for arrived, _ in spats if arrived > attack_end_s)
    if not after:
        return "no SPaT after the attack"
    if after[0] - attack_end_s >= SPAT_BACK_WITHIN_S:
        return f"the first SPaT came {after[0] - attack_end_s:.2f} s after the attack's end"
    window = [arrived for arrived in after if arrived < after[0] + SPAT_RATE_WINDOW_S]
    if len(window) < SPAT_RATE_SHARE * SPAT_RATE_WINDOW_S * rate_hz:
        return f"{len(window)} SPaTs in the {SPAT_RATE_WINDOW_S:g} s after SPaT was back (rate {rate_hz:g} Hz)"
    return None


def missing_intervals(seqs: Sequence[int]) -> list[int]:
    """Aggregate seqs missing between the first and the last one heard."""
    if not seqs:
        return []
    heard = set(seqs)
    return [seq for seq in range(min(heard), max(heard) + 1) if seq not in heard]


def guard_log_lines(log_text: str, rejection: StageRejection) -> list[str]:
    return [
        line
        for line in log_text.splitlines()
        if (match := _GUARD_LINE.search(line)) is not None
        and (match["stage"], match["topic"], match["reason"]) == (rejection.stage, rejection.topic, rejection.reason)
    ]


def counted_in_metrics(health: UnitHealth, rejection: StageRejection) -> float | None:
    """The count /metrics shows for a rejection, from the unit's health message."""
    metrics = UnitMetrics(health.unit_id)
    metrics.observe(health)
    return metrics.input_rejections.get(stage=rejection.stage, topic=rejection.topic, reason=rejection.reason)


def supervisor_count(supervisor: Supervisor, rejection: StageRejection) -> int:
    entries: list[InputRejection] = supervisor.rejections()
    return sum(
        entry.count
        for entry in entries
        if (entry.stage, entry.topic, entry.reason) == (rejection.stage, rejection.topic, rejection.reason)
    )


def assert_withstood(
    watch: UnitWatch,
    supervisor: Supervisor,
    *,
    tick: Callable[[], None] | None = None,
    attack_started_s: float,
    attack_end_s: float,
    forged: Callable[[Heard], bool],
    rejected: Sequence[StageRejection] = (),
    counted_elsewhere: Sequence[CountedElsewhere] = (),
    log_path: Path | None = None,
    replayed_payloads: Collection[bytes] = (),
    aggregates: bool = True,
    settle_s: float = 3.0,
) -> None:
    """Issue 15's five conditions after an attack (times are time.monotonic()); waits up to
    `settle_s` after the attack's end (longer, while an aggregate interval is still due) first.
    tick supervises the unit meanwhile (rsu.unit.Unit.tick, which also publishes its health);
    None: supervisor.poll. replayed_payloads: the unit's own messages the attacker re-published
    (a replay is the attacker's send, not the unit's: the vehicle's SDK must refuse it, which the
    test checks; the watch hears the copies too and leaves them out here)."""
    pump = tick if tick is not None else supervisor.poll
    site = watch.site
    interval_s = site.uplink.interval_s
    # One interval sealed after the attack's end, and its record forwarded, proves nothing queued
    # up meanwhile was lost.
    deadline = time.monotonic() + max(settle_s, (interval_s * 2 + 3.0) if aggregates else 0.0)
    seqs_before_end = len(watch.seqs())
    while time.monotonic() < deadline:
        pump()
        settled = time.monotonic() >= attack_end_s + settle_s
        counted = all(supervisor_count(supervisor, rejection) > 0 for rejection in rejected)
        sealed_after = not aggregates or len(watch.seqs()) > seqs_before_end + 1
        health_ok = not rejected or (watch.health is not None and _all_in_health(watch.health, rejected))
        if settled and counted and sealed_after and health_ok:
            break
        time.sleep(0.1)
    pump()
    problems: list[str] = []

    # 1. Nothing forged or stale signed.
    heard = [h for h in watch.heard if h.payload not in replayed_payloads]
    unverified = [h for h in heard if h.signed_at_s is None]
    if unverified:
        problems.append(f"{len(unverified)} V2X messages did not verify, first: {unverified[0].refused}")
    forgeries = [h for h in heard if h.signed_at_s is not None and forged(h)]
    if forgeries:
        first = forgeries[0]
        problems.append(
            f"{len(forgeries)} forged {first.message_class.value} messages went out signed, first: "
            f"{first.payload[:400].decode(errors='replace')}"
        )
    max_age_s = site.v2x.max_spat_age_s
    for h in heard:
        if h.signed_at_s is None or not isinstance(h.message, Spat):
            continue
        decided_age_s = h.signed_at_s - h.message.capture_time_s
        if decided_age_s > max_age_s + SIGNING_SLACK_S:
            problems.append(f"a SPaT was signed {decided_age_s:.2f} s after its decision (bound {max_age_s} s)")
            break
    for h in heard:
        if h.signed_at_s is not None and h.arrived_wall_s - h.signed_at_s > MAX_DELIVERY_LAG_S:
            lag_s = h.arrived_wall_s - h.signed_at_s
            problems.append(f"a {h.message_class.value} arrived {lag_s:.2f} s after it was signed (queued)")
            break
    if attack_started_s > 0 and not [h for h in heard if attack_started_s <= h.arrived_monotonic_s]:
        problems.append("nothing heard from the unit since the attack started")

    # 2. SPaT back at its rate within 1 s.
    spat_problem = spat_back_at_rate(watch.spats(), attack_end_s, site.v2x.spat_rate_hz)
    if spat_problem:
        problems.append(spat_problem)

    # 3. No stage restart.
    for stage in supervisor.health():
        if not stage.alive or stage.restarts:
            problems.append(f"stage {stage.name} restarted {stage.restarts} times: {stage.detail}")

    # 4. No lost aggregate interval.
    if aggregates:
        seqs = watch.seqs()
        if len(set(seqs)) < 2:
            problems.append(f"only {len(set(seqs))} aggregate intervals reached the centre topic")
        elif missing := missing_intervals(seqs):
            problems.append(f"aggregate intervals {missing} never reached the centre topic (heard {sorted(set(seqs))})")
        elif max(seqs) * interval_s < _wall(attack_end_s) - interval_s:
            problems.append(f"no aggregate interval after the attack reached the centre (last seq {max(seqs)})")

    # 5. Counted and logged, without flooding.
    log_text = log_path.read_text(errors="replace") if log_path is not None else ""
    duration_s = max(0.0, time.monotonic() - attack_started_s)
    most_lines = math.ceil(duration_s / LOG_PERIOD_S) + 1
    for rejection in rejected:
        where = f"{rejection.stage} {rejection.topic} {rejection.reason}"
        count = supervisor_count(supervisor, rejection)
        if count < 1:
            problems.append(f"not counted in the supervisor's health data: {where}")
        if watch.health is None:
            problems.append("no health message heard")
        else:
            in_metrics = counted_in_metrics(watch.health, rejection)
            if not in_metrics:
                problems.append(f"not counted in the health message and /metrics: {where}")
        if log_path is not None:
            lines = guard_log_lines(log_text, rejection)
            if not lines:
                problems.append(f"not logged: {where}")
            elif len(lines) > most_lines:
                problems.append(f"logged {len(lines)} times in {duration_s:.0f} s (flooding): {where}")
    for refusal in counted_elsewhere:
        if refusal.count < 1:
            problems.append(f"not counted: {refusal.what}")
        if not refusal.log_lines:
            problems.append(f"not logged: {refusal.what}")
        elif len(refusal.log_lines) > max(refusal.count, most_lines):
            problems.append(f"logged {len(refusal.log_lines)} lines for {refusal.count} refusals: {refusal.what}")
    if not rejected and not counted_elsewhere:
        problems.append("the test names no rejection to check")

    assert not problems, "the unit did not withstand the attack:\n- " + "\n- ".join(problems)


def _all_in_health(health: UnitHealth, rejected: Sequence[StageRejection]) -> bool:
    return all(counted_in_metrics(health, rejection) for rejection in rejected)


def _wall(monotonic_s: float) -> float:
    return time.time() - (time.monotonic() - monotonic_s)


__all__ = [
    "CountedElsewhere",
    "Heard",
    "StageRejection",
    "UnitWatch",
    "assert_withstood",
    "missing_intervals",
    "spat_back_at_rate",
    "stage_logs_to",
]
