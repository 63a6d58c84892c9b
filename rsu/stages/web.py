"""The web stage: the unit's local web page (live view, calibration helper, /metrics).

Three threads in this process: uvicorn serving the FastAPI app, the MQTT feed that reads every
local topic of the unit into the live state, and a slow poll of the uplink outbox in Redis. The
main loop beats the heartbeat only while the server and the feed are alive and turning, so the
supervisor restarts a page that has stopped updating.
"""

from __future__ import annotations

import logging
import time

from rsu.runtime.stage import StageContext
from rsu.web.app import create_app
from rsu.web.feed import MqttFeed, OutboxWatch
from rsu.web.hub import LiveHub
from rsu.web.server import WebServer, WebServerError

log = logging.getLogger(__name__)

LOOP_PERIOD_S = 0.5
# The feed loop turns at least every few seconds, even while it retries a broker that is down.
FEED_STALL_S = 8.0


def run(ctx: StageContext) -> None:
    site = ctx.site
    hub = LiveHub(site, realtime=ctx.options.realtime)
    server = WebServer(create_app(site, ctx.site_path, hub), site.web.host, site.web.port)
    server.start()
    log.info("web page for unit %s at %s", site.unit_id, server.url)
    feed = MqttFeed(site, hub, ctx.client_id())
    feed.start()
    outbox = OutboxWatch(site, hub)
    outbox.start()
    try:
        while not ctx.stopping:
            if not server.alive():
                raise WebServerError(f"web page: the server on {server.url} stopped")
            if not feed.alive():
                raise RuntimeError("web page: the MQTT feed thread stopped")
            if time.monotonic() - feed.last_turn_monotonic_s < FEED_STALL_S:
                ctx.beat()
            time.sleep(LOOP_PERIOD_S)
    finally:
        outbox.stop()
        feed.stop()
        server.stop()
