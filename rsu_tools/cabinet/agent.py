"""The virtual cabinet's SNMP agent: NTCIP 1202 objects over real UDP, in its own process.

    python -m rsu_tools.cabinet.agent --port 16100 --community public [--timing FILE.json]
        [--ignore-force-off]

Answers SNMP v1/v2c GET and SET for the objects the unit uses (signal_control.backends.
ntcip_objects): phase and overlap status groups (read-only), phase control groups and
unitBackupTime (read-write), unitFlashStatus (read-only). A request with another community is
dropped without an answer, as agents do. Prints ``ready <port>`` on stdout once listening.
``--ignore-force-off`` plays a cabinet that accepts force-off writes but never acts on them.
"""

from __future__ import annotations

import argparse
import json
import select
import socket
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from rsu.cabinet.snmp import MAX_DATAGRAM_BYTES, SnmpError, decode_message, encode_message, protocol_module
from rsu_tools.cabinet.nema import CabinetTiming, Controls, DualRingController, PhaseTiming, Shown
from signal_control.backends.ntcip_objects import (
    ASC,
    UNIT_BACKUP_TIME,
    Oid,
    OverlapStatus,
    PhaseControl,
    PhaseStatus,
    bitmask_groups,
    numbers_in,
    overlap_status_oid,
    phase_control_oid,
    phase_status_oid,
)

STEP_S = 0.05
UNIT_FLASH_STATUS: Oid = (*ASC, 3, 6, 0)
# unitFlashStatus values (NTCIP 1202): notFlash(2), mmu(6).
NOT_FLASH, MMU_FLASH = 2, 6
_NOT_WRITABLE = 17
_WRONG_VALUE = 10


def default_timing() -> CabinetTiming:
    """The sample junction's phases: lefts 1/3/5/7, throughs 2/4/6/8 with pedestrians."""
    lefts = PhaseTiming(min_green_s=5.0, local_max_green_s=15.0, yellow_s=3.0, all_red_s=2.0)
    throughs = PhaseTiming(
        min_green_s=10.0, local_max_green_s=30.0, yellow_s=3.0, all_red_s=2.0, walk_s=7.0, ped_clear_s=3.0
    )
    return CabinetTiming(
        phases={1: lefts, 2: throughs, 3: lefts, 4: throughs, 5: lefts, 6: throughs, 7: lefts, 8: throughs},
        overlaps={1: (1, 2), 3: (3, 4), 5: (5, 6), 7: (7, 8)},
    )


def timing_from_json(data: Mapping[str, Any]) -> CabinetTiming:
    phases = {int(number): PhaseTiming(**values) for number, values in data["phases"].items()}
    overlaps = {int(number): (int(pair[0]), int(pair[1])) for number, pair in data.get("overlaps", {}).items()}
    return CabinetTiming(phases=phases, overlaps=overlaps)


class CabinetAgent:
    """The MIB view of one DualRingController."""

    def __init__(self, controller: DualRingController, ignore_force_off: bool = False) -> None:
        self.controller = controller
        self.ignore_force_off = ignore_force_off
        self.groups = 1
        self._controls: dict[PhaseControl, int] = dict.fromkeys(PhaseControl, 0)
        self._readers = self._build_readers()

    def _build_readers(self) -> dict[Oid, Callable[[Shown], int]]:
        def bits(name: str) -> Callable[[Shown], int]:
            return lambda shown: bitmask_groups(getattr(shown, name), 1)[0]

        def control_value(control: PhaseControl) -> Callable[[Shown], int]:
            return lambda shown: self._controls[control]

        readers: dict[Oid, Callable[[Shown], int]] = {}
        phase_fields = {
            PhaseStatus.REDS: "reds",
            PhaseStatus.YELLOWS: "yellows",
            PhaseStatus.GREENS: "greens",
            PhaseStatus.DONT_WALKS: "dont_walks",
            PhaseStatus.PED_CLEARS: "ped_clears",
            PhaseStatus.WALKS: "walks",
            PhaseStatus.PHASE_NEXTS: "nexts",
        }
        for phase_status, name in phase_fields.items():
            readers[phase_status_oid(phase_status, 1)] = bits(name)
        for phase_status in (PhaseStatus.VEH_CALLS, PhaseStatus.PED_CALLS, PhaseStatus.PHASE_ONS):
            readers[phase_status_oid(phase_status, 1)] = lambda shown: 0
        overlap_fields = {
            OverlapStatus.REDS: "overlap_reds",
            OverlapStatus.YELLOWS: "overlap_yellows",
            OverlapStatus.GREENS: "overlap_greens",
        }
        for overlap_status, name in overlap_fields.items():
            readers[overlap_status_oid(overlap_status, 1)] = bits(name)
        readers[UNIT_FLASH_STATUS] = lambda shown: MMU_FLASH if shown.flash else NOT_FLASH
        readers[UNIT_BACKUP_TIME] = lambda shown: int(self.controller.backup_time_s)
        for control in PhaseControl:
            readers[phase_control_oid(control, 1)] = control_value(control)
        return readers

    def get(self, oid: Oid, now_s: float) -> int | None:
        reader = self._readers.get(oid)
        return None if reader is None else reader(self.controller.shown(now_s))

    def set(self, values: list[tuple[Oid, int]], now_s: float) -> tuple[int, int]:
        """Apply a SET atomically; (error status, 1-based index) or (0, 0)."""
        writable = {phase_control_oid(control, 1): control for control in PhaseControl}
        for index, (oid, value) in enumerate(values, start=1):
            if oid != UNIT_BACKUP_TIME and oid not in writable:
                return _NOT_WRITABLE, index
            limit = 65535 if oid == UNIT_BACKUP_TIME else 255
            if not 0 <= value <= limit:
                return _WRONG_VALUE, index
        for oid, value in values:
            if oid == UNIT_BACKUP_TIME:
                self.controller.set_backup_time(float(value), now_s)
            else:
                self._controls[writable[oid]] = value
        if any(oid in writable for oid, _ in values):
            force_off = frozenset() if self.ignore_force_off else numbers_in([self._controls[PhaseControl.FORCE_OFF]])
            self.controller.write(
                Controls(
                    hold=numbers_in([self._controls[PhaseControl.HOLD]]),
                    force_off=force_off,
                    veh_call=numbers_in([self._controls[PhaseControl.VEH_CALL]]),
                    ped_call=numbers_in([self._controls[PhaseControl.PED_CALL]]),
                    omit=numbers_in([self._controls[PhaseControl.PHASE_OMIT]]),
                    ped_omit=numbers_in([self._controls[PhaseControl.PED_OMIT]]),
                ),
                now_s,
            )
        return 0, 0

    def step(self, now_s: float) -> None:
        was_backup = self.controller.backup_mode
        self.controller.step(now_s)
        if self.controller.backup_mode and not was_backup:
            # Backup Mode: the MIB says the control objects are reset to zero.
            self._controls = dict.fromkeys(PhaseControl, 0)


def answer(agent: CabinetAgent, datagram: bytes, community: str, now_s: float) -> bytes | None:
    """The response datagram to one request, or None to stay silent."""
    for version in (2, 1):
        try:
            got_community, pdu = decode_message(version, datagram)
            break
        except SnmpError:
            continue
    else:
        return None
    if got_community != community:
        return None
    protocol = protocol_module(version)
    api_pdu = protocol.apiPDU
    response = api_pdu.get_response(pdu)
    varbinds = [(tuple(oid), value) for oid, value in api_pdu.get_varbinds(pdu)]
    if pdu.isSameTypeWith(protocol.GetRequestPDU()):
        out = []
        for index, (oid, _) in enumerate(varbinds, start=1):
            value = agent.get(oid, now_s)
            if value is None:
                if version == 1:
                    api_pdu.set_error_status(response, 2)  # noSuchName
                    api_pdu.set_error_index(response, index)
                    out = varbinds
                    break
                out.append((oid, protocol.NoSuchObject("")))
            else:
                out.append((oid, protocol.Integer(value)))
        api_pdu.set_varbinds(response, out)
    elif pdu.isSameTypeWith(protocol.SetRequestPDU()):
        try:
            values = [(oid, int(value)) for oid, value in varbinds]
        except (TypeError, ValueError):
            api_pdu.set_error_status(response, 7 if version == 2 else 3)  # wrongType / badValue
            api_pdu.set_error_index(response, 1)
            api_pdu.set_varbinds(response, varbinds)
            return encode_message(version, community, response)
        status, index = agent.set(values, now_s)
        if status and version == 1:
            status = 2 if status == _NOT_WRITABLE else 3
        api_pdu.set_error_status(response, status)
        api_pdu.set_error_index(response, index)
        api_pdu.set_varbinds(response, varbinds)
    else:
        return None
    return encode_message(version, community, response)


def serve(
    port: int, community: str, timing: CabinetTiming, ignore_force_off: bool = False, host: str = "127.0.0.1"
) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, port))
    agent = CabinetAgent(DualRingController(timing, time.monotonic()), ignore_force_off=ignore_force_off)
    print(f"ready {sock.getsockname()[1]}", flush=True)
    next_step = time.monotonic()
    while True:
        timeout = max(0.0, next_step - time.monotonic())
        readable, _, _ = select.select([sock], [], [], timeout)
        now = time.monotonic()
        if readable:
            datagram, sender = sock.recvfrom(MAX_DATAGRAM_BYTES)
            reply = answer(agent, datagram, community, now)
            if reply is not None:
                sock.sendto(reply, sender)
        if now >= next_step:
            agent.step(now)
            next_step = now + STEP_S


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rsu_tools.cabinet.agent", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=16100, help="UDP port (default 16100; 0 picks a free one)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--community", default="public")
    parser.add_argument(
        "--timing", type=Path, help="JSON: {phases: {n: PhaseTiming fields}, overlaps: {n: [left, through]}}"
    )
    parser.add_argument("--ignore-force-off", action="store_true", help="accept force-off writes but never act on them")
    args = parser.parse_args(argv)
    timing = timing_from_json(json.loads(args.timing.read_text())) if args.timing else default_timing()
    try:
        serve(args.port, args.community, timing, args.ignore_force_off, args.host)
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
