"""The whole roadside unit: its stages under one supervisor, plus status and health on MQTT."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from rsu.runtime.broker_config import stage_login
from rsu.runtime.bus import BirthMessage, LastWill, MqttBus
from rsu.runtime.mqtt import RECONNECT_MAX_DELAY_S
from rsu.runtime.preflight import preflight_site, redis_is_up
from rsu.runtime.shutdown import StopSignals
from rsu.runtime.stage import RunOptions
from rsu.runtime.supervisor import StageSpec, Supervisor
from rsu_contracts.bus_roles import BusRole
from rsu_contracts.config import SiteConfig, load_site_config
from rsu_contracts.messages import CabinetReport, CabinetState, Sequencer, UnitHealth, UnitStatus
from rsu_contracts.messages.health import MAX_REJECTION_ENTRIES
from rsu_contracts.topics import HEALTH, STATUS, Topics

log = logging.getLogger(__name__)

HEALTH_PERIOD_S = 1.0
# The broker publishes the "offline" will only when the supervisor has not reconnected for this
# long: a broker restart or a client-id takeover, after which it reconnects within the backoff
# (at most RECONNECT_MAX_DELAY_S), must not tell vehicles the unit is gone.
STATUS_WILL_DELAY_S = 2 * RECONNECT_MAX_DELAY_S

WORLD = StageSpec("world", "rsu.stages.world:run", heartbeat_timeout_s=30.0, runs_to_completion=True)
PERCEPTION = StageSpec("perception", "rsu.stages.perception:run", heartbeat_timeout_s=15.0, startup_grace_s=120.0)
CONTROLLER = StageSpec("controller", "rsu.stages.controller:run", heartbeat_timeout_s=5.0)
V2X = StageSpec("v2x", "rsu.stages.v2x:run", heartbeat_timeout_s=5.0)
UPLINK = StageSpec("uplink", "rsu.stages.uplink:run", heartbeat_timeout_s=15.0)
WEB = StageSpec("web", "rsu.stages.web:run", heartbeat_timeout_s=10.0)


def plays_recorded_video(site: SiteConfig) -> bool:
    """A camera reading a file: it ends, and its timestamps come from the file, not the wall clock."""
    from rsu.sensors.video import is_live_uri

    return any(camera.uri is not None and not is_live_uri(camera.uri) for camera in site.cameras)


def stage_specs(site: SiteConfig) -> list[StageSpec]:
    if site.is_simulated:
        return [WORLD, PERCEPTION, CONTROLLER, V2X, UPLINK, WEB]
    perception = PERCEPTION
    if plays_recorded_video(site):
        perception = replace(PERCEPTION, runs_to_completion=True)
    return [perception, CONTROLLER, V2X, UPLINK, WEB]


def supervisor_bus(site: SiteConfig, topics: Topics) -> MqttBus:
    """The supervisor's connection: it owns the unit's retained status.

    "online" is its birth message, published on every (re)connect (after a broker restart the
    retained topic holds the will or nothing; after a takeover, whatever the intruder left). The
    last will says "offline" exactly as stop() does (same topic, QoS and retain flag), delayed so
    it fires only when the unit is really gone.
    """
    status = topics.route(STATUS)
    will = LastWill(status.topic, b"offline", retain=status.retain, qos=status.qos, delay_s=STATUS_WILL_DELAY_S)
    birth = BirthMessage(status.topic, b"online", retain=status.retain, qos=status.qos)
    login = stage_login(site, BusRole.SUPERVISOR)
    return MqttBus(login, f"{site.unit_id}-supervisor", last_will=will, birth=birth)


class Unit:
    def __init__(self, site_path: Path, options: RunOptions, specs: list[StageSpec] | None = None) -> None:
        """specs: the stages to run (tests run a part of the unit); None: every stage of the site."""
        self.site_path = site_path
        self.site = load_site_config(site_path)
        self.options = options
        self.topics = Topics.for_site(self.site)
        self.specs = specs if specs is not None else stage_specs(self.site)
        self.supervisor = Supervisor(site_path, options, self.specs)
        self._bus: MqttBus | None = None
        self._health_seq = Sequencer(self.site.unit_id)
        self._next_health_s = 0.0

    def preflight(self) -> None:
        """Fail before any stage starts, with one line naming what is wrong and the setting to change."""
        preflight_site(self.site, self.site_path)

    def start(self) -> None:
        self._bus = supervisor_bus(self.site, self.topics)
        self._bus.connect()  # publishes "online" (the birth message) on connecting
        self.supervisor.start()

    def tick(self) -> None:
        """Supervise once and publish health when due. Call a few times a second."""
        self.supervisor.poll()
        now = time.monotonic()
        if now >= self._next_health_s:
            self._next_health_s = now + HEALTH_PERIOD_S
            self.publish_health()

    def health(self) -> UnitHealth:
        stages = self.supervisor.health()
        redis_ok = redis_is_up(self.site.redis.url)
        problems = [f"stage {s.name} is down: {s.detail}" for s in stages if not s.alive]
        problems += self.supervisor.input_problems()
        problems += [
            f"stage {name} {trouble}"
            for name, trouble in self.supervisor.troubled_stages().items()
            if all(s.alive for s in stages if s.name == name)
        ]
        if not redis_ok:
            problems.append(f"Redis at {self.site.redis.url} is unreachable: aggregates held in memory")
        wall = time.time()
        cabinet = self.cabinet_report(wall)
        if cabinet is not None and cabinet.state is not CabinetState.IN_CONTROL:
            problems.append(f"signal cabinet {cabinet.address} {cabinet.state.value}: {cabinet.detail}")
        status = UnitStatus.ONLINE if not problems else UnitStatus.DEGRADED
        return UnitHealth(
            **self._health_seq.header(wall, wall),
            status=status,
            stages=stages,
            redis_connected=redis_ok,
            problems=problems,
            rejections=self.supervisor.rejections()[:MAX_REJECTION_ENTRIES],
            cabinet=cabinet,
        )

    def cabinet_report(self, now_s: float) -> CabinetReport | None:
        """The cabinet's state for health, its poll age as of now (it grows while the controller
        stage is down or hung); NOT_POLLED while the configured cabinet has not been reported."""
        cabinet = self.site.cabinet
        if cabinet is None:
            return None
        report = self.supervisor.cabinet_report()
        if report is None:
            return CabinetReport(
                address=f"{cabinet.host}:{cabinet.port}",
                state=CabinetState.NOT_POLLED,
                in_control=False,
                reachable=False,
                detail="the controller stage has not reported the cabinet yet",
            )
        polled = report.last_poll_time_s
        return report.model_copy(update={"last_poll_age_s": None if polled is None else max(0.0, now_s - polled)})

    def publish_health(self) -> None:
        if self._bus is not None:
            self._bus.publish_to(self.topics.route(HEALTH), self.health().to_json())

    def stop(self) -> None:
        self.supervisor.stop()
        if self._bus is not None:
            self._bus.publish_to(self.topics.route(STATUS), b"offline").wait_for_publish(2.0)
            self._bus.close()

    def finished(self) -> bool:
        """True once every stage that runs to completion (a world, a recorded clip) has completed."""
        finite = [spec.name for spec in self.specs if spec.runs_to_completion]
        return bool(finite) and all(self.supervisor.is_completed(name) for name in finite)

    def run_forever(self, drain_s: float = 3.0, on_tick: Callable[[], None] | None = None) -> str | None:
        """Run until SIGINT/SIGTERM, or until a recorded clip has been played to its end.

        Returns the name of the signal that stopped the unit, None when it ran to its end.
        """
        self.preflight()
        with StopSignals() as signals:
            self.start()
            try:
                while not self.finished() and not signals.requested:
                    self.tick()
                    if on_tick is not None:
                        on_tick()
                    time.sleep(0.2)
                # Let the downstream stages finish what the last frames produced.
                deadline = time.monotonic() + drain_s
                while time.monotonic() < deadline and not signals.requested:
                    self.tick()
                    if on_tick is not None:
                        on_tick()
                    time.sleep(0.2)
            finally:
                self.stop()
            return signals.received
