"""The V2X stage: what vehicles receive from the unit, signed, on the topics of v2x.wire.

- SPaT at v2x.spat_rate_hz from the controller's signal states (J2735 event states, min / max /
  likely end times), QoS 0;
- MAP (lanes, stop lines, connections, crosswalks) retained, at start and every map_period_s;
- collision and violation warnings (new / update / ended, one per conflict, v2x.conflicts and
  v2x.warnings) from the tracks, QoS 1;
- sensor sharing: every tracked object in one rsu.v2x.objects message at objects_rate_hz.

Encoding per class (JSON or ETSI UPER) and the topic layout (default or the Chinese
V2X/RSU/{unit}/{MSG}/UP) come from the site's v2x section. Every message is signed with the
unit's Ed25519 key (v2x.signing): v2x.signing_key in the site file, or else a key this stage
generates on first start in the unit's state dir (unit_key_paths) and logs the public key's path;
vehicles need that public key (`rsu vehicle listen --key ...`).

Rates follow the message clock (the capture time of the input), so a lock-step simulation and a
live unit send the same per-second pattern.

Nothing is signed that the unit did not compute or no longer holds (the local bus may be writable
by others, rsu.runtime.input_guard): every input is decoded against its bounded schema and checked
for freshness on the stage's clock (its publish time), a backlog of a state topic is acted on once
for its newest message, every signal state goes through the conflict check before a SPaT is built
from it (conflicting greens, or a group the site does not have: no SPaT), and no SPaT is signed for
a signal state older than v2x.max_spat_age_s. Each refusal is counted, logged without flooding, and
reported to the unit's health.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from rsu.runtime.bus import MqttBus, Received
from rsu.runtime.input_guard import FUTURE_TOLERANCE_S, Admitted, InputGuard, Rejection, TopicRule
from rsu.runtime.latency import freeze_startup_objects, set_thread_realtime_priority, tune_interpreter_for_latency
from rsu.runtime.stage import StageContext
from rsu.stages.unit_keys import unit_signer
from rsu_contracts.config.model import SiteConfig
from rsu_contracts.messages import (
    CollisionWarning,
    Message,
    Sequencer,
    Severity,
    SharedObjects,
    SignalState,
    Spat,
    TrackList,
    WarningStatus,
)
from rsu_contracts.topics import SIGNAL_STATE, SPAT_SENT, TRACKS, WARNINGS_SENT, Route, Topics
from signal_control.backends import conflicting_pairs
from v2x.conflicts import ConflictDetector
from v2x.mapdata import MapData, build_map
from v2x.signing import UnitSigner
from v2x.spat import spat_movements
from v2x.uper import ItsIdentity
from v2x.warnings import WarningEvent, WarningTracker
from v2x.wire import Encoding, MessageClass, Publisher, TopicLayout, WirePublisher

log = logging.getLogger(__name__)

# Rate limits accept a message this much early: timestamps of a 10 Hz source jitter by a few ms.
RATE_TOLERANCE_S = 0.01


def its_identity(site: SiteConfig) -> ItsIdentity:
    return ItsIdentity.for_site(site, site.v2x.station_id, site.v2x.intersection_numeric_id)


def topic_layout(site: SiteConfig) -> TopicLayout:
    prefix = site.mqtt.topic_prefix
    return TopicLayout.china(prefix) if site.v2x.topic_layout == "china" else TopicLayout(prefix=prefix)


def encodings(site: SiteConfig) -> Mapping[MessageClass, Encoding]:
    chosen = site.v2x.encodings
    return {
        MessageClass.SPAT: Encoding(chosen.spat),
        MessageClass.MAP: Encoding(chosen.map),
        MessageClass.WARNINGS: Encoding(chosen.warnings),
        MessageClass.OBJECTS: Encoding.JSON,
    }


def wire_publisher(site: SiteConfig, bus: Publisher, signer: UnitSigner) -> WirePublisher:
    return WirePublisher(
        bus,
        signer,
        topic_layout(site),
        encodings(site),
        its_identity(site),
        # The retained MAP's signature vouches for two of the site's MAP periods.
        retained_periods_s={MessageClass.MAP: site.v2x.map_period_s},
    )


class Wire(Protocol):
    """Encodes, signs and publishes one message (v2x.wire.WirePublisher)."""

    def publish(self, message: Message) -> object: ...


class LocalPublisher(Protocol):
    """What UnitWire needs for the internal copies (rsu.runtime.bus.MqttBus fits)."""

    def publish_to(self, route: Route, payload: bytes) -> Any: ...


class UnitWire:
    """The stage's wire: each message to vehicles (encoded, signed, in the site's topic layout),
    then the SPaT and warnings once more in the internal JSON form on the unit's own topics
    (rsu_contracts.topics SPAT_SENT, WARNINGS_SENT), which the unit's readers use whatever the
    vehicles get. The vehicle-facing message goes first: the copy never delays a warning."""

    def __init__(self, wire: Wire, local: LocalPublisher, topics: Topics) -> None:
        self.wire = wire
        self.local = local
        self._spat = topics.route(SPAT_SENT)
        self._warnings = topics.route(WARNINGS_SENT)
        # The newest internal copy's publish handle (paho's MQTTMessageInfo): it is the last
        # message queued, so once it is out everything before it is too.
        self._last: Any = None

    def publish(self, message: Message) -> object:
        sent = self.wire.publish(message)
        if isinstance(message, Spat):
            self._last = self.local.publish_to(self._spat, message.to_json())
        elif isinstance(message, CollisionWarning):
            self._last = self.local.publish_to(self._warnings, message.to_json())
        return sent

    def wait_until_sent(self, timeout_s: float) -> None:
        """Before the connection closes: let the last messages (the ENDED warnings) go out; a
        disconnect drops what paho still holds beyond its in-flight window."""
        if self._last is None:
            return
        try:
            self._last.wait_for_publish(timeout_s)
        except (RuntimeError, ValueError):
            log.warning("v2x stage stopping: the last messages may not have gone out")


@dataclass
class RateLimit:
    """Lets a message through at most once per period of message time."""

    period_s: float
    last_s: float | None = None

    def due(self, now_s: float) -> bool:
        if self.last_s is not None and now_s - self.last_s < self.period_s - RATE_TOLERANCE_S and now_s >= self.last_s:
            return False
        self.last_s = now_s
        return True


def signal_state_refusal(site: SiteConfig, state: SignalState, now_s: float | None) -> tuple[Rejection, str] | None:
    """Why no SPaT may be signed for this state at now_s (None: it may; now_s None: lock-step, no
    clock to check its age against). Stateless, so a refused state leaves nothing behind and the
    next genuine one goes out at once."""
    unknown = sorted({group.signal_group for group in state.groups} - {group.id for group in site.signal_groups})
    if unknown:
        return Rejection.UNKNOWN_SIGNAL_GROUP, f"signal groups {unknown} are not the site's"
    pairs = conflicting_pairs(state.groups, site)
    if pairs:
        shown = ", ".join(f"{a} and {b}" for a, b in pairs)
        return Rejection.CONFLICTING_GREENS, f"conflicting groups not red together: {shown}"
    if now_s is None:
        return None
    # The controller stamps its decision time as publish_time_s: that is the age the SPaT would carry.
    age_s = now_s - state.publish_time_s
    if age_s > site.v2x.max_spat_age_s:
        return Rejection.TOO_OLD_TO_SIGN, f"decided {age_s:.3f} s ago (bound {site.v2x.max_spat_age_s} s)"
    if -age_s > FUTURE_TOLERANCE_S:
        return Rejection.FUTURE, f"decided {-age_s:.3f} s ahead of the stage's clock"
    return None


def input_guard(site: SiteConfig) -> InputGuard:
    """The V2X stage's inputs: signal states and track lists, both state topics (newest only).

    A signal state's capture time is that of the detector states it was decided on, which may be as
    old as controller.detector_stale_after_s; its age bound is the controller's decision time
    (publish_time_s) against v2x.max_spat_age_s. The conflict check runs at admission too, so a
    forged state that is the newest of a backlog does not hide the genuine one before it."""
    topics = Topics.for_site(site)

    def check_signal_state(message: Message, now_s: float | None) -> tuple[Rejection, str] | None:
        return signal_state_refusal(site, message, now_s) if isinstance(message, SignalState) else None

    return InputGuard(
        "v2x",
        [
            TopicRule.of(topics, SIGNAL_STATE, newest_only=True, check_age=False, check=check_signal_state),
            TopicRule.of(topics, TRACKS, newest_only=True),
        ],
    )


class V2XOutput:
    """The vehicle-facing side of the unit for one site: inputs in, signed messages out.

    Pure logic apart from `wire` (encode, sign, publish), so the latency bench drives exactly what
    the stage runs. Its clock is the publish time it is given (the wall clock live, message time in
    lock-step): inputs are checked for freshness against it.
    """

    def __init__(self, site: SiteConfig, wire: Wire, guard: InputGuard | None = None) -> None:
        self.site = site
        self.wire = wire
        self.guard = guard if guard is not None else input_guard(site)
        topics = Topics.for_site(site)
        self._signal_topic = topics.signal_state
        self._tracks_topic = topics.tracks
        self.detector = ConflictDetector(site, site.v2x.warnings)
        self.tracker = WarningTracker(site.v2x.warnings, site.geo_reference)
        self.latest_signal: SignalState | None = None
        self._sequencers: dict[str, Sequencer] = {}
        self._spat_rate = RateLimit(1.0 / site.v2x.spat_rate_hz)
        self._objects_rate = RateLimit(1.0 / site.v2x.objects_rate_hz)
        self._map_rate = RateLimit(site.v2x.map_period_s)

    def _header(self, schema: str, capture_time_s: float, publish_time_s: float) -> dict[str, object]:
        sequencer = self._sequencers.setdefault(schema, Sequencer(self.site.unit_id))
        return sequencer.header(capture_time_s, publish_time_s)

    def _send(self, message: Message) -> None:
        try:
            self.wire.publish(message)
        except ValueError as exc:  # an encoder refusing a value must not take the stage down
            log.warning("not sent: %s %s: %s", message.SCHEMA, message.seq, exc)

    def maybe_publish_map(self, capture_time_s: float, publish_time_s: float) -> MapData | None:
        """MAP at start and then every map_period_s (message time)."""
        if not self._map_rate.due(capture_time_s):
            return None
        header = self._header(MapData.SCHEMA, capture_time_s, publish_time_s)
        map_data = build_map(self.site, header, self.site.v2x.intersection_numeric_id)
        self._send(map_data)
        return map_data

    def on_signal_state(self, state: SignalState, publish_time_s: float) -> Spat | None:
        """Check the state; remember it for the warning logic; SPaT when due. A state that fails the
        checks is neither signed nor used for warnings (a forged red must not suppress a warning)."""
        if not self.guard.is_fresh(self._signal_topic, state.capture_time_s, publish_time_s):
            return None
        refused = signal_state_refusal(self.site, state, publish_time_s)
        if refused is not None:
            self.guard.reject(self._signal_topic, *refused)
            return None
        if self.latest_signal is None or state.capture_time_s >= self.latest_signal.capture_time_s:
            self.latest_signal = state
        if not self._spat_rate.due(state.capture_time_s):
            return None
        spat = Spat(
            **self._header(Spat.SCHEMA, state.capture_time_s, publish_time_s),
            intersection_id=self.site.unit_id,
            movements=spat_movements(state, publish_time_s),
        )
        self._send(spat)
        return spat

    def on_tracks(self, tracks: TrackList, publish_time_s: float) -> list[CollisionWarning]:
        """Warnings for this snapshot (published), then the objects message when due. A track list
        that is not fresh on the stage's clock is neither searched for conflicts nor re-broadcast."""
        capture_s = tracks.capture_time_s
        if not self.guard.is_fresh(self._tracks_topic, capture_s, publish_time_s):
            return []
        conflicts = self.detector.update(tracks.objects, self.latest_signal, capture_s)
        sent = []
        # Most urgent first: a new warning should not wait behind the end of an old one.
        events = sorted(self.tracker.update(conflicts, capture_s), key=_urgency)
        for event in events:
            warning = CollisionWarning(
                **self._header(CollisionWarning.SCHEMA, capture_s, publish_time_s), **event.fields()
            )
            self._send(warning)
            sent.append(warning)
        if self._objects_rate.due(capture_s):
            self._send(
                SharedObjects(
                    **self._header(SharedObjects.SCHEMA, capture_s, publish_time_s),
                    camera_id=tracks.camera_id,
                    # Image boxes are for local readers (export, the operator's page), never for vehicles.
                    objects=[o.model_copy(update={"image_box": None}) if o.image_box else o for o in tracks.objects],
                    reference=self.site.geo_reference,
                )
            )
        return sent

    def end_all(self, capture_time_s: float, publish_time_s: float) -> list[CollisionWarning]:
        """Explicit ENDED for every active warning (the unit is stopping)."""
        ended = []
        for event in self.tracker.end_all(capture_time_s):
            warning = CollisionWarning(
                **self._header(CollisionWarning.SCHEMA, capture_time_s, publish_time_s), **event.fields()
            )
            self._send(warning)
            ended.append(warning)
        return ended


_STATUS_ORDER = {WarningStatus.NEW: 0, WarningStatus.UPDATE: 1, WarningStatus.ENDED: 2}
_SEVERITY_ORDER = {Severity.CRITICAL: 0, Severity.WARNING: 1, Severity.ADVISORY: 2}


def _urgency(event: WarningEvent) -> tuple[int, int]:
    return _STATUS_ORDER[event.status], _SEVERITY_ORDER[event.severity]


def configure_stage_process() -> None:
    """Process settings for the stage, which is on the warning path."""
    tune_interpreter_for_latency()


def handle(output: V2XOutput, topics: Topics, admitted: Admitted[Received], realtime: bool) -> float:
    """Act on one admitted input; returns its capture time."""
    message = admitted.message
    publish_s = time.time() if realtime or message is None else message.capture_time_s
    if isinstance(message, SignalState) and admitted.delivery.topic == topics.signal_state:
        output.maybe_publish_map(message.capture_time_s, publish_s)
        output.on_signal_state(message, publish_s)
    elif isinstance(message, TrackList) and admitted.delivery.topic == topics.tracks:
        output.on_tracks(message, publish_s)
    else:
        return 0.0
    return message.capture_time_s


def run(ctx: StageContext) -> None:
    configure_stage_process()
    site = ctx.site
    if site.v2x.realtime_priority:
        problem = set_thread_realtime_priority(site.v2x.realtime_priority)  # before any thread starts
        if problem:
            log.warning("v2x stage: %s; normal scheduling", problem)
    topics = Topics.for_site(site)
    bus = MqttBus(site.mqtt, ctx.client_id())
    bus.subscribe(topics.signal_state, qos=SIGNAL_STATE.qos)
    bus.subscribe(topics.tracks, qos=TRACKS.qos)
    bus.connect()
    signer = unit_signer(site, ctx.site_path)
    wire = UnitWire(wire_publisher(site, bus, signer), bus, topics)
    output = V2XOutput(site, wire)
    freeze_startup_objects()
    if ctx.options.realtime:
        now = time.time()
        output.maybe_publish_map(now, now)
    last_capture_s = 0.0
    try:
        while not ctx.stopping:
            ctx.beat()
            ctx.report_inputs(output.guard.report())
            first = bus.get(timeout_s=0.5)
            if first is None:
                if ctx.options.realtime:
                    now = time.time()
                    output.maybe_publish_map(now, now)
                continue
            # Live, a backlog (a burst, a stall) is acted on once per topic, for its newest message:
            # nothing queued is signed late. In lock-step every message is its own step.
            backlog = [first, *bus.drain()] if ctx.options.realtime else [first]
            clock_s = time.time() if ctx.options.realtime else None
            for admitted in output.guard.take(backlog, clock_s):
                last_capture_s = max(last_capture_s, handle(output, topics, admitted, ctx.options.realtime))
        if last_capture_s:
            output.end_all(last_capture_s, time.time() if ctx.options.realtime else last_capture_s)
        wire.wait_until_sent(2.0)
    finally:
        bus.close()
