"""The traffic centre's collector: aggregates from the units' MQTT topics into the store (SQLite or PostgreSQL).

Delivery is at least once end to end. The collector keeps a persistent MQTT v5 session
(clean_start False + a session expiry), so the broker queues aggregates while it is down, and it
acknowledges each message (manual PUBACK) only after the transaction holding it has committed: a
crash between receive and commit means the broker sends it again, and the store drops the repeat
by (unit_id, interval_s, seq). Several collectors can share the topics (MQTT v5 shared subscription,
`$share/<group>/...`, shared_filter) and one PostgreSQL; each keeps its own persistent session.
A payload that does not decode is counted, logged with the reason and acknowledged (it would never
decode on redelivery either); the collector never stops for one.
"""

from __future__ import annotations

import argparse
import logging
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from types import FrameType

from rsu.centre.schema import SchemaTooNew
from rsu.centre.store import AddResult, AggregateStore, StoreError, StoreIntegrityError
from rsu.runtime.mqtt import BrokerUnavailable, Inbound, MqttClient, PersistentSession
from rsu.runtime.mqtt_options import MqttOptionError, add_mqtt_connection_options, mqtt_config_from_options
from rsu_contracts.config.model import MqttConfig
from rsu_contracts.messages.aggregates import Aggregate
from rsu_contracts.messages.envelope import MessageError, decode
from rsu_contracts.topics import AGGREGATES

log = logging.getLogger(__name__)

DEFAULT_TOPIC_FILTER = AGGREGATES.format("+")  # every unit, default uplink.topic_prefix
DEFAULT_CLIENT_ID = "rsu-centre-collector"
# Long enough to ride out a weekend outage of the centre; the broker's max_queued_messages
# bounds how much it holds meanwhile.
DEFAULT_SESSION_EXPIRY_S = 3 * 24 * 3600
# Unacknowledged messages the broker may have in flight to us; it also bounds the inbox, since
# nothing is acknowledged before it has been written.
DEFAULT_RECEIVE_MAXIMUM = 1000
DEFAULT_BATCH_SIZE = 500
# Invalid payloads are logged one by one up to this many, then once per this many.
_LOG_EVERY_INVALID = 1000


@dataclass(frozen=True)
class CollectorStats:
    received: int
    stored: int
    duplicates: int
    seq_conflicts: int
    invalid: int
    connected: bool


@dataclass(frozen=True)
class _Inbound:
    message: Inbound
    received_time_s: float


class _StopRequested(Exception):
    """Stop was requested while the store could not be written."""


class CentreCollector:
    def __init__(
        self,
        mqtt_config: MqttConfig,
        store: AggregateStore,
        topic_filter: str = DEFAULT_TOPIC_FILTER,
        *,
        client_id: str = DEFAULT_CLIENT_ID,
        session_expiry_s: int = DEFAULT_SESSION_EXPIRY_S,
        receive_maximum: int = DEFAULT_RECEIVE_MAXIMUM,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        self.mqtt_config = mqtt_config
        self.store = store
        self.topic_filter = topic_filter
        self.client_id = client_id
        self.session_expiry_s = session_expiry_s
        self.receive_maximum = receive_maximum
        self.batch_size = batch_size
        self._unit_level = _unit_level(topic_filter)
        # Unbounded on purpose: with manual acknowledgement the broker never has more than
        # receive_maximum messages in flight to us, so this queue cannot grow past that.
        self._inbox: queue.Queue[_Inbound] = queue.Queue()
        self._started = False
        self._stop_event: threading.Event | None = None
        self.received = 0
        self.stored = 0
        self.duplicates = 0
        self.seq_conflicts = 0
        self.invalid = 0
        self._mqtt = MqttClient(
            mqtt_config,
            client_id,
            self._on_message,
            session=PersistentSession(expiry_s=session_expiry_s, receive_maximum=receive_maximum),
            manual_ack=True,
            broker_label="centre MQTT broker",
        )
        self._mqtt.subscribe(topic_filter, qos=1)

    @property
    def address(self) -> str:
        return self._mqtt.address

    @property
    def connected(self) -> bool:
        """Connected and subscribed: the broker granted the subscription."""
        return self._mqtt.ready and not self._mqtt.refused_subscriptions

    def stats(self) -> CollectorStats:
        return CollectorStats(
            self.received, self.stored, self.duplicates, self.seq_conflicts, self.invalid, self.connected
        )

    # lifecycle

    def start(self, timeout_s: float = 5.0) -> None:
        """Connect with the persistent session and start the network thread."""
        if self._started:
            return
        # Ready only once the broker confirmed the subscription: before that, a new session
        # would miss what is published.
        self._mqtt.connect(timeout_s)
        self._started = True
        refused = self._mqtt.refused_subscriptions
        if refused:
            self.close()
            raise BrokerUnavailable(
                f"centre MQTT broker at {self.address} refused the subscription to {self.topic_filter}: "
                f"{refused[self.topic_filter]}"
            )

    def run(self, stop_event: threading.Event) -> CollectorStats:
        """Store aggregates until stop_event is set; return the final counts."""
        self.start()
        self._stop_event = stop_event
        try:
            while not stop_event.is_set():
                self.process_pending(wait_s=0.2)
            # Write what already arrived so the broker need not send it again (but not what
            # keeps arriving meanwhile: stopping must not wait for the traffic to pause).
            remaining = self._inbox.qsize()
            while remaining > 0:
                processed = self.process_pending(wait_s=0.0)
                if not processed:
                    break
                remaining -= processed
        except _StopRequested:
            log.warning("stopped with unwritten aggregates; the broker will deliver them again")
        finally:
            self.close()
        return self.stats()

    def close(self) -> None:
        # A normal DISCONNECT keeps the session (and its queue) for session_expiry_s.
        if self._started:
            self._mqtt.close()
            self._started = False

    # the work

    def process_pending(self, wait_s: float) -> int:
        """Decode, store and acknowledge one batch; return how many messages it held."""
        batch = self._take_batch(wait_s)
        if not batch:
            return 0
        decoded: list[tuple[Aggregate, float]] = []
        for item in batch:
            aggregate = self._decode(item)
            if aggregate is not None:
                decoded.append((aggregate, item.received_time_s))
        result = self._write(decoded)
        self.stored += result.stored
        self.duplicates += result.duplicates
        self.seq_conflicts += result.seq_conflicts
        if result.seq_conflicts:
            log.error(
                "%d aggregates reused a seq with a different interval (unit lost its counter?); "
                "kept in table seq_conflicts",
                result.seq_conflicts,
            )
        self._acknowledge(batch)
        return len(batch)

    def _write(self, decoded: list[tuple[Aggregate, float]]) -> AddResult:
        try:
            return self._retrying(lambda: self.store.add_many(decoded))
        except StoreIntegrityError:
            # One aggregate breaks a constraint (e.g. a lane listed twice): store the others.
            total = AddResult()
            for aggregate, received_time_s in decoded:
                try:
                    total = total + self._retrying(partial(self.store.add, aggregate, received_time_s))
                except StoreIntegrityError as exc:
                    self._reject(self._topic_hint(aggregate), f"seq {aggregate.seq} cannot be stored: {exc}")
            return total

    def _retrying(self, write: Callable[[], AddResult]) -> AddResult:
        while True:
            try:
                return write()
            except StoreIntegrityError:
                raise
            except StoreError as exc:
                # Disk full, database locked, server down...: nothing is acknowledged yet, so wait and retry
                # rather than drop the batch; on stop, the broker will send it again later.
                if self._stop_event is not None and self._stop_event.is_set():
                    raise _StopRequested from None
                log.error("cannot write to %s (%s); retrying", self.store.label, exc)
                time.sleep(1.0)

    def _topic_hint(self, aggregate: Aggregate) -> str:
        return topic_of_filter(self.topic_filter).replace("+", aggregate.unit_id, 1)

    def _take_batch(self, wait_s: float) -> list[_Inbound]:
        try:
            first = self._inbox.get(timeout=wait_s) if wait_s > 0 else self._inbox.get_nowait()
        except queue.Empty:
            return []
        batch = [first]
        while len(batch) < self.batch_size:
            try:
                batch.append(self._inbox.get_nowait())
            except queue.Empty:
                break
        return batch

    def _decode(self, item: _Inbound) -> Aggregate | None:
        try:
            aggregate = decode(Aggregate, item.message.payload)
        except MessageError as exc:
            self._reject(item.message.topic, str(exc))
            return None
        except (UnicodeDecodeError, ValueError) as exc:
            self._reject(item.message.topic, f"undecodable payload: {exc}")
            return None
        topic_unit = self._topic_unit(item.message.topic)
        if topic_unit is not None and topic_unit != aggregate.unit_id:
            # A unit writing under another unit's topic is misconfigured or spoofing; keep the
            # data out rather than file it under either id.
            self._reject(item.message.topic, f"payload unit_id {aggregate.unit_id!r} does not match the topic")
            return None
        return aggregate

    def _reject(self, topic: str, reason: str) -> None:
        self.invalid += 1
        if self.invalid <= _LOG_EVERY_INVALID or self.invalid % _LOG_EVERY_INVALID == 0:
            log.warning("invalid aggregate on %s (%d invalid so far): %s", topic, self.invalid, reason)

    def _topic_unit(self, topic: str) -> str | None:
        if self._unit_level is None:
            return None
        levels = topic.split("/")
        return levels[self._unit_level] if self._unit_level < len(levels) else None

    def _acknowledge(self, batch: list[_Inbound]) -> None:
        for item in batch:
            # Messages from an older connection are not acknowledged: the broker sends them again.
            self._mqtt.ack(item.message)

    def _on_message(self, message: Inbound) -> None:
        # Network thread.
        self.received += 1
        self._inbox.put(_Inbound(message, time.time()))


def shared_filter(group: str, topic_filter: str) -> str:
    """The MQTT v5 shared subscription of group to topic_filter: the broker hands each message to one
    of the group's collectors (all committing to the same PostgreSQL)."""
    if not group or any(character in group for character in "/+#"):
        raise ValueError(f"a share group name has no '/', '+' or '#': {group!r}")
    return f"$share/{group}/{topic_filter}"


def topic_of_filter(topic_filter: str) -> str:
    """The filter the received topics match: without the $share/<group>/ of a shared subscription."""
    if topic_filter.startswith("$share/"):
        return topic_filter.split("/", 2)[2] if topic_filter.count("/") >= 2 else ""
    return topic_filter


def _unit_level(topic_filter: str) -> int | None:
    """The topic level holding the unit id: the single '+' of the filter, if there is exactly one."""
    levels = topic_of_filter(topic_filter).split("/")
    wildcards = [index for index, level in enumerate(levels) if level == "+"]
    if len(wildcards) != 1 or "#" in levels:
        return None
    return wildcards[0]


# command line


def add_centre_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Add `centre`: collect the units' aggregates into SQLite or PostgreSQL until stopped."""
    parser = subparsers.add_parser(
        "centre",
        help="traffic centre: collect unit aggregates from MQTT into SQLite or PostgreSQL",
        description="Subscribe to the units' aggregate topics (persistent QoS 1 session) and store "
        "every interval once in an SQLite or PostgreSQL database that can be queried with plain SQL "
        "(tables created and migrated on start).",
    )
    parser.add_argument(
        "--db",
        required=True,
        help="postgresql://user@host:port/dbname, sqlite:///path, or a path meaning an SQLite file "
        "(created if missing)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="centre MQTT broker host (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=1883, help="centre MQTT broker port (default 1883)")
    parser.add_argument("--topic", default=DEFAULT_TOPIC_FILTER, help=f"topic filter (default {DEFAULT_TOPIC_FILTER})")
    parser.add_argument(
        "--client-id",
        default=DEFAULT_CLIENT_ID,
        help="stable MQTT client id: names the session (one per collector, kept across restarts)",
    )
    parser.add_argument(
        "--share-group",
        help="share the topic with the other collectors of this group (MQTT v5 $share/<group>/<topic>): "
        "each message goes to one of them",
    )
    add_mqtt_connection_options(parser, broker="centre broker")
    parser.add_argument(
        "--session-expiry-s",
        type=int,
        default=DEFAULT_SESSION_EXPIRY_S,
        help="how long the broker keeps queueing for a stopped collector (default 3 days)",
    )
    parser.set_defaults(handler=run_centre_command)
    return parser


def run_centre_command(args: argparse.Namespace) -> int:
    try:
        config = mqtt_config_from_options(args, host=args.host, port=args.port)
    except MqttOptionError as exc:
        print(f"rsu centre: {exc}", file=sys.stderr)
        return 2
    topic_filter = args.topic
    if args.share_group is not None:
        try:
            topic_filter = shared_filter(args.share_group, args.topic)
        except ValueError as exc:
            print(f"rsu centre: {exc}", file=sys.stderr)
            return 2
    stop_event = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop_event.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, request_stop)
    try:
        store = AggregateStore(args.db)
    except (StoreError, SchemaTooNew, ValueError) as exc:
        print(f"rsu centre: cannot open the database {args.db}: {exc}", file=sys.stderr)
        return 2
    with store:
        collector = CentreCollector(
            config, store, topic_filter, client_id=args.client_id, session_expiry_s=args.session_expiry_s
        )
        stats = collector.run(stop_event)
    print(
        f"centre: received {stats.received}, stored {stats.stored}, duplicates {stats.duplicates}, "
        f"seq conflicts {stats.seq_conflicts}, invalid {stats.invalid}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rsu")
    add_centre_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["centre", *(sys.argv[1:] if argv is None else argv)])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        return run_centre_command(args)
    except BrokerUnavailable as exc:
        print(f"rsu centre: error: {exc}", file=sys.stderr)
        return 2
