"""The signal controller stage: detector states in, signal states (with SPaT timing) out.

In lock-step simulation the controller decides once per detector message, at that message's
time. Live, it decides at its own rate on the wall clock, using the newest detector states while
they are fresh; when they go stale the controller itself falls back to recall.

Priority requests (emergency preemption, transit priority) arrive signed on the request topic;
`v2x.priority.PriorityGate` authenticates, validates and rate limits them, and only the requests it
accepted reach the controller, as calls it serves until they end. Every request is answered on the
status topic (signed with the unit's V2X key), and so is each request the controller starts to
serve or ends (max dwell). Signatures and request lifetimes run on the wall clock.

Detector states are checked by the stage's input guard (rsu.runtime.input_guard) before the
controller sees them: a state stamped ahead of the wall clock or older than
controller.detector_stale_after_s is dropped and counted, so one forged message can never hold the
controller on its picture; of a backlog only the newest state counts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from rsu.cabinet.heads import NtcipSignalHeads, leave_cabinet, through_cabinet
from rsu.key_files import priority_gate_from_site
from rsu.runtime.bus import MqttBus, Received
from rsu.runtime.input_guard import InputGuard, TopicRule
from rsu.runtime.stage import Ratekeeper, StageContext
from rsu.stages.outlet import Outlet
from rsu.stages.unit_keys import unit_signer
from rsu_contracts.config.model import SiteConfig
from rsu_contracts.messages import DetectorStates, PriorityStatus, PriorityStatusKind, SignalState
from rsu_contracts.topics import DETECTORS, PRIORITY_REQUEST, PRIORITY_STATUS, SIGNAL_STATE, Topics
from signal_control import ControllerOutput, SignalController
from signal_control.lookahead import arrivals_by_lane
from signal_control.phasing import PhasePlan
from signal_control.priority import PriorityCall
from v2x.priority import PriorityGate, PriorityOutcome
from v2x.signing import UnitSigner

log = logging.getLogger(__name__)

KEY_READ_ATTEMPTS = 5
KEY_READ_RETRY_S = 0.2


class PriorityDesk:
    """The stage's side of priority: requests in through the gate, signed status answers out."""

    def __init__(self, gate: PriorityGate, signer: UnitSigner, outlet: Outlet, topics: Topics) -> None:
        self.gate = gate
        self.signer = signer
        self.outlet = outlet
        self.topics = topics
        self.unanswered = 0

    def on_request(self, item: Received, capture_s: float) -> None:
        wall_s = time.time()
        outcome = self.gate.handle(item.payload, item.user_properties, wall_s)
        if outcome.status is PriorityStatusKind.REJECTED:
            if outcome.announce:
                log.warning("priority request rejected (%s): %s", outcome.reason_code.value, outcome.reason)
        else:
            log.info("priority request %s %s: %s", outcome.call_id, outcome.status.value, outcome.reason)
        self.answer([outcome], capture_s, wall_s)

    def calls(self, controller_now_s: float) -> list[PriorityCall]:
        """Calls for the controller's step at `controller_now_s`, after ending lapsed requests."""
        wall_s = time.time()
        self.answer(self.gate.expire(wall_s), controller_now_s, wall_s)
        return self.gate.calls(clock_offset_s=controller_now_s - wall_s)

    def after_step(self, output: ControllerOutput, capture_s: float) -> None:
        self.answer(self.gate.observe(output.priority, output.exhausted_calls), capture_s, time.time())

    def answer(self, outcomes: list[PriorityOutcome], capture_s: float, publish_s: float) -> None:
        for outcome in outcomes:
            if not outcome.announce:
                self.unanswered += 1
                continue
            message = self.outlet.build(PriorityStatus, capture_s, publish_s, **outcome.status_fields())
            payload = message.to_json()
            route = self.topics.route(PRIORITY_STATUS)
            properties = self.signer.sign(route.topic, payload)
            self.outlet.bus.publish_to(route, payload, user_properties=properties)


def run(ctx: StageContext) -> None:
    site = ctx.site
    topics = Topics.for_site(site)
    gate = priority_gate_from_site(site, ctx.site_path, topics.priority_request)
    bus = MqttBus(site.mqtt, ctx.client_id())
    bus.subscribe(topics.detectors, qos=DETECTORS.qos)
    bus.subscribe(topics.priority_request, qos=PRIORITY_REQUEST.qos)
    bus.connect()
    try:
        # Status answers are signed with the unit's V2X key (loaded once subscribed: no detector message
        # is missed meanwhile).
        signer = _unit_signer_when_written(lambda: unit_signer(site, ctx.site_path))
        outlet = Outlet(bus, site.unit_id)
        desk = PriorityDesk(gate, signer, outlet, topics)
        controller = SignalController(site)
        heads = cabinet_heads(site, ctx.options.realtime)
        try:
            if ctx.options.realtime:
                run_on_wall_clock(ctx, bus, outlet, topics, controller, desk, heads)
            else:
                run_on_message_time(ctx, bus, outlet, topics, controller, desk)
            end_in_safe_state(ctx, outlet, topics, controller, heads)
        finally:
            if heads is not None:
                heads.close()
    finally:
        bus.close()


def cabinet_heads(site: SiteConfig, realtime: bool) -> NtcipSignalHeads | None:
    """The site's NTCIP cabinet, if it has one; a cabinet keeps wall-clock time, so it needs a
    real-time run."""
    if site.cabinet is None:
        return None
    if not realtime:
        raise ValueError(
            "site.cabinet: a signal cabinet keeps wall-clock time; run the unit in real time "
            "(rsu run, or rsu demo --realtime)"
        )
    return NtcipSignalHeads(site, site.cabinet)


def end_in_safe_state(
    ctx: StageContext,
    outlet: Outlet,
    topics: Topics,
    controller: SignalController,
    heads: NtcipSignalHeads | None = None,
) -> None:
    """On a requested stop: every head the unit drives to flashing red, published as the stage's
    last signal state (V2X, stopped after this stage, still turns it into SPaT). A cabinet is
    not told to flash: the unit stops writing and the cabinet returns to its own plan."""
    last_s = controller.last_time_s
    if last_s is None:
        return  # never stepped: nothing was shown
    # On message time the next instant after the last step; live, now.
    now_s = max(time.time(), last_s + 0.1) if ctx.options.realtime else last_s + 0.1
    output = controller.shut_down(now_s)
    if heads is not None:
        output = leave_cabinet(heads, output, now_s)
    publish(outlet, topics, output, now_s, now_s)


def _unit_signer_when_written(load: Callable[[], UnitSigner]) -> UnitSigner:
    """The V2X stage may be writing a freshly generated key this very moment: try again briefly."""
    for _ in range(KEY_READ_ATTEMPTS - 1):
        try:
            return load()
        except ValueError as exc:
            log.info("unit signing key not readable yet (%s); retrying", exc)
            time.sleep(KEY_READ_RETRY_S)
    return load()


def input_guard(site: SiteConfig) -> InputGuard:
    """Detector states: a state topic, fresh within the controller's own staleness bound.
    Priority requests have no rule here: the priority gate authenticates and checks them."""
    topics = Topics.for_site(site)
    rule = TopicRule(
        topics.detectors, DetectorStates, stale_after_s=site.controller.detector_stale_after_s, newest_only=True
    )
    return InputGuard("controller", [rule])


def run_on_message_time(
    ctx: StageContext,
    bus: MqttBus,
    outlet: Outlet,
    topics: Topics,
    controller: SignalController,
    desk: PriorityDesk,
) -> None:
    last_time_s = float("-inf")
    guard = input_guard(ctx.site)
    while not ctx.stopping:
        ctx.beat()
        ctx.report_inputs(guard.report())
        item = bus.get(timeout_s=0.5)
        if item is None:
            continue
        if item.topic == topics.priority_request:
            desk.on_request(item, max(last_time_s, 0.0))
            continue
        if item.topic != topics.detectors:
            continue
        # Lock-step: message time is the only clock, and every detector state is one step.
        states = guard.admit(item.topic, item.payload, None)
        if not isinstance(states, DetectorStates) or states.capture_time_s <= last_time_s:
            continue
        last_time_s = states.capture_time_s
        calls = desk.calls(states.capture_time_s)
        output = controller.step(
            states.capture_time_s,
            states.lanes if states.valid else None,
            states.crosswalks,
            arrivals_s=lookahead_of(states) if states.valid else None,
            priority=calls,
        )
        publish(outlet, topics, output, states.capture_time_s, states.capture_time_s)
        desk.after_step(output, states.capture_time_s)


def run_on_wall_clock(
    ctx: StageContext,
    bus: MqttBus,
    outlet: Outlet,
    topics: Topics,
    controller: SignalController,
    desk: PriorityDesk,
    heads: NtcipSignalHeads | None = None,
) -> None:
    ratekeeper = Ratekeeper(ctx.site.controller.decision_rate_hz)
    plan = PhasePlan.from_site(ctx.site)
    stale_after_s = ctx.site.controller.detector_stale_after_s
    newest: DetectorStates | None = None
    guard = input_guard(ctx.site)
    while not ctx.stopping:
        ctx.beat()
        ctx.report_inputs(guard.report())
        for admitted in guard.take(bus.drain(), time.time()):
            item = admitted.delivery
            if item.topic == topics.priority_request:
                desk.on_request(item, time.time())
            elif isinstance(admitted.message, DetectorStates) and item.topic == topics.detectors:
                # The guard refuses anything older than what was acted on, and caps how far ahead
                # of the clock a state may be: the newest admitted one is the picture to use.
                newest = admitted.message
        now_s = time.time()
        fresh = newest is not None and newest.valid and now_s - newest.capture_time_s <= stale_after_s
        lanes = newest.lanes if fresh and newest is not None else None
        crosswalks = newest.crosswalks if fresh and newest is not None else []
        arrivals = lookahead_of(newest) if fresh and newest is not None else None
        output = controller.step(now_s, lanes, crosswalks, arrivals_s=arrivals, priority=desk.calls(now_s))
        if heads is not None:
            # The cabinet decides what the lamps show; publish that, not the request.
            output = through_cabinet(heads, plan, output, now_s)
            ctx.report_cabinet(heads.report())
        # Decided on fresh detector states: their capture time; otherwise (recall, no camera) on
        # nothing but the clock, so the state is stamped now and stays fresh for its readers.
        capture_s = newest.capture_time_s if fresh and newest is not None else now_s
        publish(outlet, topics, output, capture_s, now_s)
        desk.after_step(output, now_s)
        ratekeeper.keep()


def lookahead_of(states: DetectorStates) -> dict[str, tuple[float, ...]]:
    """The camera's lookahead per lane: seconds until each approaching vehicle reaches the stop line
    (the adaptive strategy uses it; a loop detector could not see it)."""
    return arrivals_by_lane(states.lanes)


def publish(outlet: Outlet, topics: Topics, output: ControllerOutput, capture_s: float, publish_s: float) -> None:
    message = outlet.build(
        SignalState,
        capture_s,
        publish_s,
        mode=output.mode,
        strategy=output.strategy,
        groups=output.groups,
        reason=output.reason,
        events=output.events,
        priority=list(output.priority),
    )
    outlet.send(topics.route(SIGNAL_STATE), message)
