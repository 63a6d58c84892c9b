"""Signal heads that are a field cabinet: the unit requests over NTCIP 1202, the cabinet decides.

``apply(groups)`` is a request: it writes hold / force-off / calls / omits for the decided
states (signal_control.backends.ntcip_objects.control_request), re-arms ``unitBackupTime`` with
every write, then polls the status objects. What the cabinet reports is the truth: ``shown``
holds it, ``divergences`` lists the groups where it differs from the decision, and ``health``
says whether the unit is in control at all. A failed write or poll never raises out of
``apply`` (the cabinet falls back to its own plan through the backup time by itself); it is
recorded, ``in_control`` turns false, and the next tick simply tries again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from rsu.cabinet.snmp import SnmpClient, SnmpError, SnmpTarget
from rsu_contracts.config.cabinet import CabinetConfig, cabinet_phase_maps
from rsu_contracts.config.model import SiteConfig
from rsu_contracts.messages.health import CabinetDivergence, CabinetReport, CabinetState, DivergenceKind
from rsu_contracts.messages.signal import Indication, SignalGroupState
from signal_control.backends import ConflictingGreensError, conflicting_pairs
from signal_control.backends.ntcip_objects import (
    ASC,
    UNIT_BACKUP_TIME,
    CabinetMap,
    CabinetStatus,
    ControlRequest,
    Divergence,
    Oid,
    PhaseControl,
    bitmask_groups,
    control_request,
    divergences,
)
from signal_control.backends.shown_state import as_shown, called_groups
from signal_control.controller import ControllerOutput
from signal_control.phasing import PhasePlan

log = logging.getLogger(__name__)

UNIT_FLASH_STATUS: Oid = (*ASC, 3, 6, 0)
NOT_FLASH = 2
# A cabinet that follows the unit still lags it around every change by a poll and its own
# clearance start; a divergence older than this is the cabinet doing something else (it ignored a
# force-off, runs its own plan, does not serve a held phase), and the unit no longer claims control.
DIVERGENCE_GRACE_S = 2.0


@dataclass
class CabinetHealth:
    in_control: bool = False
    reachable: bool = False
    flashing: bool = False
    last_error: str = ""
    errors: int = 0
    writes: int = 0
    polls: int = 0
    divergences: list[Divergence] = field(default_factory=list)
    # Wall time each currently divergent group started to differ, and why it differs.
    divergent_since_s: dict[str, float] = field(default_factory=dict)
    divergence_kinds: dict[str, DivergenceKind] = field(default_factory=dict)
    last_poll_time_s: float | None = None
    last_write_ok: bool = False

    def lasting(self, now_s: float, grace_s: float = DIVERGENCE_GRACE_S) -> list[Divergence]:
        """The divergences older than the grace: the cabinet does something else, not lagging."""
        return [d for d in self.divergences if now_s - self.divergent_since_s.get(d.signal_group, now_s) >= grace_s]

    def reason(self) -> str:
        if not self.reachable:
            return f"cabinet unreachable: {self.last_error}" if self.last_error else "cabinet not polled yet"
        if self.flashing:
            return "cabinet in flash"
        if self.errors and not self.last_write_ok and self.writes + self.polls:
            return f"cabinet refuses the unit's writes: {self.last_error}"
        if self.divergences:
            listed = ", ".join(f"{d.signal_group} {d.shown.value} (asked {d.wanted.value})" for d in self.divergences)
            return f"cabinet differs from the plan: {listed}"
        return "in control"


class NtcipSignalHeads:
    """The SignalHeads of one cabinet, over SNMP."""

    def __init__(self, site: SiteConfig, cabinet: CabinetConfig, client: SnmpClient | None = None) -> None:
        vehicle, pedestrian, overlap = cabinet_phase_maps(site, cabinet)
        self.site = site
        self.cabinet = cabinet
        self.map = CabinetMap(vehicle_phase=vehicle, pedestrian_phase=pedestrian, overlap=overlap)
        self.client = client or SnmpClient(
            SnmpTarget(
                host=cabinet.host,
                port=cabinet.port,
                community=cabinet.community,
                version=cabinet.snmp_version,
                timeout_s=cabinet.timeout_s,
                retries=cabinet.retries,
            )
        )
        self.health = CabinetHealth()
        self.status: CabinetStatus | None = None
        self.shown: dict[str, Indication] = {}
        self.last_request: ControlRequest | None = None
        self._status_oids = [*self.map.status_oids(), UNIT_FLASH_STATUS]

    def close(self) -> None:
        self.client.close()

    def apply(self, groups: Sequence[SignalGroupState], called_groups: Iterable[str] = ()) -> None:
        pairs = conflicting_pairs(groups, self.site)
        if pairs:
            # Ask the cabinet to end everything and serve nothing; its own MMU still guards.
            self._write(self._all_stop())
            raise ConflictingGreensError(pairs)
        request = control_request(self.map, groups, self.status, called_groups)
        if self._write(request):
            self.last_request = request
        self.poll(groups)

    def poll(self, wanted: Sequence[SignalGroupState] = ()) -> dict[str, Indication]:
        """Read what the cabinet shows; on failure ``shown`` is emptied (never a stale picture)."""
        now = time.time()
        try:
            values = self.client.get(self._status_oids)
            status = CabinetStatus.from_values(self.map, values)
        except (SnmpError, ValueError) as error:
            self._failed(error)
            self.status = None
            self.shown = {}
            return {}
        self.health.polls += 1
        self.health.reachable = True
        self.health.last_poll_time_s = now
        self.health.flashing = values[UNIT_FLASH_STATUS] != NOT_FLASH
        self.status = status
        self.shown = status.indications(self.map)
        if self.health.flashing:
            self.shown = dict.fromkeys(self.shown, Indication.FLASHING_RED)
        self._track_divergences(divergences(wanted, self.shown) if wanted else [], now)
        health = self.health
        following = health.last_write_ok and not health.lasting(now)
        health.in_control = health.reachable and not health.flashing and following
        return self.shown

    def _track_divergences(self, found: list[Divergence], now_s: float) -> None:
        health = self.health
        health.divergences = found
        health.divergent_since_s = {d.signal_group: health.divergent_since_s.get(d.signal_group, now_s) for d in found}
        forced_off = self.last_request.phases(PhaseControl.FORCE_OFF) if self.last_request else frozenset()
        health.divergence_kinds = {
            d.signal_group: divergence_kind(d, self.map.vehicle_phase.get(d.signal_group), forced_off) for d in found
        }

    def report(self, now_s: float | None = None) -> CabinetReport:
        """The backend's state for the unit's health message (plain data, picklable)."""
        now_s = time.time() if now_s is None else now_s
        health = self.health
        lasting = {d.signal_group for d in health.lasting(now_s)}
        if health.polls == 0 and not health.errors:
            state = CabinetState.NOT_POLLED
        elif not health.reachable:
            state = CabinetState.UNREACHABLE
        elif health.flashing:
            state = CabinetState.FLASH
        elif lasting or not health.last_write_ok:
            state = CabinetState.DIVERGED
        else:
            state = CabinetState.IN_CONTROL
        detail = health.reason()
        if state is CabinetState.DIVERGED and not lasting:
            detail = f"writes refused: {health.last_error}"
        elif state is CabinetState.IN_CONTROL and health.divergences:
            detail = "in control; the cabinet is catching up with a change"
        last_poll = health.last_poll_time_s
        return CabinetReport(
            address=f"{self.cabinet.host}:{self.cabinet.port}",
            state=state,
            in_control=health.in_control,
            reachable=health.reachable,
            flashing=health.flashing,
            detail=detail,
            last_error=health.last_error[:300],
            snmp_errors=health.errors,
            writes=health.writes,
            polls=health.polls,
            last_poll_time_s=last_poll,
            last_poll_age_s=None if last_poll is None else max(0.0, now_s - last_poll),
            divergences=[
                CabinetDivergence(
                    signal_group=d.signal_group,
                    kind=health.divergence_kinds.get(d.signal_group, DivergenceKind.OTHER),
                    wanted=d.wanted.value,
                    shown=d.shown.value,
                    for_s=max(0.0, now_s - health.divergent_since_s.get(d.signal_group, now_s)),
                )
                for d in health.divergences[:64]
            ],
        )

    def _write(self, request: ControlRequest) -> bool:
        try:
            self.client.set([(UNIT_BACKUP_TIME, self.cabinet.backup_time_s), *request.varbinds()])
        except SnmpError as error:
            self._failed(error)
            self.health.last_write_ok = False
            return False
        self.health.writes += 1
        self.health.last_write_ok = True
        return True

    def _all_stop(self) -> ControlRequest:
        phases = sorted(set(self.map.vehicle_phase.values()))
        groups = self.map.phase_groups
        all_bits = tuple(bitmask_groups(phases, groups))
        none = tuple([0] * groups)
        ped_bits = tuple(bitmask_groups(set(self.map.pedestrian_phase.values()), groups))
        return ControlRequest(
            {
                PhaseControl.PHASE_OMIT: all_bits,
                PhaseControl.PED_OMIT: ped_bits,
                PhaseControl.HOLD: none,
                PhaseControl.FORCE_OFF: all_bits,
                PhaseControl.VEH_CALL: none,
                PhaseControl.PED_CALL: none,
            }
        )

    def _failed(self, error: Exception) -> None:
        self.health.errors += 1
        self.health.last_error = str(error)
        self.health.reachable = False
        self.health.in_control = False


def divergence_kind(divergence: Divergence, phase: int | None, forced_off: frozenset[int]) -> DivergenceKind:
    """Why a group differs: green the unit ended (force-off ignored) or never asked for (the
    cabinet's own plan), or not green although held."""
    green = (Indication.GREEN, Indication.FLASHING_YELLOW)
    if divergence.shown in green and divergence.wanted not in green:
        return DivergenceKind.IGNORED_FORCE_OFF if phase in forced_off else DivergenceKind.OWN_PLAN
    if divergence.wanted is Indication.GREEN and divergence.shown is not Indication.GREEN:
        return DivergenceKind.NOT_SERVED
    return DivergenceKind.OTHER


def through_cabinet(
    heads: NtcipSignalHeads, plan: PhasePlan, output: ControllerOutput, now_s: float
) -> ControllerOutput:
    """Request the decided states from the cabinet, then return what to publish: what it shows."""
    try:
        heads.apply(output.groups, called_groups(plan, output))
    except ConflictingGreensError as error:
        # The controller's own monitor should never let this through; the cabinet was told to
        # end every phase and its MMU stays the last word.
        log.error("cabinet request refused: %s", error)
    health = heads.health
    shown = heads.shown if health.reachable else None
    return as_shown(output, shown, now_s, flashing=health.flashing, problem=health.reason())


def leave_cabinet(heads: NtcipSignalHeads, output: ControllerOutput, now_s: float) -> ControllerOutput:
    """On stop: write nothing more (the cabinet returns to its own plan within its backup time)
    and publish what it shows now."""
    shown = heads.poll()
    final = as_shown(output, shown or None, now_s, flashing=heads.health.flashing, problem=heads.health.reason())
    reason = f"the unit stopped; the cabinet returns to its own plan within {heads.cabinet.backup_time_s} s"
    return replace(final, reason=reason)
