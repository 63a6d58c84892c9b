"""NTCIP 1202 (Actuated Signal Controller) objects the unit writes and reads, as plain data.

No SNMP here: this module turns the controller's wanted signal-group states into the integer
values of the phase control objects, and the polled phase / overlap status integers back into
signal-group indications. The transport (rsu.cabinet) moves the integers.

Object identifiers, checked one by one against the ASC MIB of NTCIP 1202 (module ASC-MIB /
"1202ASC.mib", asc = 1.3.6.1.4.1.1206.4.2.1; table entries index by group number g, phases
8g-7 .. 8g in bits 0 .. 7):

* phase (asc 1) / phaseStatusGroupTable (1.4) / phaseStatusGroupEntry (1.4.1), read-only:
  Reds .2, Yellows .3, Greens .4, DontWalks .5, PedClears .6, Walks .7, VehCalls .8, PedCalls .9,
  PhaseOns .10, PhaseNexts .11;
* phaseControlGroupTable (1.5) / phaseControlGroupEntry (1.5.1), read-write: PhaseOmit .2,
  PedOmit .3, Hold .4, ForceOff .5, VehCall .6, PedCall .7 -- every SET of these resets the
  backup timer (MIB text of unitBackupTime);
* unit (asc 3): unitBackupTime 3.3.0 (seconds, 0-65535, 0 disables): when it expires without a
  SET to a system control object, the controller reverts to Backup Mode (its own plan) and
  resets the control objects to zero;
* overlap (asc 9) / overlapStatusGroupTable (9.4) / entry (9.4.1): Reds .2, Yellows .3, Greens .4.

Public code gets some of these wrong (e.g. PhaseOmit at .1.5.1.1, which is the group number);
``tests/signal_control/test_ntcip_objects.py`` pins each one to the MIB's numbering.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from rsu_contracts.messages.signal import Indication, SignalGroupState

ASC = (1, 3, 6, 1, 4, 1, 1206, 4, 2, 1)
PHASES_PER_GROUP = 8
MAX_PHASES = 16  # the unit's NEMA numbering (SignalGroup.nema_phase <= 16): groups 1 and 2
MAX_OVERLAPS = 16

Oid = tuple[int, ...]


class PhaseStatus(StrEnum):
    REDS = "phaseStatusGroupReds"
    YELLOWS = "phaseStatusGroupYellows"
    GREENS = "phaseStatusGroupGreens"
    DONT_WALKS = "phaseStatusGroupDontWalks"
    PED_CLEARS = "phaseStatusGroupPedClears"
    WALKS = "phaseStatusGroupWalks"
    VEH_CALLS = "phaseStatusGroupVehCalls"
    PED_CALLS = "phaseStatusGroupPedCalls"
    PHASE_ONS = "phaseStatusGroupPhaseOns"
    PHASE_NEXTS = "phaseStatusGroupPhaseNexts"


class PhaseControl(StrEnum):
    PHASE_OMIT = "phaseControlGroupPhaseOmit"
    PED_OMIT = "phaseControlGroupPedOmit"
    HOLD = "phaseControlGroupHold"
    FORCE_OFF = "phaseControlGroupForceOff"
    VEH_CALL = "phaseControlGroupVehCall"
    PED_CALL = "phaseControlGroupPedCall"


class OverlapStatus(StrEnum):
    REDS = "overlapStatusGroupReds"
    YELLOWS = "overlapStatusGroupYellows"
    GREENS = "overlapStatusGroupGreens"


# Column numbers within each table entry (NTCIP 1202 ASC MIB).
PHASE_STATUS_COLUMN: Mapping[PhaseStatus, int] = {status: column for column, status in enumerate(PhaseStatus, start=2)}
PHASE_CONTROL_COLUMN: Mapping[PhaseControl, int] = {
    control: column for column, control in enumerate(PhaseControl, start=2)
}
OVERLAP_STATUS_COLUMN: Mapping[OverlapStatus, int] = {
    status: column for column, status in enumerate(OverlapStatus, start=2)
}
UNIT_BACKUP_TIME: Oid = (*ASC, 3, 3, 0)


def phase_status_oid(status: PhaseStatus, group: int) -> Oid:
    return (*ASC, 1, 4, 1, PHASE_STATUS_COLUMN[status], group)


def phase_control_oid(control: PhaseControl, group: int) -> Oid:
    return (*ASC, 1, 5, 1, PHASE_CONTROL_COLUMN[control], group)


def overlap_status_oid(status: OverlapStatus, group: int) -> Oid:
    return (*ASC, 9, 4, 1, OVERLAP_STATUS_COLUMN[status], group)


def group_and_bit(number: int) -> tuple[int, int]:
    """Phase (or overlap) ``number`` -> (table group g, bit): phase 1 is bit 0 of group 1."""
    if number < 1:
        raise ValueError(f"phase/overlap numbers start at 1, got {number}")
    return (number - 1) // PHASES_PER_GROUP + 1, (number - 1) % PHASES_PER_GROUP


def bitmask_groups(numbers: Iterable[int], groups: int) -> list[int]:
    """One 8-bit value per table group (index 0 = group 1) with the given phases' bits set."""
    values = [0] * groups
    for number in numbers:
        group, bit = group_and_bit(number)
        if group > groups:
            raise ValueError(f"phase/overlap {number} is beyond the {groups * PHASES_PER_GROUP} the map covers")
        values[group - 1] |= 1 << bit
    return values


def numbers_in(values: Sequence[int]) -> frozenset[int]:
    """The phase (or overlap) numbers whose bits are set, ``values[0]`` being group 1."""
    return frozenset(
        index * PHASES_PER_GROUP + bit + 1
        for index, value in enumerate(values)
        for bit in range(PHASES_PER_GROUP)
        if value >> bit & 1
    )


@dataclass(frozen=True)
class CabinetMap:
    """Where each of the unit's signal groups lives in the cabinet: a vehicle phase, the
    pedestrian outputs of a phase, or an overlap (e.g. a flashing-yellow-arrow left)."""

    vehicle_phase: Mapping[str, int] = field(default_factory=dict)
    pedestrian_phase: Mapping[str, int] = field(default_factory=dict)
    overlap: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        seen: dict[str, str] = {}
        for kind, mapping, limit in (
            ("vehicle_phase", self.vehicle_phase, MAX_PHASES),
            ("pedestrian_phase", self.pedestrian_phase, MAX_PHASES),
            ("overlap", self.overlap, MAX_OVERLAPS),
        ):
            for group_id, number in mapping.items():
                if not 1 <= number <= limit:
                    raise ValueError(f"cabinet map {kind}[{group_id}] = {number}: must be 1-{limit}")
                # A left turn may have a phase (protected) and an overlap (its flashing yellow arrow).
                if group_id in seen and not (kind == "overlap" and seen[group_id] == "vehicle_phase"):
                    raise ValueError(f"signal group {group_id} is mapped twice ({seen[group_id]} and {kind})")
                seen.setdefault(group_id, kind)
        for kind, mapping in (("vehicle_phase", self.vehicle_phase), ("overlap", self.overlap)):
            numbers = list(mapping.values())
            if len(numbers) != len(set(numbers)):
                raise ValueError(f"cabinet map {kind}: two signal groups share one number ({sorted(numbers)})")

    @property
    def phase_groups(self) -> int:
        numbers = [*self.vehicle_phase.values(), *self.pedestrian_phase.values(), 1]
        return group_and_bit(max(numbers))[0]

    @property
    def overlap_groups(self) -> int:
        return group_and_bit(max([*self.overlap.values(), 1]))[0] if self.overlap else 0

    def status_oids(self) -> list[Oid]:
        """Every status object one poll reads, phase groups first, then overlap groups."""
        oids = [phase_status_oid(status, g) for g in range(1, self.phase_groups + 1) for status in PhaseStatus]
        oids += [overlap_status_oid(status, g) for g in range(1, self.overlap_groups + 1) for status in OverlapStatus]
        return oids


@dataclass(frozen=True)
class ControlRequest:
    """The six control objects, one 8-bit value per phase group (index 0 = phases 1-8)."""

    values: Mapping[PhaseControl, tuple[int, ...]]

    def varbinds(self) -> list[tuple[Oid, int]]:
        return [
            (phase_control_oid(control, index + 1), value)
            for control, per_group in self.values.items()
            for index, value in enumerate(per_group)
        ]

    def phases(self, control: PhaseControl) -> frozenset[int]:
        return numbers_in(self.values[control])


def control_request(
    cabinet: CabinetMap,
    wanted: Sequence[SignalGroupState],
    shown: CabinetStatus | None,
    called_groups: Iterable[str] = (),
) -> ControlRequest:
    """What to write this tick so the cabinet shows what the controller decided.

    * Hold: every phase the controller shows green (the cabinet must not gap or max out).
    * Force off: every phase the cabinet shows green that the controller has ended (its yellow
      and all-red are then the cabinet's own).
    * Vehicle call: phases the controller serves or is clearing to (``called_groups``: the stage
      after the current clearance) and has not yet seen green; pedestrian call for wanted walks.
    * Omit: every other phase, so the cabinet never serves one the controller did not choose;
      pedestrian omit for pedestrian outputs not wanted.
    A phase never gets hold and force off at once, nor omit and call.
    """
    by_group = {state.signal_group: state.indication for state in wanted}
    green_wanted = {
        number for group_id, number in cabinet.vehicle_phase.items() if by_group.get(group_id) is Indication.GREEN
    }
    walk_wanted = {
        number
        for group_id, number in cabinet.pedestrian_phase.items()
        if by_group.get(group_id) in (Indication.GREEN, Indication.PED_CLEARANCE)
    }
    shown_green = set(shown.vehicle_greens) if shown is not None else set()
    calls = {cabinet.vehicle_phase[g] for g in called_groups if g in cabinet.vehicle_phase}
    all_phases = set(cabinet.vehicle_phase.values())
    hold = green_wanted
    force_off = (shown_green - green_wanted) & all_phases
    veh_call = (green_wanted - shown_green) | (calls - force_off)
    omit = all_phases - green_wanted - veh_call
    ped_phases = set(cabinet.pedestrian_phase.values())
    groups = cabinet.phase_groups
    values = {
        PhaseControl.PHASE_OMIT: omit,
        PhaseControl.PED_OMIT: ped_phases - walk_wanted,
        PhaseControl.HOLD: hold,
        PhaseControl.FORCE_OFF: force_off,
        PhaseControl.VEH_CALL: veh_call,
        PhaseControl.PED_CALL: walk_wanted,
    }
    return ControlRequest({control: tuple(bitmask_groups(numbers, groups)) for control, numbers in values.items()})


@dataclass(frozen=True)
class CabinetStatus:
    """One poll of the cabinet's status objects, decoded to phase and overlap numbers."""

    vehicle_reds: frozenset[int]
    vehicle_yellows: frozenset[int]
    vehicle_greens: frozenset[int]
    dont_walks: frozenset[int]
    ped_clears: frozenset[int]
    walks: frozenset[int]
    phase_nexts: frozenset[int]
    overlap_reds: frozenset[int] = frozenset()
    overlap_yellows: frozenset[int] = frozenset()
    overlap_greens: frozenset[int] = frozenset()

    @classmethod
    def from_values(cls, cabinet: CabinetMap, values: Mapping[Oid, int]) -> CabinetStatus:
        """Decode a poll; raises ValueError naming the object if one is missing or not 0-255."""

        def read(oid: Oid, name: str) -> int:
            if oid not in values:
                raise ValueError(f"cabinet answer lacks {name} ({'.'.join(map(str, oid))})")
            value = values[oid]
            if not 0 <= value <= 255:
                raise ValueError(f"cabinet {name} ({'.'.join(map(str, oid))}) = {value}: not an 8-bit group")
            return value

        def phases(status: PhaseStatus) -> frozenset[int]:
            return numbers_in(
                [read(phase_status_oid(status, g), f"{status.value}.{g}") for g in range(1, cabinet.phase_groups + 1)]
            )

        def overlaps(status: OverlapStatus) -> frozenset[int]:
            return numbers_in(
                [
                    read(overlap_status_oid(status, g), f"{status.value}.{g}")
                    for g in range(1, cabinet.overlap_groups + 1)
                ]
            )

        return cls(
            vehicle_reds=phases(PhaseStatus.REDS),
            vehicle_yellows=phases(PhaseStatus.YELLOWS),
            vehicle_greens=phases(PhaseStatus.GREENS),
            dont_walks=phases(PhaseStatus.DONT_WALKS),
            ped_clears=phases(PhaseStatus.PED_CLEARS),
            walks=phases(PhaseStatus.WALKS),
            phase_nexts=phases(PhaseStatus.PHASE_NEXTS),
            overlap_reds=overlaps(OverlapStatus.REDS),
            overlap_yellows=overlaps(OverlapStatus.YELLOWS),
            overlap_greens=overlaps(OverlapStatus.GREENS),
        )

    def problems(self, cabinet: CabinetMap) -> list[str]:
        """Inconsistent bits (a phase both green and red, a mapped phase showing nothing)."""
        found = []
        for number in sorted(cabinet.vehicle_phase.values()):
            lit = [
                name
                for name, bits in (
                    ("red", self.vehicle_reds),
                    ("yellow", self.vehicle_yellows),
                    ("green", self.vehicle_greens),
                )
                if number in bits
            ]
            if len(lit) != 1:
                found.append(f"phase {number} shows {'+'.join(lit) or 'nothing'}")
        return found

    def indications(self, cabinet: CabinetMap) -> dict[str, Indication]:
        """Each mapped signal group's indication as the cabinet shows it. A phase showing
        several colours or none at all is reported as DARK: never guess a colour."""
        shown: dict[str, Indication] = {}
        for group_id, number in cabinet.vehicle_phase.items():
            shown[group_id] = _one_of(
                number,
                ((self.vehicle_greens, Indication.GREEN), (self.vehicle_yellows, Indication.YELLOW)),
                self.vehicle_reds,
            )
        for group_id, number in cabinet.pedestrian_phase.items():
            shown[group_id] = _one_of(
                number, ((self.walks, Indication.GREEN), (self.ped_clears, Indication.PED_CLEARANCE)), self.dont_walks
            )
        for group_id, number in cabinet.overlap.items():
            # A permissive left's overlap: its green output is the flashing yellow arrow, shown
            # only while the left's own (protected) phase is red.
            permissive = _one_of(
                number,
                ((self.overlap_greens, Indication.FLASHING_YELLOW), (self.overlap_yellows, Indication.YELLOW)),
                self.overlap_reds,
            )
            own = shown.get(group_id)
            if own is None or (own is Indication.RED and permissive is not Indication.RED):
                shown[group_id] = permissive
            elif own is not Indication.RED and permissive not in (Indication.RED, Indication.DARK):
                shown[group_id] = Indication.DARK  # protected and permissive outputs lit at once
        return shown


def _one_of(number: int, lit: Sequence[tuple[frozenset[int], Indication]], reds: frozenset[int]) -> Indication:
    on = [indication for bits, indication in lit if number in bits]
    if number in reds:
        on.append(Indication.RED)
    return on[0] if len(on) == 1 else Indication.DARK


@dataclass(frozen=True)
class Divergence:
    """A signal group the cabinet shows differently from what the controller decided."""

    signal_group: str
    wanted: Indication
    shown: Indication


def divergences(wanted: Sequence[SignalGroupState], shown: Mapping[str, Indication]) -> list[Divergence]:
    """Groups whose shown indication differs from the wanted one (only mapped groups count)."""
    return [
        Divergence(state.signal_group, state.indication, shown[state.signal_group])
        for state in wanted
        if state.signal_group in shown and shown[state.signal_group] != state.indication
    ]
