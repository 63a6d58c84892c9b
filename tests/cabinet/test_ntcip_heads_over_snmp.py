"""The unit's NTCIP 1202 heads against the virtual cabinet over real SNMP on UDP: requests go
out, the cabinet decides, and what the unit reports is what the cabinet shows."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rsu.cabinet.heads import NtcipSignalHeads
from rsu.cabinet.snmp import (
    SnmpClient,
    SnmpError,
    SnmpTarget,
    SnmpTimeout,
    decode_message,
    encode_message,
    protocol_module,
)
from rsu_contracts.config.cabinet import CabinetConfig
from rsu_contracts.config.model import SiteConfig
from rsu_contracts.messages.signal import Indication, SignalGroupState
from rsu_tools.cabinet.nema import CabinetTiming, PhaseTiming
from rsu_tools.testing.cabinet import VirtualCabinet, running_cabinet
from signal_control.backends.ntcip_objects import PhaseStatus, phase_status_oid

TICK_S = 0.1
LEFT = PhaseTiming(min_green_s=1.0, local_max_green_s=2.0, yellow_s=0.6, all_red_s=0.3)
THROUGH = PhaseTiming(min_green_s=1.5, local_max_green_s=3.0, yellow_s=0.6, all_red_s=0.3, walk_s=1.0, ped_clear_s=0.5)
TIMING = CabinetTiming(
    phases={1: LEFT, 2: THROUGH, 3: LEFT, 4: THROUGH, 5: LEFT, 6: THROUGH, 7: LEFT, 8: THROUGH},
    overlaps={1: (1, 2), 3: (3, 4), 5: (5, 6), 7: (7, 8)},
)
PEDESTRIANS = {"p_east": 2, "p_west": 6, "p_north": 4, "p_south": 8}
NS_THROUGH = {"2", "6"}
EW_THROUGH = {"4", "8"}


def cabinet_config(port: int, **overrides: object) -> CabinetConfig:
    values: dict[str, object] = {
        "host": "127.0.0.1",
        "port": port,
        "timeout_s": 0.1,
        "retries": 0,
        "backup_time_s": 1,
        "pedestrian_phases": PEDESTRIANS,
        "overlaps": {"1": 1, "3": 3, "5": 5, "7": 7},
    }
    values.update(overrides)
    return CabinetConfig.model_validate(values)


def decided(site: SiteConfig, greens: set[str], yellows: frozenset[str] = frozenset()) -> list[SignalGroupState]:
    """The decided states, with the flashing yellow arrow of a left whose partner is green (as the
    controller's permissive display adds it)."""
    now = time.time()

    def indication(group_id: str, partner: str | None) -> Indication:
        if group_id in greens:
            return Indication.GREEN
        if group_id in yellows or partner in yellows:
            return Indication.YELLOW
        if partner in greens:
            return Indication.FLASHING_YELLOW
        return Indication.RED

    return [
        SignalGroupState(
            signal_group=group.id,
            indication=indication(group.id, group.permissive_with),
            since_s=now,
            min_end_time_s=now + 1,
            max_end_time_s=now + 5,
            likely_time_s=now + 2,
        )
        for group in site.signal_groups
    ]


@pytest.fixture
def cabinet(tmp_path: Path) -> Iterator[VirtualCabinet]:
    with running_cabinet(TIMING, tmp_path) as running:
        yield running


def drive(
    heads: NtcipSignalHeads, wanted: list[SignalGroupState], seconds: float, called: set[str] = frozenset()
) -> None:  # type: ignore[assignment]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        heads.apply(wanted, called_groups=called)
        time.sleep(TICK_S)


def wait_for(
    heads: NtcipSignalHeads, wanted: list[SignalGroupState], seconds: float, called: set[str] = frozenset()
) -> bool:  # type: ignore[assignment]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        heads.apply(wanted, called_groups=called)
        if not heads.health.divergences and heads.health.reachable:
            return True
        time.sleep(TICK_S)
    return False


def test_the_cabinet_serves_the_stage_the_unit_holds_and_the_unit_reports_what_it_shows(
    sample_site: SiteConfig, cabinet: VirtualCabinet
) -> None:
    heads = NtcipSignalHeads(sample_site, cabinet_config(cabinet.port))
    wanted = decided(sample_site, NS_THROUGH)
    assert wait_for(heads, wanted, 15.0, called=NS_THROUGH), heads.health.reason()
    drive(heads, wanted, 4.0, called=NS_THROUGH)  # longer than the cabinet's own max green
    assert heads.shown["2"] is Indication.GREEN and heads.shown["6"] is Indication.GREEN
    assert heads.shown["4"] is Indication.RED
    assert heads.health.in_control and heads.health.reason() == "in control"
    # Change stage: the unit ends 2+6 and calls 4+8; the cabinet times its own yellow and all-red.
    wanted = decided(sample_site, set(), yellows=frozenset(NS_THROUGH))
    heads.apply(wanted, called_groups=EW_THROUGH)
    time.sleep(TICK_S)
    heads.poll(wanted)
    assert heads.shown["2"] is Indication.YELLOW
    assert wait_for(heads, decided(sample_site, EW_THROUGH), 5.0, called=EW_THROUGH), heads.health.reason()
    heads.close()


def test_when_the_unit_stops_writing_the_cabinet_returns_to_its_own_plan_within_the_backup_time(
    sample_site: SiteConfig, cabinet: VirtualCabinet
) -> None:
    heads = NtcipSignalHeads(sample_site, cabinet_config(cabinet.port, backup_time_s=1))
    wanted = decided(sample_site, NS_THROUGH)
    assert wait_for(heads, wanted, 15.0, called=NS_THROUGH)
    stopped = time.monotonic()
    colours: list[tuple[float, Indication]] = []
    while time.monotonic() - stopped < 1 + THROUGH.local_max_green_s + 3 * (THROUGH.yellow_s + THROUGH.all_red_s) + 2:
        shown = heads.poll()
        colours.append((time.monotonic() - stopped, shown.get("2", Indication.DARK)))
        if any(shown.get(g) is Indication.GREEN for g in ("1", "3", "4", "5", "7", "8")):
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"the cabinet never served another phase: {colours[-5:]}")
    # Phase 2 ended through its yellow, not cut to red.
    assert Indication.YELLOW in [colour for _, colour in colours]
    heads.close()


def test_a_cabinet_that_ignores_force_off_is_reported_within_one_poll(sample_site: SiteConfig, tmp_path: Path) -> None:
    with running_cabinet(TIMING, tmp_path, ignore_force_off=True) as stubborn:
        heads = NtcipSignalHeads(sample_site, cabinet_config(stubborn.port))
        assert wait_for(heads, decided(sample_site, NS_THROUGH), 15.0, called=NS_THROUGH)
        drive(heads, decided(sample_site, NS_THROUGH), THROUGH.min_green_s)
        ending = decided(sample_site, set(), yellows=frozenset(NS_THROUGH))
        heads.apply(ending, called_groups=EW_THROUGH)
        # The cabinet still shows 2 green although the unit asked it to end: said, not hidden.
        assert heads.shown["2"] is Indication.GREEN
        assert {d.signal_group for d in heads.health.divergences} >= {"2", "6"}
        assert "differs from the plan" in heads.health.reason()
        heads.close()


def test_an_unreachable_cabinet_loses_control_and_is_regained_after_its_restart(
    sample_site: SiteConfig, cabinet: VirtualCabinet
) -> None:
    heads = NtcipSignalHeads(sample_site, cabinet_config(cabinet.port))
    wanted = decided(sample_site, NS_THROUGH)
    assert wait_for(heads, wanted, 15.0, called=NS_THROUGH)
    cabinet.stop()
    heads.apply(wanted, called_groups=NS_THROUGH)  # never raises: the cabinet falls back by itself
    assert not heads.health.in_control and not heads.health.reachable
    assert heads.shown == {}  # no stale picture of the lights
    assert "unreachable" in heads.health.reason()
    cabinet.start()
    assert wait_for(heads, wanted, 15.0, called=NS_THROUGH), heads.health.reason()
    assert heads.health.in_control
    heads.close()


def test_a_wrong_community_gets_no_answer_and_says_so(sample_site: SiteConfig, cabinet: VirtualCabinet) -> None:
    heads = NtcipSignalHeads(sample_site, cabinet_config(cabinet.port, community="private"))
    heads.apply(decided(sample_site, NS_THROUGH))
    assert not heads.health.reachable
    assert "community is wrong" in heads.health.last_error
    heads.close()


class _BadAgent:
    """A UDP peer that answers every request with one kind of wrong answer."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind(("127.0.0.1", 0))
        self.socket.settimeout(0.2)
        self.port = self.socket.getsockname()[1]
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        protocol = protocol_module(2)
        while self.running:
            try:
                datagram, sender = self.socket.recvfrom(65535)
            except TimeoutError:
                continue
            if self.kind == "garbage":
                self.socket.sendto(b"\x30\x03\x02\x01\xff not snmp", sender)
                continue
            _, pdu = decode_message(2, datagram)
            response = protocol.apiPDU.get_response(pdu)
            varbinds = protocol.apiPDU.get_varbinds(pdu)
            if self.kind == "error":
                protocol.apiPDU.set_error_status(response, 5)
                protocol.apiPDU.set_error_index(response, 1)
                protocol.apiPDU.set_varbinds(response, varbinds)
            elif self.kind == "other-objects":
                protocol.apiPDU.set_varbinds(response, [((1, 3, 6, 1, 2, 1, 1, 3, 0), protocol.Integer(7))])
            elif self.kind == "text":
                protocol.apiPDU.set_varbinds(response, [(oid, protocol.OctetString("green")) for oid, _ in varbinds])
            self.socket.sendto(encode_message(2, "public", response), sender)

    def close(self) -> None:
        self.running = False
        self.thread.join()
        self.socket.close()


@pytest.mark.parametrize(
    ("kind", "error", "message"),
    [
        ("garbage", SnmpTimeout, "no answer"),
        ("error", SnmpError, "genErr for 1.3.6.1.4.1.1206.4.2.1.1.4.1.4.1"),
        ("other-objects", SnmpError, "other objects"),
        ("text", SnmpError, "not an integer"),
    ],
)
def test_bad_snmp_answers_are_errors_that_name_what_is_wrong(kind: str, error: type[Exception], message: str) -> None:
    agent = _BadAgent(kind)
    client = SnmpClient(SnmpTarget("127.0.0.1", agent.port, timeout_s=0.2, retries=0))
    try:
        with pytest.raises(error, match=message):
            client.get([phase_status_oid(PhaseStatus.GREENS, 1)])
    finally:
        client.close()
        agent.close()
