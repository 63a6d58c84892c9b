"""A NEMA TS2-style dual-ring controller: the timing engine of the virtual cabinet.

Test tooling, not the unit: it plays the field controller the unit talks to over NTCIP 1202, so
the unit's cabinet backend can be tested against something that keeps its own intervals and
refuses what a real controller refuses.

* Two rings of four phases (1-4, 5-8), one barrier between {1, 2, 5, 6} and {3, 4, 7, 8}; each
  ring times green (at least its min green, longer if its walk and pedestrian clearance need it),
  yellow and red clearance; both rings cross the barrier together.
* System control (the unit's writes, valid while the backup timer runs): a held phase stays
  green; a forced-off phase ends after its min green (an omit only keeps a phase from being
  selected next); a phase neither held nor
  forced off ends at its local max green if another phase is called; the next phase is the next
  one in ring order with a vehicle or pedestrian call from the unit that is not omitted.
* Pedestrian recycle: a pedestrian call that arrives while its phase is green and the walk has
  not been served this green starts the walk then (the green is extended to cover walk and
  clearance), as controllers configured for ped recycle / rest in walk do.
* Backup mode (no write for ``backup_time_s``): every control object is reset to zero and the
  local plan runs: every phase on recall for its local max green.
* An MMU-style monitor checks every step that no two conflicting phases show anything but red;
  if they ever do, the cabinet goes to flash and stays there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

RINGS: tuple[tuple[int, ...], ...] = ((1, 2, 3, 4), (5, 6, 7, 8))
BARRIER_SIDES: tuple[frozenset[int], ...] = (frozenset({1, 2, 5, 6}), frozenset({3, 4, 7, 8}))


def ring_of(phase: int) -> int:
    return 0 if phase <= 4 else 1


def side_of(phase: int) -> int:
    return 0 if phase in BARRIER_SIDES[0] else 1


def compatible(a: int, b: int) -> bool:
    """NEMA dual ring: two phases may time together only in different rings on one barrier side."""
    return a != b and ring_of(a) != ring_of(b) and side_of(a) == side_of(b)


class Interval(StrEnum):
    GREEN = "green"
    YELLOW = "yellow"
    RED_CLEAR = "red_clear"
    # Done with red clearance, waiting for the other ring (barrier) or a call.
    REST = "rest"


@dataclass(frozen=True)
class PhaseTiming:
    min_green_s: float = 5.0
    local_max_green_s: float = 20.0
    yellow_s: float = 3.0
    all_red_s: float = 2.0
    walk_s: float = 0.0  # 0: the phase has no pedestrian movement
    ped_clear_s: float = 0.0


@dataclass(frozen=True)
class CabinetTiming:
    phases: Mapping[int, PhaseTiming]
    # Overlap number -> (left-turn phase, its opposing through phase): a flashing yellow arrow,
    # lit (overlap green) while the through is green and the left's own phase is not.
    overlaps: Mapping[int, tuple[int, int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for phase in self.phases:
            if not 1 <= phase <= 8:
                raise ValueError(f"the virtual cabinet has phases 1-8, not {phase}")
        for ring in RINGS:
            if not any(phase in self.phases for phase in ring):
                raise ValueError(f"ring {ring} has no configured phase")


@dataclass(frozen=True)
class Controls:
    """The phase control objects, as phase-number sets."""

    hold: frozenset[int] = frozenset()
    force_off: frozenset[int] = frozenset()
    veh_call: frozenset[int] = frozenset()
    ped_call: frozenset[int] = frozenset()
    omit: frozenset[int] = frozenset()
    ped_omit: frozenset[int] = frozenset()


@dataclass(frozen=True)
class Shown:
    """What the cabinet's outputs show this instant."""

    reds: frozenset[int]
    yellows: frozenset[int]
    greens: frozenset[int]
    walks: frozenset[int]
    ped_clears: frozenset[int]
    dont_walks: frozenset[int]
    nexts: frozenset[int]
    overlap_reds: frozenset[int]
    overlap_yellows: frozenset[int]
    overlap_greens: frozenset[int]
    flash: bool
    backup_mode: bool


@dataclass
class _Ring:
    phases: tuple[int, ...]
    phase: int
    interval: Interval
    since_s: float
    walk_served: bool = False
    walk_since_s: float = 0.0


class DualRingController:
    def __init__(self, timing: CabinetTiming, now_s: float) -> None:
        self.timing = timing
        self.flash = False
        self.flash_reason = ""
        self.controls = Controls()
        self.backup_mode = True
        self.backup_time_s = 0.0
        self._last_write_s = -1e18
        rings = [tuple(p for p in ring if p in timing.phases) for ring in RINGS]
        # Start-up: both rings in red clearance ahead of their first phase, a safe state.
        self._rings = [_Ring(ring, ring[-1], Interval.RED_CLEAR, now_s) for ring in rings]
        # Start-up: as if the side of the rings' last phases had just been served.
        self._side = side_of(rings[0][-1])

    # -- the unit's writes ------------------------------------------------------------------
    def write(self, controls: Controls, now_s: float) -> None:
        self.controls = controls
        self._last_write_s = now_s
        self.backup_mode = False

    def set_backup_time(self, seconds: float, now_s: float) -> None:
        self.backup_time_s = seconds
        self._last_write_s = now_s

    # -- timing -----------------------------------------------------------------------------
    def step(self, now_s: float) -> None:
        if self.flash:
            return
        if not self.backup_mode and (self.backup_time_s <= 0 or now_s - self._last_write_s > self.backup_time_s):
            # Backup timer expired (or never armed): back to the local plan, controls reset.
            self.backup_mode = True
            self.controls = Controls()
        for ring in self._rings:
            self._recycle_walk(ring, now_s)
            self._advance(ring, now_s)
        self._cross_barrier(now_s)
        self._monitor()

    def _calls(self) -> frozenset[int]:
        if self.backup_mode:
            return frozenset(self.timing.phases)  # local plan: every phase on recall
        return self.controls.veh_call | self.controls.ped_call

    def _green_may_end(self, ring: _Ring, now_s: float) -> bool:
        timing = self.timing.phases[ring.phase]
        elapsed = now_s - ring.since_s
        needed = timing.min_green_s
        if ring.walk_served:
            needed = max(needed, ring.walk_since_s - ring.since_s + timing.walk_s + timing.ped_clear_s)
        if elapsed < needed:
            return False
        if self.backup_mode:
            return elapsed >= timing.local_max_green_s
        if ring.phase in self.controls.hold:
            return False
        # Modelled on controllers where an omit only keeps a phase from being selected and does not
        # end one already green: the unit ends a green by force-off, never by omit alone (vendors
        # differ here; this keeps a cabinet that ignores force-offs visibly green).
        if ring.phase in self.controls.force_off:
            return True
        # Not held: the phase's own max green ends it once another phase is called.
        return elapsed >= timing.local_max_green_s and bool(self._calls() - {ring.phase})

    def _recycle_walk(self, ring: _Ring, now_s: float) -> None:
        timing = self.timing.phases[ring.phase]
        if ring.interval is not Interval.GREEN or ring.walk_served or timing.walk_s <= 0 or self.backup_mode:
            return
        if ring.phase in self.controls.ped_call and ring.phase not in self.controls.ped_omit:
            ring.walk_served, ring.walk_since_s = True, now_s

    def _advance(self, ring: _Ring, now_s: float) -> None:
        timing = self.timing.phases[ring.phase]
        elapsed = now_s - ring.since_s
        if ring.interval is Interval.GREEN and self._green_may_end(ring, now_s):
            ring.interval, ring.since_s = Interval.YELLOW, now_s
        elif ring.interval is Interval.YELLOW and elapsed >= timing.yellow_s:
            ring.interval, ring.since_s = Interval.RED_CLEAR, now_s
        elif ring.interval is Interval.RED_CLEAR and elapsed >= timing.all_red_s:
            ring.interval, ring.since_s = Interval.REST, now_s

    def _next_in_ring(self, ring: _Ring, side: int, afresh: bool = False) -> int | None:
        """The next called, not omitted phase of this ring on barrier side ``side``: after the
        ring's current phase on the side being served (ring order, no going back), or the first
        one when the side is entered afresh."""
        calls = self._calls() - self.controls.omit
        on_side = [phase for phase in ring.phases if side_of(phase) == side]
        if not afresh and side == self._side and ring.phase in on_side:
            on_side = on_side[on_side.index(ring.phase) + 1 :]
        return next((phase for phase in on_side if phase in calls), None)

    def _cross_barrier(self, now_s: float) -> None:
        resting = [ring for ring in self._rings if ring.interval is Interval.REST]
        if not resting:
            return
        if len(resting) < len(self._rings):
            # The other ring still times on this side: a resting ring may move on within it.
            for ring in resting:
                nxt = self._next_in_ring(ring, self._side)
                if nxt is not None:
                    self._start(ring, nxt, now_s)
            return
        # Both rings at rest: go on within the side if called, else cross the barrier (or, if
        # nothing is called beyond it, start the same side over).
        for side, afresh in ((self._side, False), (1 - self._side, True), (self._side, True)):
            choices = [self._next_in_ring(ring, side, afresh) for ring in self._rings]
            if any(choice is not None for choice in choices):
                self._side = side
                for ring, choice in zip(self._rings, choices, strict=True):
                    if choice is not None:
                        self._start(ring, choice, now_s)
                return

    def _start(self, ring: _Ring, phase: int, now_s: float) -> None:
        ring.phase, ring.interval, ring.since_s = phase, Interval.GREEN, now_s
        timing = self.timing.phases[phase]
        ped_called = self.backup_mode or phase in self.controls.ped_call
        ring.walk_served = timing.walk_s > 0 and ped_called and phase not in self.controls.ped_omit
        ring.walk_since_s = now_s

    def _monitor(self) -> None:
        lit = [ring.phase for ring in self._rings if ring.interval in (Interval.GREEN, Interval.YELLOW)]
        for index, a in enumerate(lit):
            for b in lit[index + 1 :]:
                if not compatible(a, b):
                    self.flash = True
                    self.flash_reason = f"MMU: conflicting phases {a} and {b} not red together"

    # -- outputs ------------------------------------------------------------------------------
    def shown(self, now_s: float) -> Shown:
        phases = frozenset(self.timing.phases)
        if self.flash:
            empty: frozenset[int] = frozenset()
            return Shown(
                phases,
                empty,
                empty,
                empty,
                empty,
                phases,
                empty,
                frozenset(self.timing.overlaps),
                empty,
                empty,
                True,
                self.backup_mode,
            )
        greens = {ring.phase for ring in self._rings if ring.interval is Interval.GREEN}
        yellows = {ring.phase for ring in self._rings if ring.interval is Interval.YELLOW}
        walks: set[int] = set()
        ped_clears: set[int] = set()
        for ring in self._rings:
            if ring.interval is Interval.GREEN and ring.walk_served:
                timing = self.timing.phases[ring.phase]
                elapsed = now_s - ring.walk_since_s
                if elapsed < timing.walk_s:
                    walks.add(ring.phase)
                elif elapsed < timing.walk_s + timing.ped_clear_s:
                    ped_clears.add(ring.phase)
        ped_phases = {phase for phase, timing in self.timing.phases.items() if timing.walk_s > 0}
        nexts = set()
        for ring in self._rings:
            if ring.interval is not Interval.GREEN:
                nxt = self._next_in_ring(ring, self._side) or self._next_in_ring(ring, 1 - self._side)
                if nxt is not None:
                    nexts.add(nxt)
        overlap_greens = {
            number
            for number, (left, through) in self.timing.overlaps.items()
            if through in greens and left not in greens | yellows
        }
        overlap_yellows = {
            number
            for number, (left, through) in self.timing.overlaps.items()
            if through in yellows and left not in greens | yellows
        }
        overlaps = frozenset(self.timing.overlaps)
        return Shown(
            reds=phases - greens - yellows,
            yellows=frozenset(yellows),
            greens=frozenset(greens),
            walks=frozenset(walks),
            ped_clears=frozenset(ped_clears),
            dont_walks=frozenset(ped_phases - walks - ped_clears),
            nexts=frozenset(nexts),
            overlap_reds=overlaps - overlap_greens - overlap_yellows,
            overlap_yellows=frozenset(overlap_yellows),
            overlap_greens=frozenset(overlap_greens),
            flash=False,
            backup_mode=self.backup_mode,
        )
