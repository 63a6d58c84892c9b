"""The uplink stage: interval aggregates into a durable Redis outbox, then to the centre.

Records leave the outbox only when the centre's broker has acknowledged them (QoS 1), so an
outage of the backhaul or of the unit loses nothing; the centre drops duplicates by
(unit_id, seq). If Redis itself is down, sealed records wait in a bounded memory buffer.
"""

from __future__ import annotations

import logging
import time

from rsu.messages import Aggregate, CollisionWarning, DetectorStates, Message, SignalState, decode
from rsu.runtime.bus import MqttBus
from rsu.runtime.stage import StageContext
from rsu.topics import Topics
from rsu.uplink.aggregator import IntervalAggregator
from rsu.uplink.outbox import BufferedOutbox, Outbox, OutboxUnavailable

log = logging.getLogger(__name__)

FORWARD_BATCH = 50
ACK_TIMEOUT_S = 2.0


def run(ctx: StageContext) -> None:
    site = ctx.site
    topics = Topics(site.unit_id, site.mqtt.topic_prefix, site.uplink.topic_prefix)
    local = MqttBus(site.mqtt, ctx.client_id())
    for topic in (topics.detectors, topics.signal_state, topics.warnings):
        local.subscribe(topic, qos=1 if topic == topics.warnings else 0)
    local.connect()
    centre = MqttBus(site.uplink.mqtt or site.mqtt, f"{ctx.client_id()}-centre")
    centre.connect()
    outbox = BufferedOutbox(Outbox.from_url(site.redis.url, site.unit_id, site.uplink.outbox_max_records))
    aggregator = IntervalAggregator(site, site.uplink.interval_s)
    newest_time_s = 0.0
    try:
        while not ctx.stopping:
            ctx.beat()
            item = local.get(timeout_s=0.2)
            if item is not None:
                newest_time_s = max(newest_time_s, absorb(aggregator, topics, item.topic, item.payload))
            now_s = time.time() if ctx.options.realtime else newest_time_s
            if now_s <= 0:
                continue  # message time starts with the first message
            for body in aggregator.seal_until(now_s):
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
            forward(outbox, centre, topics.aggregates)
    finally:
        local.close()
        centre.close()


def absorb(aggregator: IntervalAggregator, topics: Topics, topic: str, payload: bytes) -> float:
    """Feed one local message to the aggregator; return its capture time (0 if unusable)."""
    message: Message
    try:
        if topic == topics.detectors:
            message = decode(DetectorStates, payload)
            aggregator.add_detectors(message)
        elif topic == topics.signal_state:
            message = decode(SignalState, payload)
            aggregator.add_signal(message)
        elif topic == topics.warnings:
            message = decode(CollisionWarning, payload)
            aggregator.add_warning(message)
        else:
            return 0.0
    except ValueError as exc:
        log.warning("dropping bad message on %s: %s", topic, exc)
        return 0.0
    return message.capture_time_s


def forward(outbox: BufferedOutbox, centre: MqttBus, topic: str) -> int:
    """Send the oldest records; remove each only once the centre's broker acknowledged it."""
    if not centre.connected:
        return 0
    try:
        outbox.flush_buffer()
        batch = outbox.peek(FORWARD_BATCH)
    except OutboxUnavailable as exc:
        log.warning("outbox unavailable, records held in memory: %s", exc)
        return 0
    in_flight = [(entry_id, centre.publish(topic, payload, qos=1)) for entry_id, payload in batch]
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
    return acknowledged
