"""The simulated world stage: SUMO plus the simulated camera, standing in for the street.

It publishes what the camera sees, like a smart camera on the network, and drives SUMO's lights
from the unit's signal state, never from SUMO's own program; with ``site.cabinet`` from what the
cabinet's outputs drive instead (rsu.sim.lamps: the lamps hang on the cabinet, not on the unit).
In fast mode it runs in lock-step: after each camera message it waits for the controller's answer
to that message, so the whole unit runs as fast as its slowest stage and results do not depend on
machine load.
"""

from __future__ import annotations

import logging
import time

from rsu.runtime.bus import MqttBus
from rsu.runtime.input_guard import InputGuard, TopicRule
from rsu.runtime.stage import Ratekeeper, StageContext
from rsu.sensors.sim_camera import SimulatedCamera
from rsu.sim.lamps import CabinetWiring, LampLog
from rsu.sim.world import SumoWorld
from rsu.stages.outlet import Outlet
from rsu_contracts.messages import CameraDetections, CameraObject, Indication, SignalState, WorldStatistics
from rsu_contracts.topics import SIGNAL_STATE, SIM_CAMERA, SIM_STATISTICS, Topics
from signal_control.backends import ConflictingGreensError

log = logging.getLogger(__name__)

# How long fast mode waits for the controller's answer before stepping on with the old lights.
LOCKSTEP_TIMEOUT_S = 2.0
STATISTICS_PERIOD_S = 5.0


def run(ctx: StageContext) -> None:
    site = ctx.site
    topics = Topics.for_site(site)
    camera = SimulatedCamera(site.cameras[0], seed=ctx.options.seed)
    bus = MqttBus(site.mqtt, ctx.client_id())
    bus.subscribe(topics.signal_state, qos=SIGNAL_STATE.qos)
    bus.connect()
    outlet = Outlet(bus, site.unit_id)
    world = SumoWorld(site, ctx.site_path, seed=ctx.options.seed)
    wiring = CabinetWiring(site) if site.cabinet is not None else None
    lamp_log = LampLog(ctx.options.lamp_log) if ctx.options.lamp_log else None
    epoch = ctx.options.sim_epoch_s
    if lamp_log is not None and wiring is None:
        # The heads start all red (SumoWorld) until the unit's first state; with a cabinet they show
        # its outputs from the first read.
        start_lamps = {group.id: Indication.RED for group in site.signal_groups}
        lamp_log.record(time.time() if ctx.options.realtime else epoch, 0.0, start_lamps)
    ratekeeper = Ratekeeper(1.0 / site.simulation.step_s) if ctx.options.realtime else None
    latest_signal: SignalState | None = None
    # The world runs on simulated time: its guard checks the bounded schema and counts refusals (the
    # simulated heads refuse conflicting greens themselves).
    guard = InputGuard("world", [TopicRule.of(topics, SIGNAL_STATE, newest_only=False, check_age=False)])
    next_statistics_s = 0.0
    stalls = 0
    refused_commands = 0
    sim_time_s = 0.0

    def take_signal_states(wait_for_capture_s: float | None) -> SignalState | None:
        """The newest signal state; in lock-step, wait until it answers the given capture time."""
        nonlocal stalls
        newest = latest_signal
        deadline = time.monotonic() + LOCKSTEP_TIMEOUT_S
        pending = bus.drain()
        while True:
            ctx.report_inputs(guard.report())
            for item in pending:
                if item.topic != topics.signal_state:
                    continue
                state = guard.admit(item.topic, item.payload, None)
                if not isinstance(state, SignalState):
                    continue
                if newest is None or state.capture_time_s >= newest.capture_time_s:
                    newest = state
            if wait_for_capture_s is None or ctx.stopping:
                return newest
            if newest is not None and newest.capture_time_s >= wait_for_capture_s:
                return newest
            if time.monotonic() > deadline:
                if newest is None:
                    # Normal start-up: the controller has not decided yet (it may still be loading
                    # the unit's key). Not a stall, and nothing for an operator to act on.
                    log.info("waiting for the controller's first signal state")
                    return newest
                stalls += 1
                log.warning("no signal state for capture %.1f within %.1f s", wait_for_capture_s, LOCKSTEP_TIMEOUT_S)
                return newest
            ctx.beat()
            received = bus.get(timeout_s=0.05)
            pending = [received] if received is not None else []

    try:
        while not ctx.stopping:
            sim_time_s = world.step()
            # On the wall clock the simulated camera captures "now", as a real one does: a box too
            # loaded to keep SUMO at real time then yields slower traffic, not ever older timestamps
            # that the stages' input checks would (rightly) refuse as stale.
            now_s = time.time() if ctx.options.realtime else epoch + sim_time_s
            detections = camera.observe(world.ground_truth(), now_s)
            published_capture: float | None = None
            if detections is not None:
                objects = [
                    CameraObject(x_m=float(x), y_m=float(y), road_user=user, confidence=float(conf))
                    for (x, y), user, conf in zip(
                        detections.ground_xy_m, detections.road_user, detections.confidence, strict=True
                    )
                ]
                publish_time = time.time() if ctx.options.realtime else now_s
                message = outlet.build(
                    CameraDetections,
                    detections.capture_time_s,
                    publish_time,
                    camera_id=site.cameras[0].id,
                    objects=objects,
                )
                outlet.send(topics.route(SIM_CAMERA), message)
                published_capture = detections.capture_time_s
            lockstep = not ctx.options.realtime and published_capture is not None
            latest_signal = take_signal_states(published_capture if lockstep else None)
            # With a cabinet the lamps follow its outputs; the unit's signal state is only drained.
            lamps = wiring.read(time.time()) if wiring is not None else None
            if lamps is None and wiring is None and latest_signal is not None:
                lamps = latest_signal.groups
            if lamps is not None:
                try:
                    world.apply_signals(lamps)
                except ConflictingGreensError as exc:
                    # The heads already show all red; the controller's own monitor should have caught it.
                    refused_commands += 1
                    log.error("signal heads refused a command: %s", exc)
                    lamps = [state.model_copy(update={"indication": Indication.RED}) for state in lamps]
                if lamp_log is not None:
                    lamp_log.record(time.time() if ctx.options.realtime else now_s, sim_time_s, lamps)
            ctx.beat()
            finished = ctx.options.duration_s is not None and sim_time_s >= ctx.options.duration_s
            if sim_time_s >= next_statistics_s or finished:
                publish_statistics(outlet, topics, world, now_s, sim_time_s, finished)
                next_statistics_s = sim_time_s + STATISTICS_PERIOD_S
            if finished:
                break
            if ratekeeper is not None:
                ratekeeper.keep()
    finally:
        world.close()
        if wiring is not None:
            wiring.close()
        if lamp_log is not None:
            lamp_log.close()
        time.sleep(0.2)  # let the last retained statistics leave before the socket closes
        bus.close()
    log.info(
        "simulation finished at %.1f s: %d lock-step stalls, %d refused signal commands",
        sim_time_s,
        stalls,
        refused_commands,
    )


def publish_statistics(
    outlet: Outlet, topics: Topics, world: SumoWorld, now_s: float, sim_time_s: float, finished: bool
) -> None:
    stats = world.statistics()
    message = outlet.build(
        WorldStatistics,
        now_s,
        now_s,
        sim_time_s=sim_time_s,
        vehicles_departed=stats.vehicles_departed,
        vehicles_arrived=stats.vehicles_arrived,
        mean_delay_s=stats.mean_delay_s,
        persons_arrived=stats.persons_arrived,
        collisions=stats.collisions,
        teleports=stats.teleports,
        red_light_runners=stats.red_light_runners,
        jaywalkers=stats.jaywalkers,
        finished=finished,
    )
    outlet.send(topics.route(SIM_STATISTICS), message)
