"""The V2X stage: SPaT for every signal state, collision warnings from the live tracks."""

from __future__ import annotations

import logging
import time

from rsu.messages import CollisionWarning, SignalState, Spat, TrackList, decode
from rsu.runtime.bus import MqttBus
from rsu.runtime.stage import StageContext
from rsu.stages.outlet import Outlet
from rsu.topics import Topics
from v2x.conflicts import find_conflicts
from v2x.spat import spat_movements
from v2x.warnings import WarningTracker

log = logging.getLogger(__name__)


def run(ctx: StageContext) -> None:
    site = ctx.site
    topics = Topics(site.unit_id, site.mqtt.topic_prefix, site.uplink.topic_prefix)
    bus = MqttBus(site.mqtt, ctx.client_id())
    bus.subscribe(topics.signal_state)
    bus.subscribe(topics.tracks)
    bus.connect()
    outlet = Outlet(bus, site.unit_id)
    warnings = WarningTracker(site.v2x.warnings, site.reference)
    latest_signal: SignalState | None = None
    try:
        while not ctx.stopping:
            ctx.beat()
            item = bus.get(timeout_s=0.5)
            if item is None:
                continue
            try:
                if item.topic == topics.signal_state:
                    latest_signal = decode(SignalState, item.payload)
                    publish_spat(outlet, topics, site.unit_id, latest_signal, ctx.options.realtime)
                elif item.topic == topics.tracks:
                    tracks = decode(TrackList, item.payload)
                    publish_warnings(outlet, topics, ctx, warnings, tracks, latest_signal)
            except ValueError as exc:
                log.warning("dropping bad message on %s: %s", item.topic, exc)
    finally:
        bus.close()


def publish_spat(outlet: Outlet, topics: Topics, intersection_id: str, state: SignalState, realtime: bool) -> None:
    now_s = time.time() if realtime else state.capture_time_s
    spat = outlet.build(
        Spat,
        state.capture_time_s,
        now_s,
        intersection_id=intersection_id,
        movements=spat_movements(state, now_s),
    )
    outlet.send(topics.spat, spat)


def publish_warnings(
    outlet: Outlet,
    topics: Topics,
    ctx: StageContext,
    tracker: WarningTracker,
    tracks: TrackList,
    signal: SignalState | None,
) -> None:
    site = ctx.site
    conflicts = find_conflicts(tracks.objects, signal, site, site.v2x.warnings, tracks.capture_time_s)
    for event in tracker.update(conflicts, tracks.capture_time_s):
        publish_time = time.time() if ctx.options.realtime else tracks.capture_time_s
        warning = outlet.build(CollisionWarning, tracks.capture_time_s, publish_time, **event.fields())
        outlet.send(topics.warnings, warning, qos=1)
