"""Checks of a run's record: what the simulated lamps showed (rsu.sim.lamps.LampLog) against the
site's safety rules, and the SPaT the unit sent against those lamps.

* Shown-state check: the conflict monitor (signal_control.safety) fed every change of the lamps.
  Conflicting greens are checked exactly; the interval minima (min green, yellow, all-red) are
  lowered by ``tolerance_s``, because the lamps are sampled once per simulation step and each
  end of an interval is seen up to one step late. The first interval of each group in the record
  began before the record did (a cabinet already running its own plan): its length is unknown,
  and a violation about it is not counted.
* SPaT agreement: on a fixed grid of samples (100 ms), the J2735 state the newest SPaT gave for a
  group against the state of the lamp SUMO showed, except within ``exclude_s`` of a lamp change
  (the poll period: the unit learns of a change one poll later).
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType

from rsu_contracts.messages.signal import Indication
from signal_control.phasing import PhasePlan
from signal_control.safety import ConflictMonitor
from v2x.spat import event_state

LampRecord = Sequence[tuple[float, Mapping[str, Indication]]]
SpatRecord = Sequence[tuple[float, Mapping[str, str]]]


def tolerant_plan(plan: PhasePlan, tolerance_s: float) -> PhasePlan:
    groups = {
        group_id: replace(
            timing,
            min_green_s=max(0.0, timing.min_green_s - tolerance_s),
            change_interval_s=max(0.0, timing.change_interval_s - tolerance_s),
            all_red_s=max(0.0, timing.all_red_s - tolerance_s),
        )
        for group_id, timing in plan.groups.items()
    }
    return replace(plan, groups=MappingProxyType(groups))


# The groups a conflict monitor's message is about (signal_control.safety's wording).
_ENDED_TOO_SOON = re.compile(r"group (\S+) .* lasted ")
_ENTERED_TOO_SOON = re.compile(r"after conflicting group (\S+) turned red")


def shown_state_violations(lamps: LampRecord, plan: PhasePlan, tolerance_s: float) -> list[str]:
    """Every violation in the lamps' record (the monitor is reset after each, to find the next)."""
    monitor = ConflictMonitor(tolerant_plan(plan, tolerance_s))
    found: list[str] = []
    last_s: float | None = None
    first: Mapping[str, Indication] | None = None
    changed: set[str] = set()  # groups whose current interval began inside the record
    previous: Mapping[str, Indication] = {}
    for time_s, indications in lamps:
        if last_s is not None and time_s <= last_s:
            time_s = last_s + 1e-6  # two changes within the log's rounding: keep their order
        last_s = time_s
        first = indications if first is None else first
        fault = monitor.check(time_s, indications)
        if fault is not None:
            if not _about_an_unknown_start(fault, changed):
                found.append(fault)
            monitor.reset()
            monitor.check(time_s + 1e-6, indications)
        changed |= {group for group, shown in indications.items() if previous and previous.get(group) is not shown}
        previous = indications
    return found


def _about_an_unknown_start(fault: str, changed: set[str]) -> bool:
    """A violation about the length of a group's first interval in the record (which began earlier)."""
    for pattern in (_ENDED_TOO_SOON, _ENTERED_TOO_SOON):
        match = pattern.search(fault)
        if match is not None:
            return match.group(1) not in changed
    return False


@dataclass(frozen=True)
class Agreement:
    samples: int  # group-samples compared
    agreeing: int
    excluded: int  # group-samples within exclude_s of a lamp change
    disagreements: tuple[str, ...]  # the first few, for the report

    @property
    def fraction(self) -> float:
        return self.agreeing / self.samples if self.samples else float("nan")


def spat_agreement(
    lamps: LampRecord,
    spat: SpatRecord,
    start_s: float,
    end_s: float,
    period_s: float = 0.1,
    exclude_s: float = 0.1,
    keep: int = 10,
) -> Agreement:
    """SPaT against the lamps on samples every ``period_s`` in [start_s, end_s]."""
    lamp_times = [t for t, _ in lamps]
    spat_times = [t for t, _ in spat]
    changes: dict[str, list[float]] = {}
    previous: Mapping[str, Indication] = {}
    for time_s, indications in lamps:
        for group, indication in indications.items():
            if previous.get(group) is not indication:
                changes.setdefault(group, []).append(time_s)
        previous = indications
    samples = agreeing = excluded = 0
    wrong: list[str] = []
    steps = int((end_s - start_s) / period_s)
    for step in range(steps + 1):
        t = start_s + step * period_s
        lamp_index = bisect.bisect_right(lamp_times, t) - 1
        spat_index = bisect.bisect_right(spat_times, t) - 1
        if lamp_index < 0 or spat_index < 0:
            continue
        shown = lamps[lamp_index][1]
        sent = spat[spat_index][1]
        for group, indication in shown.items():
            if group not in sent:
                continue
            times = changes.get(group, [])
            near = bisect.bisect_left(times, t - exclude_s)
            if near < len(times) and times[near] <= t + exclude_s:
                excluded += 1
                continue
            samples += 1
            if sent[group] == event_state(indication):
                agreeing += 1
            elif len(wrong) < keep:
                wrong.append(f"t={t - start_s:.1f} s: group {group} shows {indication.value}, SPaT {sent[group]}")
    return Agreement(samples, agreeing, excluded, tuple(wrong))
