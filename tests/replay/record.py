"""Record the replay fixtures: the sample junction in SUMO, the unit's logic in-process, in lock-step.

    python -m tests.replay.record            # writes tests/replay/fixtures/*
    python -m tests.replay.record --check    # does the current code still record the same fixtures?

Runs what `rsu demo` runs, without MQTT: SUMO (libsumo) and the simulated camera, the perception
pipeline, the signal controller (whose signal states drive SUMO's lights), the V2X stage's warning
logic and the uplink aggregator, one simulation step at a time in the order the lock-step unit
handles a camera frame:

1. the world steps and the camera delivers a frame (now and then, by its frame stride);
2. perception turns it into a track list and detector states;
3. the V2X stage gets the tracks and warns, against the signal state it holds (the previous one:
   the answer to this frame comes from the controller after the tracks went out);
4. the controller steps on the detector states (plus the priority calls of the schedule below)
   and its signal state goes to the V2X stage and the world's lights;
5. the uplink aggregator takes the detector states, the warnings and the signal state.

Two things are scripted beyond the demo, so the replay also covers them: an emergency
preemption call and a transit priority call, as the priority gate would pass them on, and a few
seconds of invalid detector states (the controller falls back to recall).

The recorder checks that replaying the fixtures gives what the live run produced (controller
outputs, warnings, aggregates), so the fixtures are known to rebuild the exact inputs. Then
refresh the references (RSU_REPLAY_REFRESH=1, see README.md).

libsumo runs one simulation per process: run this as its own process.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rsu.perception.pipeline import PerceptionPipeline
from rsu.samples import SAMPLE_SITE
from rsu.sensors.sim_camera import SimulatedCamera
from rsu.sim.world import SumoWorld
from rsu.stages.v2x import V2XOutput
from rsu_contracts.config import load_site_config
from rsu_contracts.config.model import SiteConfig
from rsu_contracts.enums import PriorityKind
from rsu_contracts.messages import CollisionWarning, DetectorStates, Message, Sequencer, SignalState, TrackList
from signal_control.lookahead import arrivals_by_lane
from signal_control.priority import PriorityCall
from tests.replay import replaying
from tests.replay.replaying import ControllerStep, WarningSnapshot

SEED = 42
DURATION_S = 120.0
# Simulated time starts here, on a boundary of every aggregation interval (as `rsu demo` anchors
# its runs), and fixed so the recording does not depend on the hour it was made: 2026-01-01 UTC.
SIM_EPOCH_S = 1_767_225_600.0


@dataclass(frozen=True)
class ScheduledCall:
    """A priority call that is on from on_s to off_s (simulated seconds), as the gate passes it on."""

    call_id: str
    kind: PriorityKind
    signal_group: str
    on_s: float
    off_s: float
    arrival_s: float

    def call(self) -> PriorityCall:
        return PriorityCall(self.call_id, self.kind, self.signal_group, SIM_EPOCH_S + self.arrival_s)


# An ambulance from the east (group 4, east through) and a bus from the north (group 2).
PRIORITY_SCHEDULE = (
    ScheduledCall("ambulance-1", PriorityKind.EMERGENCY, "4", on_s=55.0, off_s=75.0, arrival_s=65.0),
    ScheduledCall("bus-17", PriorityKind.TRANSIT, "2", on_s=100.0, off_s=115.0, arrival_s=108.0),
)
# Detector states published as invalid (a perception fault) over this simulated span.
DETECTOR_FAULT_S = (86.0, 90.0)


class CapturingWire:
    """Stands in for the V2X stage's encode-sign-publish: keeps what would have been sent."""

    def __init__(self) -> None:
        self.sent: list[Message] = []

    def publish(self, message: Message) -> object:
        self.sent.append(message)
        return None


@dataclass
class Recording:
    controller_steps: list[ControllerStep]
    live_controller_rows: list[tuple[int, float, dict[str, Any]]]
    warning_snapshots: list[WarningSnapshot]
    live_warnings: list[CollisionWarning]
    aggregator_inputs: list[replaying.AggregatorInput]
    statistics: dict[str, Any]


def record(site: SiteConfig, site_path: Path, duration_s: float, seed: int) -> Recording:
    camera_config = site.cameras[0]
    camera = SimulatedCamera(camera_config, seed=seed)
    perception = PerceptionPipeline(site, camera_config.id)
    controller = replaying.controller_for(site, site.controller.strategy)
    v2x = V2XOutput(site, CapturingWire())
    sequencers: dict[str, Sequencer] = {}

    def header(schema: str, capture_s: float) -> dict[str, Any]:
        # As rsu.stages.outlet.Outlet in lock-step: one sequence per schema, published at capture time.
        return sequencers.setdefault(schema, Sequencer(site.unit_id)).header(capture_s, capture_s)

    recording = Recording([], [], [], [], [], {})
    with SumoWorld(site, site_path, seed=seed) as world:
        while world.time_s < duration_s - 1e-9:
            sim_s = world.step()
            detections = camera.observe(world.ground_truth(), SIM_EPOCH_S + sim_s)
            if detections is None:
                continue
            output = perception.process(detections)
            capture_s = output.time_s
            tracks = TrackList(**header(TrackList.SCHEMA, capture_s), camera_id=camera_config.id, objects=output.tracks)
            frame_sim_s = capture_s - SIM_EPOCH_S
            valid = not DETECTOR_FAULT_S[0] <= frame_sim_s < DETECTOR_FAULT_S[1]
            states = DetectorStates(
                **header(DetectorStates.SCHEMA, capture_s),
                camera_id=camera_config.id,
                valid=valid,
                lanes=output.lanes if valid else [],
                crosswalks=output.crosswalks if valid else [],
                crossings=output.crossings if valid else [],
                movements=output.movements if valid else [],
            )

            recording.warning_snapshots.append(WarningSnapshot(tracks, v2x.latest_signal))
            warnings = v2x.on_tracks(tracks, capture_s)
            recording.live_warnings += warnings

            # As rsu.stages.controller.run_on_message_time.
            step = ControllerStep(
                now_s=states.capture_time_s,
                lanes=states.lanes if states.valid else None,
                crosswalks=states.crosswalks,
                arrivals_s=arrivals_by_lane(states.lanes) if states.valid else None,
                priority=[s.call() for s in PRIORITY_SCHEDULE if s.on_s <= frame_sim_s < s.off_s],
            )
            decision = replaying.run_controller_step(controller, step)
            recording.controller_steps.append(step)
            recording.live_controller_rows.append(
                (
                    len(recording.controller_steps) - 1,
                    step.now_s - SIM_EPOCH_S,
                    replaying.controller_output_row(decision, SIM_EPOCH_S),
                )
            )
            signal = SignalState(
                **header(SignalState.SCHEMA, capture_s),
                mode=decision.mode,
                strategy=decision.strategy,
                groups=decision.groups,
                reason=decision.reason,
                events=decision.events,
                priority=list(decision.priority),
            )
            v2x.on_signal_state(signal, capture_s)
            world.apply_signals(decision.groups)

            recording.aggregator_inputs += [states, *warnings, signal]
        stats = world.statistics()
    recording.statistics = {
        "vehicles_departed": stats.vehicles_departed,
        "vehicles_arrived": stats.vehicles_arrived,
        "persons_departed": stats.persons_departed,
        "red_light_runners": stats.red_light_runners,
        "jaywalkers": stats.jaywalkers,
        "controller_steps": len(recording.controller_steps),
        "warnings_sent": len(recording.live_warnings),
        "max_tracks": max((len(s.tracks.objects) for s in recording.warning_snapshots), default=0),
    }
    return recording


def check_replay_matches_live(site: SiteConfig, recording: Recording, directory: Path) -> None:
    """Replaying the fixtures written to directory must give what the live run produced."""
    problems = []
    live_controller = replaying.to_jsonl(replaying.changes_only(recording.live_controller_rows))
    replayed_controller = replaying.to_jsonl(
        replaying.replay_controller(
            site, replaying.load_controller_steps(directory), site.controller.strategy, SIM_EPOCH_S
        )
    )
    problems.append(replaying.mismatch_report("controller (live vs replay)", live_controller, replayed_controller))

    replayed_lines = replaying.replay_warnings(site, replaying.load_warning_snapshots(directory))
    replayed_events = [event for line in replayed_lines if line["step"] != "end_all" for event in line["events"]]
    live_events = [
        replaying.normalised(w.model_dump(mode="json", include=_EVENT_FIELDS)) for w in recording.live_warnings
    ]
    replayed = [replaying.normalised({k: e[k] for k in _EVENT_FIELDS}) for e in replayed_events]
    problems.append(
        replaying.mismatch_report(
            "warnings (live vs replay)",
            [json.dumps(e, sort_keys=True) for e in live_events],
            [json.dumps(e, sort_keys=True) for e in replayed],
        )
    )

    # The uplink loop has no live copy here: the aggregates of the in-memory messages stand for it,
    # which checks that the messages survive the fixture's JSON form unchanged.
    live_aggregate_lines = replaying.to_jsonl(replaying.replay_aggregator(site, recording.aggregator_inputs))
    replayed_aggregates = replaying.to_jsonl(
        replaying.replay_aggregator(site, replaying.load_aggregator_inputs(directory))
    )
    problems.append(replaying.mismatch_report("aggregates (live vs replay)", live_aggregate_lines, replayed_aggregates))
    found = [problem for problem in problems if problem is not None]
    if found:
        raise SystemExit("the fixtures do not reproduce the live run:\n" + "\n".join(found))


# The fields of a sent CollisionWarning that come from the warning logic (not the envelope).
_EVENT_FIELDS = {
    "warning_id",
    "kind",
    "severity",
    "status",
    "ttc_s",
    "conflict_x_m",
    "conflict_y_m",
    "conflict_latitude_deg",
    "conflict_longitude_deg",
    "participants",
}


def write_fixtures(
    directory: Path, site_path: Path, duration_s: float, seed: int, recording: Recording
) -> dict[str, int]:
    sizes = {
        "controller_inputs": replaying.write_jsonl_gz(
            directory / replaying.CONTROLLER_INPUTS, (step.to_row() for step in recording.controller_steps)
        ),
        "warning_inputs": replaying.write_jsonl_gz(
            directory / replaying.WARNING_INPUTS, (snapshot.to_row() for snapshot in recording.warning_snapshots)
        ),
        "aggregator_inputs": replaying.write_jsonl_gz(
            directory / replaying.AGGREGATOR_INPUTS,
            (replaying.aggregator_row(message) for message in recording.aggregator_inputs),
        ),
    }
    description = {
        "site": str(site_path.resolve().relative_to(replaying.REPLAY_DIR.parents[1])),
        "seed": seed,
        "duration_s": duration_s,
        "sim_epoch_s": SIM_EPOCH_S,
        "priority_schedule": [
            {
                "call_id": s.call_id,
                "kind": s.kind.value,
                "signal_group": s.signal_group,
                "on_s": s.on_s,
                "off_s": s.off_s,
                "arrival_s": s.arrival_s,
            }
            for s in PRIORITY_SCHEDULE
        ],
        "detector_fault_s": list(DETECTOR_FAULT_S),
        "lines": sizes,
        "statistics": recording.statistics,
    }
    (directory / replaying.RECORDING_FILE).write_text(json.dumps(description, indent=1) + "\n", encoding="utf-8")
    return sizes


def differing_fixtures(directory: Path) -> list[str]:
    """The fixture files in directory that are not byte for byte the committed ones."""
    return [
        name
        for name in replaying.FIXTURE_FILES
        if not (replaying.FIXTURES_DIR / name).is_file()
        or (directory / name).read_bytes() != (replaying.FIXTURES_DIR / name).read_bytes()
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", type=Path, default=SAMPLE_SITE)
    parser.add_argument("--duration", type=float, default=DURATION_S, help="simulated seconds")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--out", type=Path, default=replaying.FIXTURES_DIR, help="fixture directory to write")
    parser.add_argument(
        "--check",
        action="store_true",
        help="record into a temporary directory and report whether it reproduces the committed fixtures",
    )
    args = parser.parse_args(argv)
    site = load_site_config(args.site)
    recording = record(site, args.site, args.duration, args.seed)
    with tempfile.TemporaryDirectory(prefix="rsu-replay-") as scratch:
        directory = Path(scratch) if args.check else args.out
        directory.mkdir(parents=True, exist_ok=True)
        sizes = write_fixtures(directory, args.site, args.duration, args.seed, recording)
        check_replay_matches_live(site, recording, directory)
        if args.check:
            differing = differing_fixtures(directory)
            if differing:
                print(f"the recording no longer reproduces the committed fixtures: {differing}", file=sys.stderr)
                return 1
            print("the recording reproduces the committed fixtures byte for byte", file=sys.stderr)
            return 0
        total = sum((directory / name).stat().st_size for name in replaying.FIXTURE_FILES)
    print(f"recorded {sizes} lines, {total / 1e6:.2f} MB in {args.out}", file=sys.stderr)
    print(json.dumps(recording.statistics), file=sys.stderr)
    print("replaying the fixtures reproduces the live run; now refresh the references:", file=sys.stderr)
    print(f'  {replaying.REFRESH_VARIABLE}=1 python -m pytest tests/replay -m "not sumo" -q', file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
