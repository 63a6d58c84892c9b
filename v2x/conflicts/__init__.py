"""Conflict detection between tracked road users, red-light violations and blocked junctions.

A warning is only worth sending when a road user has to act: each pair test therefore asks both
"will they meet?" (time to collision, TTC, or post-encroachment time, PET) and "can the one who
should give way still do so comfortably?" (the deceleration required to avoid the crash, DRAC).
Thresholds live in WarningConfig (TTC < 3.0 s as SUMO's SSM device; DRAC > 3.4 m/s², the
comfortable limit, where SSM uses 3.0).

Before any pair is tested, the map and the signal state shape each prediction (signal_context);
in the junction, a vehicle follows the turn its lane allows (detector). Conflicts, per snapshot
of tracks at now_s (snapshot.find_conflicts):

- rear-end, and a vehicle closing on a cyclist or pedestrian ahead in its path (rear_end);
- crossing (two vehicles) and vulnerable road user (a vehicle and a pedestrian or cyclist):
  predicted paths that cross (crossing);
- red-light violation: predicted at a yellow (signal_context), confirmed at the line on a red
  (detector). TTC is the time to the stop line (0 once across);
- stopped in junction: a vehicle standing inside the junction box for stopped_in_junction_s or
  longer (detector, ConflictDetector only).

Severity (severity): TTC < ttc_critical_s or DRAC >= drac_critical_mps2 is critical, otherwise
warning. A predicted red-light violation within the horizon is at least a warning.

Modules, one job each: types (the data exchanged), shared (road-user classes and tolerances used
by several tests), severity, signal_context, scene (the predictions the pair tests share),
candidates (which pairs are tested: a uniform grid, never all pairs), limits (the per-update caps
on road users, pairs and exact pair tests, and their counters), rear_end, crossing, snapshot (one
snapshot's conflicts) and detector (over time: track memory, turn intent, red-light entries,
blocked junctions). This package re-exports the public names; the modules' other names are
internal.
"""

from v2x.conflicts.detector import ConflictDetector
from v2x.conflicts.severity import severity_for_ttc
from v2x.conflicts.shared import is_vehicle
from v2x.conflicts.snapshot import find_conflicts
from v2x.conflicts.types import Conflict, MotionHint

__all__ = [
    "Conflict",
    "ConflictDetector",
    "MotionHint",
    "find_conflicts",
    "is_vehicle",
    "severity_for_ttc",
]
