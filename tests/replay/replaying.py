"""Process replay: recorded inputs through a fresh controller, conflict detector and aggregator.

Shared by the recorder (`python -m tests.replay.record`, which needs SUMO) and the replay tests
(which need nothing but the fixtures): the fixture format, the replay of each piece of logic, the
serialisation of its outputs and the comparison with the committed references.

Fixtures (tests/replay/fixtures/, gzip JSONL, one line per input in the order it was fed):

- controller_inputs.jsonl.gz: the arguments of every `SignalController.step` of the recorded run,
- warning_inputs.jsonl.gz: every track list with the signal state the V2X stage held for it,
- aggregator_inputs.jsonl.gz: every detector state, signal state and warning the uplink stage took in.

Messages are stored in their JSON form (pydantic `model_dump(mode="json")`), so the replay
rebuilds exactly the objects the stages passed on.
"""

from __future__ import annotations

import gzip
import json
import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rsu.uplink.aggregator import AggregateBody, IntervalAggregator
from rsu_contracts.config.model import SiteConfig
from rsu_contracts.enums import PriorityKind
from rsu_contracts.messages.aggregates import Aggregate
from rsu_contracts.messages.perception import CrosswalkObservation, DetectorStates, LaneObservation, TrackList
from rsu_contracts.messages.signal import SignalState
from rsu_contracts.messages.warnings import CollisionWarning, Severity, WarningStatus
from signal_control.controller import ControllerOutput, SignalController
from signal_control.phasing import with_ring_barrier_stages
from signal_control.priority import PriorityCall
from v2x.conflicts import Conflict, ConflictDetector
from v2x.warnings import WarningEvent, WarningTracker

REPLAY_DIR = Path(__file__).resolve().parent
FIXTURES_DIR = REPLAY_DIR / "fixtures"
REFERENCES_DIR = REPLAY_DIR / "references"
# File names inside a fixture directory (FIXTURES_DIR, or where `record --out` writes).
RECORDING_FILE = "recording.json"
CONTROLLER_INPUTS = "controller_inputs.jsonl.gz"
WARNING_INPUTS = "warning_inputs.jsonl.gz"
AGGREGATOR_INPUTS = "aggregator_inputs.jsonl.gz"
FIXTURE_FILES = (RECORDING_FILE, CONTROLLER_INPUTS, WARNING_INPUTS, AGGREGATOR_INPUTS)

REFRESH_VARIABLE = "RSU_REPLAY_REFRESH"
# Outputs are compared after rounding floats to this many decimals: epoch times (~1.7e9 s) carry
# about 2e-7 s of float resolution, so 6 decimals keeps every real difference and drops
# last-bit noise of another platform's libm.
FLOAT_DECIMALS = 6

# The controller strategies replayed on the recorded observations. "actuated" is the site's own
# and drove SUMO's lights in the recording (closed loop); the others see the same observations
# open loop, which still pins every decision they make on them.
REPLAYED_STRATEGIES = ("actuated", "adaptive", "fixed_time")

# Aggregator streams: the topic names of rsu.stages.uplink.absorb.
DETECTORS_TOPIC = "detectors"
SIGNAL_TOPIC = "signal_state"
WARNINGS_TOPIC = "warnings"
# Besides the site's interval lengths, a short one, so a short recording still seals several
# intervals (and interval boundaries fall inside cycles, where hold and credit logic matters).
EXTRA_AGGREGATION_INTERVAL_S = 15.0


# --- fixture files --------------------------------------------------------------------------------


def write_jsonl_gz(path: Path, rows: Iterable[Mapping[str, Any]]) -> int:
    """Write rows as gzip JSONL (reproducible: no file name or time in the gzip header)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", filename="", mtime=0) as packed:
        for row in rows:
            # Python writes floats with repr, which reads back to the identical float.
            packed.write(json.dumps(row, separators=(",", ":")).encode() + b"\n")
            count += 1
    return count


def read_jsonl_gz(path: Path) -> Iterator[dict[str, Any]]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: replay fixture missing; record it with `python -m tests.replay.record`")
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        for line in lines:
            yield json.loads(line)


def recording(directory: Path = FIXTURES_DIR) -> dict[str, Any]:
    """The recorded run's parameters (site, seed, epoch, duration, injected calls)."""
    loaded: dict[str, Any] = json.loads((directory / RECORDING_FILE).read_text(encoding="utf-8"))
    return loaded


# --- controller -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ControllerStep:
    """The arguments rsu.stages.controller passes to one SignalController.step."""

    now_s: float
    lanes: list[LaneObservation] | None  # None: the detector states were invalid
    crosswalks: list[CrosswalkObservation]
    arrivals_s: dict[str, tuple[float, ...]] | None
    priority: list[PriorityCall]

    def to_row(self) -> dict[str, Any]:
        return {
            "now_s": self.now_s,
            "lanes": None if self.lanes is None else [lane.model_dump(mode="json") for lane in self.lanes],
            "crosswalks": [crosswalk.model_dump(mode="json") for crosswalk in self.crosswalks],
            "arrivals_s": None if self.arrivals_s is None else {k: list(v) for k, v in self.arrivals_s.items()},
            "priority": [
                {
                    "call_id": call.call_id,
                    "kind": call.kind.value,
                    "signal_group": call.signal_group,
                    "arrival_time_s": call.arrival_time_s,
                }
                for call in self.priority
            ],
        }

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> ControllerStep:
        lanes = row["lanes"]
        arrivals = row["arrivals_s"]
        return cls(
            now_s=row["now_s"],
            lanes=None if lanes is None else [LaneObservation.model_validate(lane) for lane in lanes],
            crosswalks=[CrosswalkObservation.model_validate(crosswalk) for crosswalk in row["crosswalks"]],
            arrivals_s=None if arrivals is None else {k: tuple(v) for k, v in arrivals.items()},
            priority=[
                PriorityCall(
                    call_id=call["call_id"],
                    kind=PriorityKind(call["kind"]),
                    signal_group=call["signal_group"],
                    arrival_time_s=call["arrival_time_s"],
                )
                for call in row["priority"]
            ],
        )


def controller_for(site: SiteConfig, strategy: str) -> SignalController:
    """A fresh controller as the unit (actuated, fixed time) or the SIL runs (adaptive) build it."""
    # The adaptive strategy runs the NEMA dual ring, as rsu_tools.sil.runner gives it.
    controller = SignalController(with_ring_barrier_stages(site) if strategy == "adaptive" else site)
    controller.set_strategy(strategy)
    return controller


def run_controller_step(controller: SignalController, step: ControllerStep) -> ControllerOutput:
    return controller.step(step.now_s, step.lanes, step.crosswalks, arrivals_s=step.arrivals_s, priority=step.priority)


def controller_output_row(output: ControllerOutput, epoch_s: float) -> dict[str, Any]:
    """What leaves the controller: signal states with their SPaT windows, events, mode, priority.

    Times are seconds after the recording's epoch (exact: both are multiples of the epoch float's
    resolution), which keeps reference lines short and readable ("since_s": 32.6).
    """

    def after_epoch(time_s: float) -> float:
        return time_s - epoch_s

    return {
        "mode": output.mode.value,
        "strategy": output.strategy,
        "stage_id": output.stage_id,
        "reason": output.reason,
        "group_order": [group.signal_group for group in output.groups],
        "groups": {
            group.signal_group: {
                "indication": group.indication.value,
                "since_s": after_epoch(group.since_s),
                "min_end_time_s": after_epoch(group.min_end_time_s),
                "max_end_time_s": after_epoch(group.max_end_time_s),
                "likely_time_s": after_epoch(group.likely_time_s),
            }
            for group in output.groups
        },
        "events": [
            {"time_s": after_epoch(event.time_s), "code": event.code, "parameter": event.parameter}
            for event in output.events
        ],
        "priority": [
            {**service.model_dump(mode="json"), "since_s": after_epoch(service.since_s)} for service in output.priority
        ],
        "exhausted_calls": list(output.exhausted_calls),
    }


def changes_only(rows: Iterable[tuple[int, float, dict[str, Any]]]) -> list[dict[str, Any]]:
    """(step, time, output row) -> one line per step whose output differs from the step before,
    holding only what changed (fields, and groups by signal group); the first line holds everything.

    Lossless, since every step's time is in the inputs: a step missing from the lines had the output
    of the step before it, a field missing from a line kept its value. Keeps references of ~1200
    steps small, and a line says what changed at that step.
    """
    lines: list[dict[str, Any]] = []
    previous: dict[str, Any] = {}
    for step, time_s, output in rows:
        changed = {key: value for key, value in output.items() if key != "groups" and previous.get(key) != value}
        previous_groups = previous.get("groups", {})
        groups = {group: state for group, state in output["groups"].items() if previous_groups.get(group) != state}
        if groups:
            changed["groups"] = groups
        if changed:
            lines.append({"step": step, "time_s": time_s, **changed})
        previous = output
    return lines


def replay_controller(
    site: SiteConfig, steps: Sequence[ControllerStep], strategy: str, epoch_s: float
) -> list[dict[str, Any]]:
    """The controller's outputs over the steps, in changes_only lines with times after epoch_s."""
    controller = controller_for(site, strategy)
    return changes_only(
        (index, step.now_s - epoch_s, controller_output_row(run_controller_step(controller, step), epoch_s))
        for index, step in enumerate(steps)
    )


def load_controller_steps(directory: Path = FIXTURES_DIR) -> list[ControllerStep]:
    return [ControllerStep.from_row(row) for row in read_jsonl_gz(directory / CONTROLLER_INPUTS)]


# --- warnings -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WarningSnapshot:
    """One track list the V2X stage received, with the signal state it held at that moment."""

    tracks: TrackList
    signal: SignalState | None

    def to_row(self) -> dict[str, Any]:
        return {
            "tracks": self.tracks.model_dump(mode="json"),
            "signal": None if self.signal is None else self.signal.model_dump(mode="json"),
        }

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> WarningSnapshot:
        signal = row["signal"]
        return cls(
            tracks=TrackList.model_validate(row["tracks"]),
            signal=None if signal is None else SignalState.model_validate(signal),
        )


def load_warning_snapshots(directory: Path = FIXTURES_DIR) -> list[WarningSnapshot]:
    return [WarningSnapshot.from_row(row) for row in read_jsonl_gz(directory / WARNING_INPUTS)]


def conflict_row(conflict: Conflict) -> dict[str, Any]:
    return {
        "kind": conflict.kind.value,
        "severity": conflict.severity.value,
        "ttc_s": conflict.ttc_s,
        "conflict_x_m": conflict.conflict_x_m,
        "conflict_y_m": conflict.conflict_y_m,
        "participants": [participant.track_id for participant in conflict.participants],
        "required_deceleration_mps2": conflict.required_deceleration_mps2,
        "pet_s": conflict.pet_s,
        "signal_violation": conflict.signal_violation,
    }


def warning_event_row(event: WarningEvent) -> dict[str, Any]:
    fields = event.fields()
    return {
        **fields,
        "kind": event.kind.value,
        "severity": event.severity.value,
        "status": event.status.value,
        "participants": [participant.model_dump(mode="json") for participant in event.participants],
    }


_STATUS_ORDER = {WarningStatus.NEW: 0, WarningStatus.UPDATE: 1, WarningStatus.ENDED: 2}
_SEVERITY_ORDER = {Severity.CRITICAL: 0, Severity.WARNING: 1, Severity.ADVISORY: 2}


def by_urgency(events: Iterable[WarningEvent]) -> list[WarningEvent]:
    """The order the V2X stage sends a snapshot's events in (new before ended, critical first)."""
    return sorted(events, key=lambda event: (_STATUS_ORDER[event.status], _SEVERITY_ORDER[event.severity]))


# Warning thresholds the recorded snapshots are replayed with: the site's own (what the unit warned),
# and wider ones that turn many more of the recorded encounters into conflicts (light demand
# gives few real warnings in two minutes), so TTC, DRAC, PET and the prediction behind them are
# pinned on hundreds of pairs instead of a handful.
WARNING_VARIANTS: dict[str, dict[str, float]] = {
    "site": {},
    "sensitive": {"ttc_warning_s": 6.0, "horizon_s": 8.0, "drac_threshold_mps2": 1.0, "pet_threshold_s": 3.0},
}


def with_warning_thresholds(site: SiteConfig, variant: str) -> SiteConfig:
    warnings = site.v2x.warnings.model_copy(update=WARNING_VARIANTS[variant])
    # Validated again, so a variant outside WarningConfig's limits fails loudly instead of replaying.
    type(site.v2x.warnings).model_validate(warnings.model_dump())
    return site.model_copy(update={"v2x": site.v2x.model_copy(update={"warnings": warnings})})


def replay_warnings(site: SiteConfig, snapshots: Sequence[WarningSnapshot]) -> list[dict[str, Any]]:
    """Conflicts and warning events per snapshot (snapshots with neither are left out), then the
    ENDED events of the warnings still active when the unit stops."""
    detector = ConflictDetector(site, site.v2x.warnings)
    tracker = WarningTracker(site.v2x.warnings, site.reference)
    lines: list[dict[str, Any]] = []
    last_time_s = 0.0
    for index, snapshot in enumerate(snapshots):
        now_s = snapshot.tracks.capture_time_s
        last_time_s = now_s
        conflicts = detector.update(snapshot.tracks.objects, snapshot.signal, now_s)
        events = by_urgency(tracker.update(conflicts, now_s))
        if conflicts or events:
            lines.append(
                {
                    "step": index,
                    "time_s": now_s,
                    "conflicts": [conflict_row(conflict) for conflict in conflicts],
                    "events": [warning_event_row(event) for event in events],
                }
            )
    stopped = by_urgency(tracker.end_all(last_time_s))
    lines.append({"step": "end_all", "time_s": last_time_s, "events": [warning_event_row(e) for e in stopped]})
    return lines


# --- aggregator -----------------------------------------------------------------------------------

AggregatorInput = DetectorStates | SignalState | CollisionWarning
_MESSAGE_OF_TOPIC: dict[str, type[DetectorStates] | type[SignalState] | type[CollisionWarning]] = {
    DETECTORS_TOPIC: DetectorStates,
    SIGNAL_TOPIC: SignalState,
    WARNINGS_TOPIC: CollisionWarning,
}


def aggregator_row(message: AggregatorInput) -> dict[str, Any]:
    topic = next(topic for topic, kind in _MESSAGE_OF_TOPIC.items() if isinstance(message, kind))
    return {"topic": topic, "message": message.model_dump(mode="json")}


def load_aggregator_inputs(directory: Path = FIXTURES_DIR) -> list[AggregatorInput]:
    inputs: list[AggregatorInput] = []
    for row in read_jsonl_gz(directory / AGGREGATOR_INPUTS):
        inputs.append(_MESSAGE_OF_TOPIC[row["topic"]].model_validate(row["message"]))
    return inputs


def aggregation_intervals_s(site: SiteConfig) -> list[float]:
    return sorted({EXTRA_AGGREGATION_INTERVAL_S, *site.uplink.aggregation_intervals_s})


def _absorb(aggregators: Sequence[IntervalAggregator], message: AggregatorInput) -> None:
    for aggregator in aggregators:
        if isinstance(message, DetectorStates):
            aggregator.add_detectors(message)
        elif isinstance(message, SignalState):
            aggregator.add_signal(message)
        else:
            aggregator.add_warning(message)


def _seal(aggregators: Sequence[IntervalAggregator], now_s: float) -> list[AggregateBody]:
    # As rsu.stages.uplink.seal_all: by end time, the shorter interval first at a tie.
    bodies = [body for aggregator in aggregators for body in aggregator.seal_until(now_s)]
    return sorted(bodies, key=lambda body: (body.interval_end_s, body.interval_s))


def _aggregate(site: SiteConfig, body: AggregateBody, now_s: float) -> dict[str, Any]:
    record = Aggregate(
        unit_id=site.unit_id,
        seq=round(body.interval_start_s / body.interval_s),
        capture_time_s=body.interval_end_s,
        publish_time_s=now_s,
        **body.fields(),
    )
    return record.model_dump(mode="json")


def replay_aggregator(site: SiteConfig, inputs: Sequence[AggregatorInput]) -> list[dict[str, Any]]:
    """The uplink stage's loop: each message to every aggregator, then seal what ended by the
    newest message time; at the end, time runs on (no data) to the end of the longest interval."""
    intervals_s = aggregation_intervals_s(site)
    aggregators = [IntervalAggregator(site, length) for length in intervals_s]
    lines: list[dict[str, Any]] = []
    newest_s = 0.0
    for message in inputs:
        _absorb(aggregators, message)
        newest_s = max(newest_s, message.capture_time_s)
        lines += [_aggregate(site, body, newest_s) for body in _seal(aggregators, newest_s)]
    longest_s = intervals_s[-1]
    run_out_s = (math.floor(newest_s / longest_s) + 1) * longest_s
    lines += [_aggregate(site, body, run_out_s) for body in _seal(aggregators, run_out_s)]
    return lines


# --- comparing with the references -----------------------------------------------------------------


def normalised(value: Any) -> Any:
    """Floats rounded to FLOAT_DECIMALS (non-finite ones as strings, which JSON has no number for)."""
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        rounded = round(value, FLOAT_DECIMALS)
        return 0.0 if rounded == 0 else rounded  # no -0.0 against 0.0
    if isinstance(value, Mapping):
        return {str(key): normalised(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [normalised(item) for item in value]
    return value


def to_jsonl(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    return [json.dumps(normalised(row), sort_keys=True, separators=(",", ":")) for row in rows]


def first_difference(expected: Any, got: Any, path: str = "") -> tuple[str, Any, Any] | None:
    """The first field (as a path like groups[3].min_end_time_s) where two parsed lines differ."""
    if isinstance(expected, dict) and isinstance(got, dict):
        for key in sorted(set(expected) | set(got)):
            where = f"{path}.{key}" if path else key
            if key not in expected:
                return where, "<absent>", got[key]
            if key not in got:
                return where, expected[key], "<absent>"
            found = first_difference(expected[key], got[key], where)
            if found is not None:
                return found
        return None
    if isinstance(expected, list) and isinstance(got, list):
        for index, (left, right) in enumerate(zip(expected, got, strict=False)):
            found = first_difference(left, right, f"{path}[{index}]")
            if found is not None:
                return found
        if len(expected) != len(got):
            return f"{path} (length)", len(expected), len(got)
        return None
    return None if expected == got else (path or "<line>", expected, got)


def mismatch_report(name: str, expected: Sequence[str], got: Sequence[str]) -> str | None:
    """None when equal, else a readable account of the first difference."""
    if list(expected) == list(got):
        return None
    for number, (left, right) in enumerate(zip(expected, got, strict=False), start=1):
        if left != right:
            found = first_difference(json.loads(left), json.loads(right))
            field, want, have = found if found is not None else ("<line>", left, right)
            differing = sum(1 for a, b in zip(expected, got, strict=False) if a != b)
            return (
                f"{name}: first difference at line {number}, field {field}:\n"
                f"  expected {json.dumps(want)}\n"
                f"  got      {json.dumps(have)}\n"
                f"  ({differing} of {min(len(expected), len(got))} common lines differ; "
                f"{len(expected)} lines expected, {len(got)} got)\n"
                f"  expected line: {left[:400]}\n"
                f"  got line:      {right[:400]}"
            )
    shorter, longer = ("expected", "got") if len(expected) < len(got) else ("got", "expected")
    extra = (got if len(got) > len(expected) else expected)[min(len(expected), len(got))]
    return (
        f"{name}: the first {min(len(expected), len(got))} lines agree, but {len(expected)} lines were "
        f"expected and {len(got)} got; first line only in {longer} (missing in {shorter}): {extra[:400]}"
    )


def refresh_requested() -> bool:
    return os.environ.get(REFRESH_VARIABLE, "") == "1"


def reference_path(name: str) -> Path:
    return REFERENCES_DIR / f"{name}.jsonl"


def write_reference(name: str, lines: Sequence[str]) -> Path:
    path = reference_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path


def read_reference(name: str) -> list[str]:
    path = reference_path(name)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no reference; create it with {REFRESH_VARIABLE}=1 (see tests/replay/README.md)"
        )
    return path.read_text(encoding="utf-8").splitlines()
