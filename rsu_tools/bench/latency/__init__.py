"""`rsu bench latency`: how long a warning takes from the camera to a vehicle, and fan-out to many.

(a) Camera to vehicle, on real footage with the real detector, laid out as in the unit:

    this process:  frame -> detector -> tracker (PerceptionPipeline) -> TrackList --MQTT-->
    V2X process:   V2XOutput (conflicts, warning lifecycle, SPaT, objects) -> encode, sign --MQTT-->
    vehicle process: VehicleClient (verify signature, decode) -> received

through the broker named by --broker (default: the site's, the real Mosquitto). Frames are
released at --fps in wall time as a live camera would deliver them (a frame whose slot has passed
while the pipeline was busy is dropped, as the unit's live source does); "capture" is that
release time. The clip may show no conflict, so every frame's track list gets one synthetic
pair of tracks on a rear-end course far outside the junction (critical: no confirmation delay),
under fresh track ids each frame: every frame therefore produces one NEW warning, and that
message is the one timed, frame by frame. The other warnings, SPaT (10 Hz, from a synthetic
signal state) and the sensor-sharing objects message go out as in the unit and load it the same.

Stages (each one's p50 / p99 and its share of the mean end-to-end time):
detect (detector.detect), track (tracker, zones, TrackList to JSON), tracks hop (publish until
the V2X process has the message off its queue), warning logic (decode, conflicts, lifecycle,
message build), sign (encode, Ed25519), delivery (paho hands it to the broker, the broker to the
vehicle process, which checks the signature and decodes). "after detector" is all but detect.

(b) Fan-out: --clients vehicle clients subscribe (QoS 1) to one unit's warnings topic; the bench
publishes --fanout-messages signed warnings at --fanout-rate-hz and times each delivery from the
publish call. Each client is its own MQTT v5 session (TCP connection, QoS 1 subscription, PUBACK
for every message); --client-processes processes each run one select loop over their share of
the sockets. By default they are raw sessions that note the time the bytes arrive and read only
the envelope's seq: 200 full Python MQTT clients on the same 2 cores as the broker would measure
their own parsing (about 150 µs of CPU per delivery, 30 ms per warning), not the delivery;
--client-kind paho uses paho clients instead. Neither verifies signatures (part (a) does).

Bounded: frames, clients and messages are capped, everything has a timeout, loopback brokers only.

The package, one job per module: `plan` (options, broker, bench site), `playback` (part (a),
driving the unit), `fanout` (part (b)), `statistics` (timestamps to figures and targets), `runner`
(both parts in turn), `report` (table and JSON), `cli` (the command line). The raw MQTT v5 packets
of the fan-out's subscribers come from rsu_tools.testing.mqtt_packets. Every public name is importable
from here.
"""

from __future__ import annotations

from rsu_tools.bench.latency.cli import add_bench_latency_parser, main, run_bench_latency_command
from rsu_tools.bench.latency.fanout import run_fanout, seq_of
from rsu_tools.bench.latency.plan import (
    MAX_CLIENTS,
    MAX_FANOUT_MESSAGES,
    MAX_FRAMES,
    OTC_SITE,
    READY_TIMEOUT_S,
    WARMUP_FRAMES,
    LatencyOptions,
    broker_of,
)
from rsu_tools.bench.latency.playback import (
    SYNTHETIC_ID_BASE,
    SYNTHETIC_POSITION_M,
    run_path,
    synthetic_pair,
    synthetic_signal,
)
from rsu_tools.bench.latency.report import render_table, write_json
from rsu_tools.bench.latency.runner import run_bench
from rsu_tools.bench.latency.statistics import (
    STAGES,
    TARGET_AFTER_DETECTOR_P99_MS,
    TARGET_END_TO_END_P50_MS,
    TARGET_END_TO_END_P99_MS,
    TARGET_FANOUT_P99_MS,
    FanoutResult,
    Figure,
    LatencyResult,
    PathResult,
    Record,
    StageFigure,
    figure,
)

# The packet codec moved to test tooling; the bench's old names stay importable.
from rsu_tools.testing.mqtt_packets import mqtt_packet, split_packet

__all__ = [
    "MAX_CLIENTS",
    "MAX_FANOUT_MESSAGES",
    "MAX_FRAMES",
    "OTC_SITE",
    "READY_TIMEOUT_S",
    "STAGES",
    "SYNTHETIC_ID_BASE",
    "SYNTHETIC_POSITION_M",
    "TARGET_AFTER_DETECTOR_P99_MS",
    "TARGET_END_TO_END_P50_MS",
    "TARGET_END_TO_END_P99_MS",
    "TARGET_FANOUT_P99_MS",
    "WARMUP_FRAMES",
    "FanoutResult",
    "Figure",
    "LatencyOptions",
    "LatencyResult",
    "PathResult",
    "Record",
    "StageFigure",
    "add_bench_latency_parser",
    "broker_of",
    "figure",
    "main",
    "mqtt_packet",
    "render_table",
    "run_bench",
    "run_bench_latency_command",
    "run_fanout",
    "run_path",
    "seq_of",
    "split_packet",
    "synthetic_pair",
    "synthetic_signal",
    "write_json",
]
