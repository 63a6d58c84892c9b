"""Protected/permissive left turns: what the signal head of a permissive left shows.

A left-turn group with ``permissive_with`` (the opposing through it gives way to) shows, while its
own protected phase is red:

* a **flashing yellow arrow** (``Indication.FLASHING_YELLOW``: turn, giving way) while its partner
  is green and every other vehicle group it crosses is red. Like a permissive right turn it also
  gives way to pedestrians walking across its path;
* a **steady yellow** while the partner's yellow runs, if the arrow was flashing (the permissive
  clearance, so the turn never goes from flashing yellow straight to red);
* **red** otherwise.

The arrow follows the *opposing* through, so it ends exactly when the traffic it gives way to is
stopped: no "yellow trap". The display is a pure function of the protected indications and the
previous display, used alike by the controller, the conflict monitor's check and the SUMO
programs of the benchmark.
"""

from __future__ import annotations

from collections.abc import Mapping

from rsu_contracts.messages.signal import Indication
from signal_control.phasing import PhasePlan
from signal_control.safety import STOP_INDICATIONS

PERMISSIVE_INDICATIONS = frozenset({Indication.FLASHING_YELLOW, Indication.YELLOW})


def displayed(
    plan: PhasePlan, protected: Mapping[str, Indication], previous: Mapping[str, Indication]
) -> dict[str, Indication]:
    """Every group's indication as shown: the protected one, with permissive lefts added."""
    shown = dict(protected)
    for group_id, timing in plan.groups.items():
        partner = timing.permissive_with
        if partner is None or protected.get(group_id) is not Indication.RED:
            continue
        partner_shows = protected.get(partner)
        if partner_shows is Indication.GREEN and _others_stopped(plan, group_id, partner, protected):
            shown[group_id] = Indication.FLASHING_YELLOW
        elif partner_shows is Indication.YELLOW and previous.get(group_id) in PERMISSIVE_INDICATIONS:
            shown[group_id] = Indication.YELLOW
    return shown


def _others_stopped(plan: PhasePlan, group_id: str, partner: str, protected: Mapping[str, Indication]) -> bool:
    return all(
        protected.get(other) in STOP_INDICATIONS
        for other in plan.conflicts_of[group_id]
        if other != partner and not plan.groups[other].is_pedestrian
    )
