"""The signal controller stage: detector states in, signal states (with SPaT timing) out.

In lock-step simulation the controller decides once per detector message, at that message's
time. Live, it decides at its own rate on the wall clock, using the newest detector states while
they are fresh; when they go stale the controller itself falls back to recall.
"""

from __future__ import annotations

import logging
import time

from rsu.messages import DetectorStates, SignalState, decode
from rsu.runtime.bus import MqttBus
from rsu.runtime.stage import Ratekeeper, StageContext
from rsu.stages.outlet import Outlet
from rsu.topics import Topics
from signal_control import ControllerOutput, SignalController

log = logging.getLogger(__name__)


def run(ctx: StageContext) -> None:
    site = ctx.site
    topics = Topics(site.unit_id, site.mqtt.topic_prefix, site.uplink.topic_prefix)
    bus = MqttBus(site.mqtt, ctx.client_id())
    bus.subscribe(topics.detectors)
    bus.connect()
    outlet = Outlet(bus, site.unit_id)
    controller = SignalController(site)
    try:
        if ctx.options.realtime:
            run_on_wall_clock(ctx, bus, outlet, topics, controller)
        else:
            run_on_message_time(ctx, bus, outlet, topics, controller)
    finally:
        bus.close()


def _decode_detectors(payload: bytes) -> DetectorStates | None:
    try:
        return decode(DetectorStates, payload)
    except ValueError as exc:
        log.warning("dropping bad detector states: %s", exc)
        return None


def run_on_message_time(
    ctx: StageContext, bus: MqttBus, outlet: Outlet, topics: Topics, controller: SignalController
) -> None:
    last_time_s = float("-inf")
    while not ctx.stopping:
        ctx.beat()
        item = bus.get(timeout_s=0.5)
        if item is None:
            continue
        states = _decode_detectors(item.payload)
        if states is None or states.capture_time_s <= last_time_s:
            continue
        last_time_s = states.capture_time_s
        output = controller.step(states.capture_time_s, states.lanes if states.valid else None, states.crosswalks)
        publish(outlet, topics, output, states.capture_time_s, states.capture_time_s)


def run_on_wall_clock(
    ctx: StageContext, bus: MqttBus, outlet: Outlet, topics: Topics, controller: SignalController
) -> None:
    ratekeeper = Ratekeeper(ctx.site.controller.decision_rate_hz)
    stale_after_s = ctx.site.controller.detector_stale_after_s
    newest: DetectorStates | None = None
    while not ctx.stopping:
        ctx.beat()
        for item in bus.drain():
            states = _decode_detectors(item.payload)
            if states is not None and (newest is None or states.capture_time_s >= newest.capture_time_s):
                newest = states
        now_s = time.time()
        fresh = newest is not None and newest.valid and now_s - newest.capture_time_s <= stale_after_s
        lanes = newest.lanes if fresh and newest is not None else None
        crosswalks = newest.crosswalks if fresh and newest is not None else []
        output = controller.step(now_s, lanes, crosswalks)
        capture_s = newest.capture_time_s if newest is not None else now_s
        publish(outlet, topics, output, capture_s, now_s)
        ratekeeper.keep()


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
    )
    outlet.send(topics.signal_state, message)
