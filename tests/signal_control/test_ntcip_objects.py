"""NTCIP 1202 objects: identifiers as the ASC MIB numbers them, bit groups, and what the unit
writes and reads for a decided signal state."""

from __future__ import annotations

import pytest

from rsu_contracts.messages.signal import Indication, SignalGroupState
from signal_control.backends.ntcip_objects import (
    UNIT_BACKUP_TIME,
    CabinetMap,
    CabinetStatus,
    OverlapStatus,
    PhaseControl,
    PhaseStatus,
    bitmask_groups,
    control_request,
    divergences,
    group_and_bit,
    numbers_in,
    overlap_status_oid,
    phase_control_oid,
    phase_status_oid,
)

ASC = "1.3.6.1.4.1.1206.4.2.1"


def dotted(oid: tuple[int, ...]) -> str:
    return ".".join(map(str, oid))


@pytest.mark.parametrize(
    ("status", "column"),
    [
        (PhaseStatus.REDS, 2),
        (PhaseStatus.YELLOWS, 3),
        (PhaseStatus.GREENS, 4),
        (PhaseStatus.DONT_WALKS, 5),
        (PhaseStatus.PED_CLEARS, 6),
        (PhaseStatus.WALKS, 7),
        (PhaseStatus.VEH_CALLS, 8),
        (PhaseStatus.PED_CALLS, 9),
        (PhaseStatus.PHASE_ONS, 10),
        (PhaseStatus.PHASE_NEXTS, 11),
    ],
)
def test_phase_status_objects_are_numbered_as_in_the_mib(status: PhaseStatus, column: int) -> None:
    assert dotted(phase_status_oid(status, 1)) == f"{ASC}.1.4.1.{column}.1"
    assert dotted(phase_status_oid(status, 2)) == f"{ASC}.1.4.1.{column}.2"


@pytest.mark.parametrize(
    ("control", "column"),
    [
        (PhaseControl.PHASE_OMIT, 2),
        (PhaseControl.PED_OMIT, 3),
        (PhaseControl.HOLD, 4),
        (PhaseControl.FORCE_OFF, 5),
        (PhaseControl.VEH_CALL, 6),
        (PhaseControl.PED_CALL, 7),
    ],
)
def test_phase_control_objects_are_numbered_as_in_the_mib(control: PhaseControl, column: int) -> None:
    # Column 1 is phaseControlGroupNumber: writing omits there is a known mistake in public code.
    assert dotted(phase_control_oid(control, 1)) == f"{ASC}.1.5.1.{column}.1"


def test_unit_backup_time_and_overlap_status_identifiers() -> None:
    assert dotted(UNIT_BACKUP_TIME) == f"{ASC}.3.3.0"
    assert dotted(overlap_status_oid(OverlapStatus.GREENS, 1)) == f"{ASC}.9.4.1.4.1"
    assert dotted(overlap_status_oid(OverlapStatus.REDS, 1)) == f"{ASC}.9.4.1.2.1"


def test_phase_one_is_bit_zero_of_group_one_and_phase_nine_bit_zero_of_group_two() -> None:
    assert group_and_bit(1) == (1, 0)
    assert group_and_bit(8) == (1, 7)
    assert group_and_bit(9) == (2, 0)
    assert bitmask_groups([2, 6, 9], 2) == [0b0010_0010, 0b0000_0001]
    assert numbers_in([0b0010_0010, 0b1]) == {2, 6, 9}
    with pytest.raises(ValueError, match="beyond"):
        bitmask_groups([9], 1)


def sample_map() -> CabinetMap:
    return CabinetMap(
        vehicle_phase={str(n): n for n in range(1, 9)},
        pedestrian_phase={"p_east": 2, "p_north": 4},
        overlap={"1": 1},
    )


def state(group: str, indication: Indication) -> SignalGroupState:
    return SignalGroupState(
        signal_group=group,
        indication=indication,
        since_s=0.0,
        min_end_time_s=1.0,
        max_end_time_s=2.0,
        likely_time_s=1.5,
    )


def decided(greens: set[str], **others: Indication) -> list[SignalGroupState]:
    groups = [str(n) for n in range(1, 9)] + ["p_east", "p_north"]
    return [state(g, Indication.GREEN if g in greens else others.get(g, Indication.RED)) for g in groups]


def shown_status(greens: set[int], yellows: frozenset[int] = frozenset()) -> CabinetStatus:
    everything = frozenset(range(1, 9))
    return CabinetStatus(
        vehicle_reds=everything - greens - yellows,
        vehicle_yellows=yellows,
        vehicle_greens=frozenset(greens),
        dont_walks=frozenset({2, 4}),
        ped_clears=frozenset(),
        walks=frozenset(),
        phase_nexts=frozenset(),
    )


def test_a_served_stage_is_held_and_every_other_phase_omitted() -> None:
    request = control_request(sample_map(), decided({"2", "6"}), shown_status({2, 6}))
    assert request.phases(PhaseControl.HOLD) == {2, 6}
    assert request.phases(PhaseControl.FORCE_OFF) == set()
    assert request.phases(PhaseControl.PHASE_OMIT) == {1, 3, 4, 5, 7, 8}
    assert request.phases(PhaseControl.PED_OMIT) == {2, 4}


def test_ending_a_stage_forces_it_off_and_calls_the_next_one() -> None:
    wanted = decided(set(), **{"2": Indication.YELLOW, "6": Indication.YELLOW})
    request = control_request(sample_map(), wanted, shown_status({2, 6}), called_groups=["4", "8"])
    assert request.phases(PhaseControl.FORCE_OFF) == {2, 6}
    assert request.phases(PhaseControl.HOLD) == set()
    assert request.phases(PhaseControl.VEH_CALL) == {4, 8}
    assert request.phases(PhaseControl.PHASE_OMIT) == {1, 2, 3, 5, 6, 7}
    # A phase is never both held and forced off, nor omitted and called.
    for control_a, control_b in (
        (PhaseControl.HOLD, PhaseControl.FORCE_OFF),
        (PhaseControl.PHASE_OMIT, PhaseControl.VEH_CALL),
    ):
        assert not request.phases(control_a) & request.phases(control_b)


def test_a_walk_the_controller_shows_is_a_pedestrian_call() -> None:
    request = control_request(sample_map(), decided({"2", "6", "p_east"}), shown_status({2, 6}))
    assert request.phases(PhaseControl.PED_CALL) == {2}
    assert request.phases(PhaseControl.PED_OMIT) == {4}


def test_status_decodes_to_each_groups_indication_with_the_flashing_yellow_arrow_from_its_overlap() -> None:
    cabinet = sample_map()
    status = CabinetStatus(
        vehicle_reds=frozenset({1, 3, 4, 5, 7, 8}),
        vehicle_yellows=frozenset(),
        vehicle_greens=frozenset({2, 6}),
        dont_walks=frozenset({4}),
        ped_clears=frozenset(),
        walks=frozenset({2}),
        phase_nexts=frozenset({4, 8}),
        overlap_greens=frozenset({1}),
    )
    shown = status.indications(cabinet)
    assert shown["2"] is Indication.GREEN and shown["4"] is Indication.RED
    assert shown["1"] is Indication.FLASHING_YELLOW
    assert shown["p_east"] is Indication.GREEN and shown["p_north"] is Indication.RED


def test_a_phase_lit_in_two_colours_or_none_is_reported_dark_not_guessed() -> None:
    cabinet = CabinetMap(vehicle_phase={"2": 2, "4": 4})
    status = CabinetStatus(
        vehicle_reds=frozenset({2}),
        vehicle_yellows=frozenset(),
        vehicle_greens=frozenset({2}),
        dont_walks=frozenset(),
        ped_clears=frozenset(),
        walks=frozenset(),
        phase_nexts=frozenset(),
    )
    assert status.indications(cabinet) == {"2": Indication.DARK, "4": Indication.DARK}
    assert status.problems(cabinet) == ["phase 2 shows red+green", "phase 4 shows nothing"]


def test_decoding_names_a_missing_or_out_of_range_object() -> None:
    cabinet = CabinetMap(vehicle_phase={"2": 2})
    values = dict.fromkeys(cabinet.status_oids(), 0)
    values[phase_status_oid(PhaseStatus.GREENS, 1)] = 300
    with pytest.raises(ValueError, match=r"phaseStatusGroupGreens\.1 .* = 300"):
        CabinetStatus.from_values(cabinet, values)
    del values[phase_status_oid(PhaseStatus.GREENS, 1)]
    with pytest.raises(ValueError, match=r"lacks phaseStatusGroupGreens\.1"):
        CabinetStatus.from_values(cabinet, values)


def test_divergences_list_groups_the_cabinet_shows_otherwise() -> None:
    wanted = decided(set(), **{"2": Indication.YELLOW})
    assert [(d.signal_group, d.shown) for d in divergences(wanted, {"2": Indication.GREEN, "4": Indication.RED})] == [
        ("2", Indication.GREEN)
    ]


def test_a_map_with_one_phase_for_two_groups_is_refused() -> None:
    with pytest.raises(ValueError, match="share one number"):
        CabinetMap(vehicle_phase={"2": 2, "6": 2})
    with pytest.raises(ValueError, match="must be 1-16"):
        CabinetMap(vehicle_phase={"2": 17})
