"""The conflict monitor: an independent check of every signal output, failing to flash.

Like a cabinet's MMU it knows nothing about stages, strategies or the controller's state: it
sees only the sequence of (time, indication per group) it is fed and the site's conflicts and
interval lengths, and keeps its own record of when each group's indication began.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from rsu_contracts.messages.signal import Indication, SignalGroupState
from signal_control.phasing import GroupTiming, PhasePlan

# Only these let nobody go; anything else (including dark or flashing yellow) counts as open.
STOP_INDICATIONS = frozenset({Indication.RED, Indication.FLASHING_RED})
# Clock rounding between the controller's timers and this check must not raise false faults.
TIMING_TOLERANCE_S = 1e-6


def conflicting_greens(
    groups: Iterable[SignalGroupState] | Mapping[str, Indication],
    conflicts: Iterable[tuple[str, str]] | Iterable[frozenset[str]],
    permissive_with: Mapping[str, str] | None = None,
    pedestrian_groups: Collection[str] = (),
) -> list[tuple[str, str]]:
    """Pairs of conflicting groups that are both not red; empty when the output is safe.

    A permissive left (``permissive_with``: group -> the opposing through it gives way to) may
    show its flashing yellow arrow beside its partner's green, and its permissive yellow beside
    the partner's yellow; it gives way to pedestrians then too. Every other pair must be stopped.
    A stateless last check for backends just before they drive the signal heads.
    """
    if isinstance(groups, Mapping):
        indications: Mapping[str, Indication] = groups
    else:
        indications = {state.signal_group: state.indication for state in groups}
    open_groups = {group for group, indication in indications.items() if indication not in STOP_INDICATIONS}
    giving_way = permissive_groups(indications, permissive_with or {})
    found: set[tuple[str, str]] = set()
    for pair in conflicts:
        a, b = sorted(pair)
        if a not in open_groups or b not in open_groups:
            continue
        if any(
            group in giving_way and (other == giving_way[group] or other in pedestrian_groups)
            for group, other in ((a, b), (b, a))
        ):
            continue
        found.add((a, b))
    return sorted(found)


def permissive_groups(indications: Mapping[str, Indication], permissive_with: Mapping[str, str]) -> dict[str, str]:
    """Permissive lefts turning now (group -> partner): a flashing yellow arrow beside the partner's
    green, or the permissive yellow beside the partner's yellow."""
    turning: dict[str, str] = {}
    for group, partner in permissive_with.items():
        shown, partner_shows = indications.get(group), indications.get(partner)
        if (shown, partner_shows) in (
            (Indication.FLASHING_YELLOW, Indication.GREEN),
            (Indication.YELLOW, Indication.YELLOW),
        ):
            turning[group] = partner
    return turning


@dataclass
class _Observed:
    indication: Indication
    since_s: float
    # When the group last turned red; None until it has been seen red.
    red_since_s: float | None


class ConflictMonitor:
    """Feed it every output with `check`; the first violation latches until `reset`."""

    def __init__(self, plan: PhasePlan) -> None:
        # Keep private copies so nothing the controller does to its plan can reach the monitor.
        self._timings: dict[str, GroupTiming] = dict(plan.groups)
        self._conflicts: tuple[frozenset[str], ...] = tuple(plan.conflicts)
        self._conflicts_of: dict[str, frozenset[str]] = dict(plan.conflicts_of)
        self._permissive_with = {g: t.permissive_with for g, t in plan.groups.items() if t.permissive_with is not None}
        self._pedestrian_groups = frozenset(g for g, t in plan.groups.items() if t.is_pedestrian)
        self._observed: dict[str, _Observed] = {}
        self._last_time_s: float | None = None
        self._fault: str | None = None

    @property
    def fault(self) -> str | None:
        return self._fault

    def reset(self) -> None:
        """Clear the fault and forget all history; the next output is taken as a fresh start."""
        self._observed.clear()
        self._last_time_s = None
        self._fault = None

    def check(self, time_s: float, indications: Mapping[str, Indication]) -> str | None:
        """Record one output; returns the violation (new or latched), or None if it is safe."""
        if self._fault is not None:
            return self._fault
        if self._last_time_s is not None and time_s <= self._last_time_s:
            raise ValueError(f"conflict monitor: time must increase, got {time_s} after {self._last_time_s}")
        self._last_time_s = time_s
        violation = self._find_violation(time_s, indications)
        if violation is not None:
            self._fault = f"conflict monitor at t={time_s:.3f} s: {violation}"
        return self._fault

    def _find_violation(self, now_s: float, indications: Mapping[str, Indication]) -> str | None:
        expected = set(self._timings)
        if set(indications) != expected:
            missing = sorted(expected - set(indications))
            unknown = sorted(set(indications) - expected)
            return f"output does not cover the signal groups (missing {missing}, unknown {unknown})"
        pairs = conflicting_greens(indications, self._conflicts, self._permissive_with, self._pedestrian_groups)
        if pairs:
            a, b = pairs[0]
            return f"conflicting groups {a} ({indications[a]}) and {b} ({indications[b]}) are both not red"
        for group, indication in indications.items():
            if indication is not Indication.FLASHING_YELLOW:
                continue
            partner = self._permissive_with.get(group)
            if partner is None or indications[partner] is not Indication.GREEN:
                return f"group {group} shows a flashing yellow arrow without its permissive partner {partner} green"

        changed = {
            group: indication
            for group, indication in indications.items()
            if group not in self._observed or self._observed[group].indication != indication
        }
        # Ends of intervals first, so that red times include groups turning red right now.
        for group, indication in changed.items():
            previous = self._observed.get(group)
            if previous is not None and indication is not Indication.FLASHING_RED:
                problem = self._check_end_of(group, previous, indication, now_s)
                if problem is not None:
                    return problem
        for group, indication in changed.items():
            previous = self._observed.get(group)
            red_since = previous.red_since_s if previous is not None else None
            if indication in STOP_INDICATIONS:
                red_since = now_s
            self._observed[group] = _Observed(indication, now_s, red_since)
        for group, indication in changed.items():
            entering = indication in (Indication.GREEN, Indication.RED_YELLOW, Indication.FLASHING_YELLOW)
            if entering and self._was_stopped_before(group, now_s):
                problem = self._check_clearance_before_entry(
                    group, now_s, permissive=indication is Indication.FLASHING_YELLOW
                )
                if problem is not None:
                    return problem
        return None

    def _was_stopped_before(self, group: str, now_s: float) -> bool:
        # A group first seen green has no history to check; one that was red does.
        red_since = self._observed[group].red_since_s
        return red_since is not None and red_since < now_s

    def _check_end_of(self, group: str, previous: _Observed, new: Indication, now_s: float) -> str | None:
        timing = self._timings[group]
        held_s = now_s - previous.since_s
        old = previous.indication
        if timing.is_pedestrian:
            allowed = {
                Indication.GREEN: (Indication.PED_CLEARANCE, timing.min_green_s, "walk"),
                Indication.PED_CLEARANCE: (Indication.RED, timing.change_interval_s, "pedestrian clearance"),
                Indication.RED: (Indication.GREEN, 0.0, "don't walk"),
                Indication.FLASHING_RED: (Indication.RED, 0.0, "flash"),
            }
        else:
            allowed = {
                Indication.GREEN: (Indication.YELLOW, timing.min_green_s, "green"),
                Indication.YELLOW: (Indication.RED, timing.change_interval_s, "yellow"),
                Indication.RED: (Indication.GREEN, 0.0, "red"),
                Indication.RED_YELLOW: (Indication.GREEN, 0.0, "red-yellow"),
                Indication.FLASHING_RED: (Indication.RED, 0.0, "flash"),
            }
            if timing.permissive_with is not None:
                # The flashing yellow arrow always ends in the permissive yellow.
                allowed[Indication.FLASHING_YELLOW] = (Indication.YELLOW, 0.0, "flashing yellow arrow")
        if old not in allowed:
            return f"group {group} showed {old}, which this controller never drives"
        successor, minimum_s, name = allowed[old]
        acceptable = {successor}
        if old is Indication.RED:
            acceptable.add(Indication.RED_YELLOW)
            if timing.permissive_with is not None:
                acceptable.add(Indication.FLASHING_YELLOW)
        if new not in acceptable:
            return f"group {group} went from {old} to {new} (must go to {successor})"
        if held_s < minimum_s - TIMING_TOLERANCE_S:
            return f"group {group} {name} lasted {held_s:.3f} s, below the required {minimum_s:.3f} s"
        return None

    def _check_clearance_before_entry(self, group: str, now_s: float, permissive: bool = False) -> str | None:
        """Every conflicting group has been red for its all-red; a permissive turn gives way to its
        partner and to pedestrians, so only the other vehicle groups count for it."""
        for other in sorted(self._conflicts_of.get(group, frozenset())):
            if permissive and (other == self._permissive_with.get(group) or other in self._pedestrian_groups):
                continue
            observed = self._observed[other]
            if observed.red_since_s is None:
                return f"group {group} turned green while conflicting group {other} has no red history"
            red_for_s = now_s - observed.red_since_s
            required_s = self._timings[other].all_red_s
            if red_for_s < required_s - TIMING_TOLERANCE_S:
                return (
                    f"group {group} turned green {red_for_s:.3f} s after conflicting group {other} turned red "
                    f"(all-red {required_s:.3f} s)"
                )
        return None
