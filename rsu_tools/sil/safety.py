"""An independent check of the link states SUMO actually showed, for every program alike.

It trusts neither the controller nor SUMO's collision count: it reads the traffic light's state
string after every step, maps links to signal groups and checks the site's rules:

* conflicting groups never both open (anything but red lets road users in), except a permissive
  left giving way (SUMO's minor green 'g' on all its links, or its yellow) beside its partner's
  green or yellow, and beside pedestrians,
* a vehicle green is always followed by yellow (never straight to red),
* yellow lasts at least the group's change interval,
* a group turns green only after every conflicting group has been red for its all-red time.

Durations are only known to the step length, so each is allowed one step of slack.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from signal_control.phasing import PhasePlan

_RED = frozenset("rs")


@dataclass
class ShownStateChecker:
    # Link index -> signal group; link indices not listed are ignored.
    group_of_link: Mapping[int, str]
    plan: PhasePlan
    step_s: float
    violations: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    checked_states: int = 0
    _char: dict[str, str] = field(default_factory=dict)
    _since: dict[str, float] = field(default_factory=dict)
    _red_since: dict[str, float] = field(default_factory=dict)
    _links_of_group: dict[str, list[int]] = field(default_factory=dict)
    _conflict_pairs: tuple[tuple[str, str], ...] = ()
    _permissive_with: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for index, group in self.group_of_link.items():
            self._links_of_group.setdefault(group, []).append(index)
        self._conflict_pairs = tuple(tuple(sorted(pair)) for pair in self.plan.conflicts)  # type: ignore[misc]
        self._permissive_with = {
            group: timing.permissive_with for group, timing in self.plan.groups.items() if timing.permissive_with
        }

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def _flag(self, kind: str, message: str) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if len(self.violations) < 50:  # keep a sample, count them all
            self.violations.append(message)

    def observe(self, time_s: float, state: str) -> None:
        self.checked_states += 1
        chars: dict[str, str] = {}
        for group, links in self._links_of_group.items():
            shown = {state[i] for i in links if i < len(state)}
            # The most permissive link decides: one open link lets road users in; 'g' alone is a
            # movement that gives way (a permissive left's flashing yellow arrow).
            if "G" in shown:
                chars[group] = "G"
            elif "g" in shown:
                chars[group] = "g"
            elif shown - _RED:
                chars[group] = "y" if "y" in shown else "o"
            else:
                chars[group] = "r"
        open_now = {group: char != "r" for group, char in chars.items()}
        giving_way = self._giving_way(chars)
        for a, b in self._conflict_pairs:
            if not (open_now.get(a) and open_now.get(b)):
                continue
            if any(g in giving_way and (o == giving_way[g] or self._is_pedestrian(o)) for g, o in ((a, b), (b, a))):
                continue
            self._flag("conflicting_green", f"t={time_s:.1f}: conflicting groups {a} and {b} both open")
        slack = self.step_s + 1e-6
        for group, char in chars.items():
            previous = self._char.get(group)
            if previous == char:
                continue
            timing = self.plan.groups.get(group)
            if previous is not None and timing is not None and not timing.is_pedestrian:
                held_s = time_s - self._since[group]
                if previous in ("G", "g") and char == "r":
                    self._flag("no_yellow", f"t={time_s:.1f}: group {group} went from green to red without yellow")
                if previous == "y" and held_s < timing.change_interval_s - slack:
                    self._flag("short_yellow", f"t={time_s:.1f}: group {group} yellow lasted {held_s:.2f} s")
            if char in ("G", "g") and previous not in (None, "G", "g"):
                self._check_all_red(group, time_s, slack, giving_way.get(group))
            self._char[group] = char
            self._since[group] = time_s
            if char == "r":
                # Red from the first state on counts as red for ever (no clearance owed at start).
                self._red_since[group] = time_s if previous is not None else -math.inf

    def _giving_way(self, chars: Mapping[str, str]) -> dict[str, str]:
        """Permissive lefts turning now (group -> partner): minor green beside the partner's green,
        or yellow beside the partner's yellow."""
        return {
            group: partner
            for group, partner in self._permissive_with.items()
            if (chars.get(group), chars.get(partner)) in (("g", "G"), ("g", "g"), ("y", "y"))
        }

    def _is_pedestrian(self, group: str) -> bool:
        timing = self.plan.groups.get(group)
        return timing is not None and timing.is_pedestrian

    def _check_all_red(self, group: str, time_s: float, slack: float, gives_way_to: str | None = None) -> None:
        for other in sorted(self.plan.conflicts_of.get(group, frozenset())):
            if gives_way_to is not None and (other == gives_way_to or self._is_pedestrian(other)):
                continue
            red_since = self._red_since.get(other)
            if self._char.get(other, "r") != "r" or red_since is None:
                continue  # conflicting-green case is flagged above; never-seen is start-up
            required_s = self.plan.groups[other].all_red_s
            if time_s - red_since < required_s - slack:
                self._flag(
                    "short_all_red",
                    f"t={time_s:.1f}: group {group} green {time_s - red_since:.2f} s after {other} turned red",
                )
