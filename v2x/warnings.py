"""Warning lifecycle: per-snapshot conflicts -> new / update / ended warning events.

A conflict is identified by its kind and the sorted track ids of its participants. It becomes a
warning (NEW, with a fresh warning_id) once it has been in every snapshot for confirm_s, or at
once when it is critical: a conflict seen in a single frame is mostly a threshold crossed by
tracking noise as a driver starts to brake. While it persists, UPDATE is emitted
at once when the severity rises, and otherwise at most every update_interval_s (a refresh with the
latest TTC and positions; a lower severity is only reported with that refresh, so a TTC hovering
around a threshold does not flap). The warning ENDS only after the conflict has been absent for
clear_after_s, so a conflict that drops out for a frame or two keeps its one warning.

warning_id = "<kind>-<sorted track ids>-<start time in ms>": stable for the life of the warning and
unique across restarts of the unit (the same pair cannot start twice in the same millisecond).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rsu_contracts.config.model import GeoReference, WarningConfig
from rsu_contracts.messages.warnings import Participant, Severity, WarningKind, WarningStatus
from v2x.conflicts import Conflict
from v2x.geo import LocalFrame

UPDATE_INTERVAL_S = 1.0
# Epoch timestamps carry ~0.2 µs of float noise; 0.1 s steps must not miss a 1.0 s threshold by it.
TIME_EPSILON_S = 1e-6
MAX_ACTIVE_WARNINGS = 256

SEVERITY_RANK = {Severity.ADVISORY: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}

ConflictKey = tuple[WarningKind, tuple[int, ...]]


@dataclass(frozen=True)
class WarningEvent:
    """Everything a CollisionWarning carries except the envelope header."""

    warning_id: str
    kind: WarningKind
    severity: Severity
    status: WarningStatus
    ttc_s: float | None
    conflict_x_m: float
    conflict_y_m: float
    conflict_latitude_deg: float
    conflict_longitude_deg: float
    participants: tuple[Participant, ...]

    def fields(self) -> dict[str, Any]:
        """Keyword arguments for CollisionWarning(**header, **event.fields())."""
        return {
            "warning_id": self.warning_id,
            "kind": self.kind,
            "severity": self.severity,
            "status": self.status,
            "ttc_s": self.ttc_s,
            "conflict_x_m": self.conflict_x_m,
            "conflict_y_m": self.conflict_y_m,
            "conflict_latitude_deg": self.conflict_latitude_deg,
            "conflict_longitude_deg": self.conflict_longitude_deg,
            "participants": list(self.participants),
        }


@dataclass
class _ActiveWarning:
    warning_id: str
    conflict: Conflict
    reported_severity: Severity
    last_seen_s: float
    last_emitted_s: float


class WarningTracker:
    """Turns the conflicts of successive snapshots into warning lifecycle events."""

    def __init__(
        self,
        config: WarningConfig,
        reference: GeoReference | LocalFrame,
        max_active: int = MAX_ACTIVE_WARNINGS,
        update_interval_s: float = UPDATE_INTERVAL_S,
    ) -> None:
        self.config = config
        self.frame = reference if isinstance(reference, LocalFrame) else LocalFrame.from_reference(reference)
        self.max_active = max_active
        self.update_interval_s = update_interval_s
        self._active: dict[ConflictKey, _ActiveWarning] = {}
        # Conflicts waiting for confirmation: key -> first time seen (in consecutive snapshots).
        self._pending: dict[ConflictKey, float] = {}
        self._last_now_s: float | None = None
        # Conflicts that found no room because max_active warnings were all live.
        self.dropped_total = 0

    @property
    def active_count(self) -> int:
        return len(self._active)

    def update(self, conflicts: Sequence[Conflict], now_s: float) -> list[WarningEvent]:
        """Events for one snapshot: ENDED for cleared warnings, then NEW and UPDATE in conflict order."""
        events: list[WarningEvent] = []
        if self._last_now_s is not None and now_s < self._last_now_s:
            # The clock went back (a replay or simulation restart): nothing active can be trusted.
            events.extend(self.end_all(now_s))
        self._last_now_s = now_s

        current = _most_severe_per_key(conflicts)
        for key, warning in list(self._active.items()):
            if key not in current and now_s - warning.last_seen_s >= self.config.clear_after_s - TIME_EPSILON_S:
                events.append(self._end(key, now_s))

        # Only conflicts present in this snapshot stay pending: confirmation needs them throughout.
        self._pending = {key: since for key, since in self._pending.items() if key in current}
        for key, conflict in current.items():
            active = self._active.get(key)
            if active is None:
                if not self._confirmed(key, conflict, now_s):
                    continue
                event = self._start(key, conflict, now_s, events)
            else:
                event = self._continue(active, conflict, now_s)
            if event is not None:
                events.append(event)
        return events

    def _confirmed(self, key: ConflictKey, conflict: Conflict, now_s: float) -> bool:
        since = self._pending.setdefault(key, now_s)
        if conflict.severity is Severity.CRITICAL or now_s - since >= self.config.confirm_s - TIME_EPSILON_S:
            self._pending.pop(key, None)
            return True
        return False

    def end_all(self, now_s: float) -> list[WarningEvent]:
        """End every active warning, e.g. at shutdown."""
        self._pending.clear()
        return [self._end(key, now_s) for key in list(self._active)]

    def _start(
        self, key: ConflictKey, conflict: Conflict, now_s: float, events: list[WarningEvent]
    ) -> WarningEvent | None:
        if len(self._active) >= self.max_active and not self._evict_stale(now_s, events):
            self.dropped_total += 1
            return None
        kind, ids = key
        warning_id = f"{kind.value}-{'-'.join(str(i) for i in ids)}-{round(now_s * 1000)}"
        active = _ActiveWarning(warning_id, conflict, conflict.severity, now_s, now_s)
        self._active[key] = active
        return self._event(active, WarningStatus.NEW)

    def _continue(self, active: _ActiveWarning, conflict: Conflict, now_s: float) -> WarningEvent | None:
        active.conflict = conflict
        active.last_seen_s = now_s
        escalated = SEVERITY_RANK[conflict.severity] > SEVERITY_RANK[active.reported_severity]
        if not escalated and now_s - active.last_emitted_s < self.update_interval_s - TIME_EPSILON_S:
            return None
        active.reported_severity = conflict.severity
        active.last_emitted_s = now_s
        return self._event(active, WarningStatus.UPDATE)

    def _evict_stale(self, now_s: float, events: list[WarningEvent]) -> bool:
        """Make room by ending the least recently seen warning that is absent from this snapshot."""
        stale = [(a.last_seen_s, key) for key, a in self._active.items() if a.last_seen_s < now_s]
        if not stale:
            return False
        events.append(self._end(min(stale)[1], now_s))
        return True

    def _end(self, key: ConflictKey, now_s: float) -> WarningEvent:
        active = self._active.pop(key)
        return self._event(active, WarningStatus.ENDED)

    def _event(self, active: _ActiveWarning, status: WarningStatus) -> WarningEvent:
        conflict = active.conflict
        latitude, longitude = self.frame.to_geodetic(conflict.conflict_x_m, conflict.conflict_y_m)
        return WarningEvent(
            warning_id=active.warning_id,
            kind=conflict.kind,
            severity=active.reported_severity,
            status=status,
            # An ended warning has no live TTC any more; a stopped vehicle never had one.
            ttc_s=None if status is WarningStatus.ENDED or conflict.ttc_s is None else max(0.0, conflict.ttc_s),
            conflict_x_m=conflict.conflict_x_m,
            conflict_y_m=conflict.conflict_y_m,
            conflict_latitude_deg=latitude,
            conflict_longitude_deg=longitude,
            participants=tuple(
                Participant(
                    track_id=p.track_id,
                    road_user=p.road_user,
                    x_m=p.x_m,
                    y_m=p.y_m,
                    speed_mps=p.speed_mps,
                    heading_deg=p.heading_deg,
                )
                for p in conflict.participants
            ),
        )


def _most_severe_per_key(conflicts: Sequence[Conflict]) -> dict[ConflictKey, Conflict]:
    best: dict[ConflictKey, Conflict] = {}
    for conflict in conflicts:
        current = best.get(conflict.key)
        if current is None or _urgency(conflict) > _urgency(current):
            best[conflict.key] = conflict
    return best


def _urgency(conflict: Conflict) -> tuple[int, float]:
    return SEVERITY_RANK[conflict.severity], -(math.inf if conflict.ttc_s is None else conflict.ttc_s)
