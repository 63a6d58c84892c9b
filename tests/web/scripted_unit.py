"""A stand-in for a running unit: the messages its stages publish, sent through the real broker.

Vehicles drive down the sample site's lanes, the signal groups cycle, a queue builds at a red
stop bar, a warning starts and ends, health arrives once a second and (for a video site) an
annotated-looking preview JPEG a few times a second. Every message is a real, validated schema
instance; only their content is scripted.
"""

from __future__ import annotations

import math
import socket
import threading
import time
import uuid
from pathlib import Path

import cv2
import numpy as np
import yaml

from rsu.runtime.bus import MqttBus
from rsu_contracts.config import SiteConfig, load_site_config
from rsu_contracts.enums import RoadUserType
from rsu_contracts.messages import (
    CollisionWarning,
    DetectorStates,
    LaneObservation,
    LineCrossing,
    Participant,
    Sequencer,
    Severity,
    SignalGroupState,
    SignalState,
    Spat,
    SpatMovement,
    StageHealth,
    TrackedObject,
    TrackList,
    UnitHealth,
    UnitStatus,
    WarningKind,
    WarningStatus,
)
from rsu_contracts.messages.signal import ControllerMode, Indication
from rsu_contracts.topics import (
    CAMERA_PREVIEW,
    DETECTORS,
    HEALTH,
    SIGNAL_STATE,
    SPAT_SENT,
    TRACKS,
    WARNINGS_SENT,
    Topics,
)

CYCLE_S = 12.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def site_copy(source: Path, folder: Path, unit_id: str | None = None, **web: object) -> Path:
    """The site file with a fresh unit id (so parallel runs never share topics or client ids) and a free port."""
    raw = yaml.safe_load(source.read_text())
    raw["unit_id"] = unit_id or f"rsu-test-{uuid.uuid4().hex[:8]}"
    raw["web"] = {"port": free_port(), **web}
    for camera in raw.get("cameras", []):
        uri = camera.get("uri")
        if uri and "${" not in uri and not Path(uri).is_absolute():
            camera["uri"] = str((source.parent / uri).resolve())
    if "simulation" in raw:
        for key in ("network", "routes"):
            if key in raw["simulation"]:
                raw["simulation"][key] = str((source.parent / raw["simulation"][key]).resolve())
    target = folder / "site.yaml"
    target.write_text(yaml.safe_dump(raw, sort_keys=False))
    return target


def write_clip(path: Path, width: int = 320, height: int = 240, frames: int = 5) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10.0, (width, height))
    for i in range(frames):
        image = np.full((height, width, 3), 60 + i, dtype=np.uint8)
        cv2.line(image, (0, height - 1), (width // 2, height // 3), (255, 255, 255), 3)
        writer.write(image)
    writer.release()
    return path


def make_jpeg(width: int = 640, height: int = 360, label: str = "") -> bytes:
    image = np.full((height, width, 3), 40, dtype=np.uint8)
    cv2.rectangle(image, (40, 60), (200, 160), (255, 170, 60), 3)
    cv2.putText(image, f"preview {label}", (20, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2)
    ok, encoded = cv2.imencode(".jpg", image)
    assert ok
    return encoded.tobytes()


class ScriptedUnit:
    """Publishes a scripted unit's messages at `rate_hz` until stopped."""

    def __init__(self, site_path: Path, rate_hz: float = 10.0, with_preview: bool = False) -> None:
        self.site: SiteConfig = load_site_config(site_path)
        self.topics = Topics.for_site(self.site)
        self.rate_hz = rate_hz
        self.with_preview = with_preview
        self.bus = MqttBus(self.site.mqtt, f"{self.site.unit_id}-scripted")
        self.sequencers: dict[str, Sequencer] = {}
        self.start_s = time.time()
        self.rounds = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def header(self, schema: str, capture_s: float, publish_s: float) -> dict[str, object]:
        sequencer = self.sequencers.setdefault(schema, Sequencer(self.site.unit_id))
        return sequencer.header(capture_s, publish_s)

    def start(self) -> ScriptedUnit:
        self.bus.connect()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.bus.close()

    def _run(self) -> None:
        period = 1.0 / self.rate_hz
        while not self._stop.is_set():
            self.publish_round(time.time())
            self._stop.wait(period)

    # -- one round of messages ----------------------------------------------------------------

    def publish_round(self, now: float) -> None:
        t = now - self.start_s
        capture = now - 0.03
        self.bus.publish_to(self.topics.route(TRACKS), self.tracks(t, capture, now).to_json())
        self.bus.publish_to(self.topics.route(DETECTORS), self.detectors(t, capture, now).to_json())
        state = self.signal_state(t, capture, now)
        self.bus.publish_to(self.topics.route(SIGNAL_STATE), state.to_json())
        self.bus.publish_to(self.topics.route(SPAT_SENT), self.spat(state, now).to_json())
        warning = self.warning(t, capture, now)
        if warning is not None:
            self.bus.publish_to(self.topics.route(WARNINGS_SENT), warning.to_json())
        if self.rounds % int(self.rate_hz) == 0:
            self.bus.publish_to(self.topics.route(HEALTH), self.health(now).to_json())
        if self.with_preview and self.rounds % 3 == 0:
            self.bus.publish_to(self.topics.route(CAMERA_PREVIEW), make_jpeg(label=str(self.rounds)))
        self.rounds += 1

    def tracks(self, t: float, capture: float, now: float) -> TrackList:
        objects = []
        for i, lane in enumerate(self.site.lanes[:4]):
            (ax, ay), (bx, by) = lane.centerline_m[0], lane.centerline_m[-1]
            share = ((t * 0.08) + i * 0.2) % 1.0
            heading = math.degrees(math.atan2(bx - ax, by - ay)) % 360
            objects.append(
                TrackedObject(
                    track_id=100 + i + 10 * int((t * 0.08) + i * 0.2),
                    road_user=RoadUserType.CAR if i % 3 else RoadUserType.TRUCK,
                    x_m=ax + (bx - ax) * share,
                    y_m=ay + (by - ay) * share,
                    speed_mps=9.0,
                    heading_deg=heading,
                    lane_id=lane.id,
                    age_s=3.0,
                )
            )
        objects.append(
            TrackedObject(
                track_id=7,
                road_user=RoadUserType.PEDESTRIAN,
                x_m=-6.0 + (t % 10),
                y_m=10.0,
                speed_mps=1.3,
                heading_deg=90.0,
                length_m=0.5,
                width_m=0.5,
                age_s=5.0,
            )
        )
        return TrackList(
            **self.header(TrackList.SCHEMA, capture, now), camera_id=self.site.cameras[0].id, objects=objects
        )

    def detectors(self, t: float, capture: float, now: float) -> DetectorStates:
        lanes = [
            LaneObservation(
                lane_id=lane.id,
                stop_bar_occupied=(i + int(t)) % 3 == 0,
                queue_length_m=(t * 2 + 7 * i) % 40,
                queued_vehicles=int(((t * 2 + 7 * i) % 40) / 7),
                approaching_vehicles=i % 3,
                stop_bar_gap_s=1.0,
                max_wait_s=(t + i) % 30,
            )
            for i, lane in enumerate(self.site.lanes)
        ]
        crossings = []
        if self.site.counting_lines and self.rounds % 5 == 0:
            line = self.site.counting_lines[self.rounds // 5 % len(self.site.counting_lines)]
            crossings.append(LineCrossing(line_id=line.id, road_user=RoadUserType.CAR, speed_mps=8.0, time_s=capture))
        return DetectorStates(
            **self.header(DetectorStates.SCHEMA, capture, now),
            camera_id=self.site.cameras[0].id,
            valid=True,
            lanes=lanes,
            crossings=crossings,
        )

    def signal_state(self, t: float, capture: float, now: float) -> SignalState:
        groups = []
        count = len(self.site.signal_groups)
        for i, group in enumerate(self.site.signal_groups):
            # Each group green for its slot of the cycle, then yellow, then red.
            slot = CYCLE_S / count
            phase = (t - i * slot) % CYCLE_S
            if phase < slot * 0.7:
                indication, since, end = Indication.GREEN, now - phase, now + slot * 0.7 - phase
            elif phase < slot:
                indication, since, end = Indication.YELLOW, now - (phase - slot * 0.7), now + slot - phase
            else:
                indication, since, end = Indication.RED, now - (phase - slot), now + CYCLE_S - phase
            groups.append(
                SignalGroupState(
                    signal_group=group.id,
                    indication=indication,
                    since_s=since,
                    min_end_time_s=end,
                    max_end_time_s=end + 5,
                    likely_time_s=end,
                )
            )
        return SignalState(
            **self.header(SignalState.SCHEMA, capture, now),
            mode=ControllerMode.NORMAL,
            strategy="actuated",
            groups=groups,
        )

    def spat(self, state: SignalState, now: float) -> Spat:
        movements = [
            SpatMovement(
                signal_group=g.signal_group,
                event_state="protected-Movement-Allowed" if g.indication is Indication.GREEN else "stop-And-Remain",
                min_end_time_s=g.min_end_time_s,
                max_end_time_s=g.max_end_time_s,
                likely_time_s=g.likely_time_s,
                time_to_change_s=max(0.0, g.likely_time_s - now),
            )
            for g in state.groups
        ]
        return Spat(
            **self.header(Spat.SCHEMA, state.capture_time_s, now),
            intersection_id=self.site.unit_id,
            movements=movements,
        )

    def warning(self, t: float, capture: float, now: float) -> CollisionWarning | None:
        # A warning every 1.5 s: new, one update, then ended.
        step = self.rounds % 15
        if step not in (0, 5, 10):
            return None
        status = {0: WarningStatus.NEW, 5: WarningStatus.UPDATE, 10: WarningStatus.ENDED}[step]
        participants = [
            Participant(track_id=100, road_user=RoadUserType.CAR, x_m=0.0, y_m=10.0, speed_mps=9.0, heading_deg=180),
            Participant(
                track_id=7, road_user=RoadUserType.PEDESTRIAN, x_m=1.0, y_m=10.0, speed_mps=1.3, heading_deg=90
            ),
        ]
        return CollisionWarning(
            **self.header(CollisionWarning.SCHEMA, capture, now),
            warning_id=f"w{self.rounds // 15}",
            kind=WarningKind.VULNERABLE_ROAD_USER,
            severity=Severity.CRITICAL,
            status=status,
            ttc_s=1.2,
            conflict_x_m=0.5,
            conflict_y_m=10.0,
            conflict_latitude_deg=self.site.reference.latitude_deg,
            conflict_longitude_deg=self.site.reference.longitude_deg,
            participants=participants,
        )

    def health(self, now: float) -> UnitHealth:
        stages = [
            StageHealth(name=name, alive=True, restarts=1 if name == "perception" else 0, heartbeat_age_s=0.1)
            for name in ("perception", "controller", "v2x", "uplink", "web")
        ]
        return UnitHealth(
            **self.header(UnitHealth.SCHEMA, now, now),
            status=UnitStatus.ONLINE,
            stages=stages,
            redis_connected=True,
        )
