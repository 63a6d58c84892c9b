"""The uplink stage: interval aggregates into a durable Redis outbox, then to the centre.

Records leave the outbox only when the centre's broker has acknowledged them (QoS 1), so an
outage of the backhaul or of the unit loses nothing; the centre drops duplicates by
(unit_id, seq). What happens on each fault:

- Centre broker unreachable (also when the stage starts): sealing goes on, records wait in the
  outbox; the link reconnects by itself and the backlog drains oldest first, new records behind it.
- Outbox full (uplink.outbox_max_records): Redis trims the oldest records; the count is kept in
  Redis and every increase is logged as a warning.
- Redis down: sealed records wait in a bounded memory buffer, in order, and go into the outbox
  once Redis answers again.
- Unit restarted: the outbox keeps where sealing stopped (sealed_until), and the new run seals the
  intervals since then ("no data" records, observed_s 0 and no counts, where the unit saw
  nothing), so the centre sees no gap; an interval sealed before is never sealed again, so a seq
  is never re-sent with other contents (a clock behind the mark waits for it, logged once).

Several interval lengths (uplink.aggregation_intervals_s, by default 60 s and 900 s): one
aggregator each, fed the same messages and sealed by the same clock. Each record carries its
interval_s and seq = its interval index, unique and stable per (unit, interval length); the centre
deduplicates by (unit_id, interval_s, seq). The sealed_until mark follows the shortest interval;
every longer one is a multiple of it, so it has sealed exactly up to the mark rounded down to its
own length, and resumes from there after a restart.

Every local input passes the stage's input guard (rsu.runtime.input_guard) before it reaches an
aggregator: it must decode against its bounded schema (an infinite queue or 1e20 queued vehicles
is refused there, so a sealed interval never carries a value the centre rejects, and the interval
is not lost), and live its capture time must not lead the wall clock. Every message counts here
(crossings, events), so there is no newest-only and no age bound: an old message falls in its own
interval or is ignored by the aggregator.
"""

from __future__ import annotations

import logging
import math
import time
from typing import NamedTuple

from rsu.runtime.bus import MqttBus
from rsu.runtime.input_guard import InputGuard, TopicRule
from rsu.runtime.stage import StageContext
from rsu.uplink.aggregator import DEFAULT_RESUME_MAX_GAP_S, AggregateBody, IntervalAggregator
from rsu.uplink.outbox import BufferedOutbox, Outbox, OutboxUnavailable
from rsu_contracts.config.model import SiteConfig
from rsu_contracts.messages import Aggregate, CollisionWarning, DetectorStates, SignalState
from rsu_contracts.topics import AGGREGATES, DETECTORS, SIGNAL_STATE, WARNINGS_SENT, Route, Topics

log = logging.getLogger(__name__)

FORWARD_BATCH = 50
ACK_TIMEOUT_S = 2.0
TRIM_CHECK_PERIOD_S = 2.0
# The warnings as the V2X stage sent them, in the internal JSON form: the vehicle-facing topic may
# carry UPER DENMs or use another layout (v2x.encodings, v2x.topic_layout).
INPUTS = (DETECTORS, SIGNAL_STATE, WARNINGS_SENT)


def run(ctx: StageContext) -> None:
    site = ctx.site
    topics = Topics.for_site(site)
    local = MqttBus(site.mqtt, ctx.client_id())
    for spec in INPUTS:
        local.subscribe(topics.topic(spec), qos=spec.qos)
    local.connect()
    # The backhaul may be down when the unit starts: sealing must not wait for it.
    centre = MqttBus(site.uplink.mqtt or site.mqtt, f"{ctx.client_id()}-centre")
    centre.connect_in_background()
    outbox = BufferedOutbox(Outbox.from_url(site.redis.url, site.unit_id, site.uplink.outbox_max_records))
    aggregators = [IntervalAggregator(site, length) for length in site.uplink.aggregation_intervals_s]
    resume_where_the_last_run_stopped(aggregators, outbox)
    progress = SealProgress()
    trim_watch = TrimWatch(outbox, site.uplink.outbox_max_records)
    newest_time_s = 0.0
    may_have_backlog = True  # records of an earlier run may be waiting
    guard = input_guard(site)
    behind_logged = False
    try:
        while not ctx.stopping:
            ctx.beat()
            ctx.report_inputs(guard.report())
            item = local.get(timeout_s=0.2)
            if item is not None:
                clock_s = time.time() if ctx.options.realtime else None
                newest_time_s = max(
                    newest_time_s, absorb(aggregators, topics, item.topic, item.payload, guard, clock_s)
                )
            now_s = time.time() if ctx.options.realtime else newest_time_s
            if now_s <= 0:
                continue  # message time starts with the first message
            bodies = seal_all(aggregators, now_s)
            behind_s = aggregators[0].clock_behind_resume_s
            if behind_s is not None and not behind_logged:
                behind_logged = True
                log.warning(
                    "the clock is %.0f s behind where the previous run stopped sealing: intervals up to "
                    "then are not sealed again (their sequence numbers are taken)",
                    behind_s,
                )
            for body in bodies:
                record = Aggregate(
                    unit_id=site.unit_id,
                    # The interval index: increasing, and the same after a restart, so the centre's
                    # (unit_id, seq) deduplication also holds across unit restarts.
                    seq=round(body.interval_start_s / body.interval_s),
                    capture_time_s=body.interval_end_s,
                    publish_time_s=now_s,
                    **body.fields(),
                )
                outbox.append(record.to_json())
                if body.interval_s == aggregators[0].interval_s:
                    progress.sealed(body.interval_end_s)
                may_have_backlog = True
            if may_have_backlog or outbox.buffered:
                may_have_backlog = not forward(outbox, centre, topics.route(AGGREGATES)).outbox_empty
            progress.mark(outbox)
            trim_watch.check()
        # A requested stop: one last forward of what is held (what cannot go now stays in the outbox).
        if may_have_backlog or outbox.buffered:
            forward(outbox, centre, topics.route(AGGREGATES))
            progress.mark(outbox)
        if outbox.buffered:
            # Records held in memory (Redis was down) go to Redis now if it is back, for the next run.
            try:
                outbox.flush_buffer()
            except OutboxUnavailable:
                log.warning("stopping with %d aggregate(s) not yet in Redis: they are lost", outbox.buffered)
    finally:
        local.close()
        centre.close()


def seal_all(aggregators: list[IntervalAggregator], now_s: float) -> list[AggregateBody]:
    """Every interval of every length that ended by now_s, by end time (shorter first at a tie)."""
    bodies = [body for aggregator in aggregators for body in aggregator.seal_until(now_s)]
    return sorted(bodies, key=lambda body: (body.interval_end_s, body.interval_s))


def resume_where_the_last_run_stopped(aggregators: list[IntervalAggregator], outbox: BufferedOutbox) -> None:
    """aggregators shortest interval first; the mark is the shortest one's, the longer ones round it down."""
    try:
        sealed_until_s = outbox.sealed_until()
    except OutboxUnavailable as exc:
        log.warning("cannot read where the previous run stopped sealing, starting afresh: %s", exc)
        return
    if sealed_until_s is None:
        return
    for aggregator in aggregators:
        length = aggregator.interval_s
        aggregator.resume(
            math.floor(sealed_until_s / length + 1e-9) * length, max_gap_s=max(DEFAULT_RESUME_MAX_GAP_S, length)
        )


class SealProgress:
    """Writes the outbox's sealed_until mark once every sealed record has reached Redis."""

    def __init__(self) -> None:
        self.sealed_until_s: float | None = None
        self.marked_until_s: float | None = None

    def sealed(self, interval_end_s: float) -> None:
        self.sealed_until_s = interval_end_s

    def mark(self, outbox: BufferedOutbox) -> None:
        # While records are buffered in memory the mark must not run ahead of the stream: a restart
        # then would lose them (they are gone with the process) and not seal them again.
        if self.sealed_until_s is None or self.sealed_until_s == self.marked_until_s or outbox.buffered:
            return
        try:
            outbox.mark_sealed_until(self.sealed_until_s)
        except OutboxUnavailable:
            return  # tried again on the next loop
        self.marked_until_s = self.sealed_until_s


class TrimWatch:
    """Logs a warning whenever the outbox's bound made Redis trim records that were never sent."""

    def __init__(self, outbox: BufferedOutbox, max_records: int, period_s: float = TRIM_CHECK_PERIOD_S) -> None:
        self.outbox = outbox
        self.max_records = max_records
        self.period_s = period_s
        self.reported_total: int | None = None  # trimmed before this run started is not news
        self._next_check_s = 0.0

    def check(self) -> None:
        now = time.monotonic()
        if now < self._next_check_s:
            return
        self._next_check_s = now + self.period_s
        try:
            total = self.outbox.trimmed_total()
        except OutboxUnavailable:
            return
        if self.reported_total is not None and total > self.reported_total:
            log.warning(
                "uplink outbox full (bound %d records): trimmed the %d oldest aggregates unsent, %d in total",
                self.max_records,
                total - self.reported_total,
                total,
            )
        self.reported_total = total


def input_guard(site: SiteConfig) -> InputGuard:
    topics = Topics.for_site(site)
    return InputGuard(
        "uplink",
        [TopicRule.of(topics, spec, newest_only=False, check_age=False) for spec in INPUTS],
    )


def absorb(
    aggregators: list[IntervalAggregator],
    topics: Topics,
    topic: str,
    payload: bytes,
    guard: InputGuard,
    clock_s: float | None,
) -> float:
    """Feed one local message to every aggregator; return its capture time (0 if refused: counted)."""
    if topic not in guard.rules:
        return 0.0
    message = guard.admit(topic, payload, clock_s)
    if isinstance(message, DetectorStates):
        for aggregator in aggregators:
            aggregator.add_detectors(message)
    elif isinstance(message, SignalState):
        for aggregator in aggregators:
            aggregator.add_signal(message)
    elif isinstance(message, CollisionWarning):
        for aggregator in aggregators:
            aggregator.add_warning(message)
    else:
        return 0.0
    return message.capture_time_s


class Forwarded(NamedTuple):
    acknowledged: int
    # Everything there was went out and was acknowledged: no need to look again until the next record.
    outbox_empty: bool


def forward(outbox: BufferedOutbox, centre: MqttBus, route: Route) -> Forwarded:
    """Send the oldest records; remove each only once the centre's broker acknowledged it."""
    if not centre.connected:
        return Forwarded(0, outbox_empty=False)
    try:
        outbox.flush_buffer()
        batch = outbox.peek(FORWARD_BATCH)
    except OutboxUnavailable:
        # BufferedOutbox logged the outage once; records wait in memory meanwhile.
        return Forwarded(0, outbox_empty=False)
    in_flight = [(entry_id, centre.publish_to(route, payload)) for entry_id, payload in batch]
    deadline = time.monotonic() + ACK_TIMEOUT_S
    acknowledged = 0
    for entry_id, info in in_flight:
        while not info.is_published() and time.monotonic() < deadline:
            time.sleep(0.005)
        if not info.is_published():
            break  # keep order: the rest goes again next time
        try:
            outbox.ack(entry_id)
        except OutboxUnavailable:
            break
        acknowledged += 1
    return Forwarded(acknowledged, outbox_empty=acknowledged == len(batch) < FORWARD_BATCH and not outbox.buffered)
