"""What every stage process gets: its config, a heartbeat, a stop flag and a rate keeper."""

from __future__ import annotations

import contextlib
import os
import queue
import time
from dataclasses import dataclass
from multiprocessing.queues import Queue
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event
from pathlib import Path

from rsu.runtime.broker_config import stage_login
from rsu.runtime.input_guard import GuardReport
from rsu_contracts.bus_roles import BusRole
from rsu_contracts.config import SiteConfig, load_site_config
from rsu_contracts.messages.health import CabinetReport

# What a stage hands the supervisor for the health message, over one queue per process.
StageReport = GuardReport | CabinetReport

# A stage sends its input guard's counts to the supervisor at most this often.
REPORT_PERIOD_S = 1.0


@dataclass(frozen=True)
class RunOptions:
    """How this run of the unit is driven; the same for every stage."""

    # Simulated runs: lock-step as fast as the stages go, unless realtime is set.
    realtime: bool = True
    # Simulated runs stop after this many simulated seconds (None: run until stopped).
    duration_s: float | None = None
    # Epoch seconds of simulated time zero, so simulated timestamps look like real ones.
    sim_epoch_s: float = 0.0
    seed: int = 42
    # Simulated runs: append what the simulated lamps show to this JSON-lines file (rsu.sim.lamps).
    lamp_log: str | None = None


def with_stage_login(site: SiteConfig, stage: str) -> SiteConfig:
    """The site as one stage sees it: site.mqtt is the stage's own login when mqtt.credentials_dir
    gives every stage one (rsu.runtime.broker_config), so every MqttBus(site.mqtt, ...) of the
    stage logs in as it and may publish only the stage's topics."""
    roles = {role.value: role for role in BusRole}
    if site.mqtt.credentials_dir is None or stage not in roles:
        return site
    return site.model_copy(update={"mqtt": stage_login(site, roles[stage])})


class StageContext:
    def __init__(
        self,
        name: str,
        site_path: Path,
        options: RunOptions,
        heartbeat: Synchronized[float],
        stop: Event,
        reports: Queue[StageReport] | None = None,
    ) -> None:
        self.name = name
        self.site_path = site_path
        self.site: SiteConfig = with_stage_login(load_site_config(site_path), name)
        self.options = options
        self._heartbeat = heartbeat
        self._stop = stop
        self._reports = reports
        if reports is not None:
            # Exiting must not wait for a supervisor that stopped reading.
            reports.cancel_join_thread()
        self._next_report_s = 0.0
        self._next_cabinet_report_s = 0.0

    def report_inputs(self, report: GuardReport) -> None:
        """Hand the input guard's counts to the supervisor (for health and /metrics), at most once
        per REPORT_PERIOD_S; never blocks the stage's loop."""
        now = time.monotonic()
        if self._reports is None or now < self._next_report_s:
            return
        self._next_report_s = now + REPORT_PERIOD_S
        with contextlib.suppress(queue.Full):
            self._reports.put_nowait(report)

    def report_cabinet(self, report: CabinetReport) -> None:
        """Hand the NTCIP backend's state to the supervisor (health, /metrics), at most once per
        REPORT_PERIOD_S; never blocks the stage's loop."""
        now = time.monotonic()
        if self._reports is None or now < self._next_cabinet_report_s:
            return
        self._next_cabinet_report_s = now + REPORT_PERIOD_S
        with contextlib.suppress(queue.Full):
            self._reports.put_nowait(report)

    def beat(self) -> None:
        """Tell the supervisor this stage's loop is still turning."""
        self._heartbeat.value = time.monotonic()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def client_id(self) -> str:
        # The pid keeps a restarted or duplicated stage from kicking its twin off the broker.
        return f"{self.site.unit_id}-{self.name}-{os.getpid()}"


class Ratekeeper:
    """Keeps a loop at a fixed rate and counts the iterations that ran late (as openpilot does)."""

    def __init__(self, rate_hz: float) -> None:
        self.interval_s = 1.0 / rate_hz
        self._next = time.monotonic() + self.interval_s
        self.late_iterations = 0

    def keep(self) -> None:
        now = time.monotonic()
        delay = self._next - now
        if delay > 0:
            time.sleep(delay)
            self._next += self.interval_s
        else:
            self.late_iterations += 1
            # Do not try to catch up a backlog of missed slots: start again from now.
            self._next = now + self.interval_s
