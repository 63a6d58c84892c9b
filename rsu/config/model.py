"""The site configuration: one validated model per intersection.

All geometry is in metres in a local east-north frame (x east, y north) whose origin is the
WGS-84 reference point of the site. Every model forbids unknown keys so that a typo fails at
start with the name of the field instead of being silently ignored.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Point = tuple[float, float]
Identifier = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RoadUserType(StrEnum):
    CAR = "car"
    TRUCK = "truck"
    BUS = "bus"
    MOTORCYCLE = "motorcycle"
    BICYCLE = "bicycle"
    PEDESTRIAN = "pedestrian"


VEHICLE_TYPES = frozenset({RoadUserType.CAR, RoadUserType.TRUCK, RoadUserType.BUS, RoadUserType.MOTORCYCLE})


class Movement(StrEnum):
    LEFT = "left"
    THROUGH = "through"
    RIGHT = "right"
    UTURN = "uturn"


class GeoReference(Strict):
    latitude_deg: float = Field(ge=-90, le=90)
    longitude_deg: float = Field(ge=-180, le=180)
    altitude_m: float = 0.0


class Lane(Strict):
    id: Identifier
    movements: list[Movement] = Field(min_length=1)
    signal_group: Identifier
    width_m: float = Field(default=3.5, gt=1.0, le=6.0)
    # Centre line from upstream to the stop line; the last point lies on the stop line.
    centerline_m: list[Point] = Field(min_length=2)
    # Length of the virtual loop just upstream of the stop line.
    stop_bar_zone_length_m: float = Field(default=8.0, gt=0.5, le=50.0)
    # Lane id in the SUMO network of the simulated world (used only by the simulation backend).
    sumo_lane: str | None = None


class Approach(Strict):
    id: Identifier
    name: str = ""
    speed_limit_mps: float = Field(default=13.9, gt=0, le=40)
    grade_percent: float = Field(default=0.0, ge=-12, le=12)
    lanes: list[Lane] = Field(min_length=1)


class Crosswalk(Strict):
    id: Identifier
    polygon_m: list[Point] = Field(min_length=3)
    signal_group: Identifier | None = None
    length_m: float = Field(gt=0, le=60)


class CountingLineRole(StrEnum):
    ENTRY = "entry"  # traffic enters the junction across it (just upstream of the stop line)
    EXIT = "exit"  # traffic leaves the junction across it (on an outbound leg)


class CountingLine(Strict):
    id: Identifier
    line_m: tuple[Point, Point]
    # Optional: the approach (entry) or leg (exit) whose traffic crosses this line.
    approach: Identifier | None = None
    # A confirmed track crossing an entry line and later an exit line makes one turning movement.
    role: CountingLineRole = CountingLineRole.ENTRY


class SignalGroupKind(StrEnum):
    VEHICLE = "vehicle"
    PEDESTRIAN = "pedestrian"


class SignalGroup(Strict):
    id: Identifier
    kind: SignalGroupKind = SignalGroupKind.VEHICLE
    nema_phase: int | None = Field(default=None, ge=1, le=16)
    min_green_s: float = Field(default=7.0, ge=2.0, le=60.0)
    max_green_s: float = Field(default=40.0, ge=5.0, le=180.0)
    # Gap (passage) time: green is extended while a vehicle arrives within this gap.
    passage_s: float = Field(default=2.5, ge=0.5, le=10.0)
    # None: computed from the ITE formulas (yellow from approach speed and grade, all-red from width).
    yellow_s: float | None = Field(default=None, ge=3.0, le=8.0)
    all_red_s: float | None = Field(default=None, ge=0.0, le=6.0)
    # Pedestrian groups: walk time and the crossing length for the flashing-don't-walk time.
    walk_s: float = Field(default=7.0, ge=4.0, le=30.0)
    crossing_length_m: float | None = Field(default=None, gt=0, le=60)
    # Intersection width crossed after the stop line, used for the all-red formula.
    clearance_width_m: float = Field(default=20.0, gt=0, le=100)
    # Protected/permissive left turn: the opposing through group during whose green this left
    # may also turn permissively, giving way (a flashing yellow arrow). It clears with that group.
    permissive_with: Identifier | None = None

    @model_validator(mode="after")
    def _check_green_bounds(self) -> SignalGroup:
        if self.max_green_s < self.min_green_s:
            raise ValueError(f"max_green_s ({self.max_green_s}) is below min_green_s ({self.min_green_s})")
        if self.kind is SignalGroupKind.PEDESTRIAN and self.crossing_length_m is None:
            raise ValueError("a pedestrian signal group needs crossing_length_m")
        return self


class Stage(Strict):
    """Signal groups that are green together; a controller serves stages in sequence."""

    id: Identifier
    signal_groups: list[Identifier] = Field(min_length=1)


class ControllerStrategy(StrEnum):
    FIXED_TIME = "fixed_time"
    ACTUATED = "actuated"
    ADAPTIVE = "adaptive"


class ControllerConfig(Strict):
    strategy: ControllerStrategy = ControllerStrategy.ACTUATED
    decision_rate_hz: float = Field(default=10.0, ge=1.0, le=50.0)
    stages: list[Stage] = Field(min_length=2)
    # Detector data older than this puts the controller into recall (fixed-time) mode.
    detector_stale_after_s: float = Field(default=2.0, gt=0, le=30)
    # Fixed-time green per stage when in recall or fixed-time mode.
    fixed_green_s: float = Field(default=20.0, ge=5.0, le=120.0)


class CameraSource(StrEnum):
    SIMULATION = "simulation"
    VIDEO = "video"


class CalibrationPoint(Strict):
    image_px: Point
    ground_m: Point


class MotionGateConfig(Strict):
    """A cheap motion stage in front of the detector (rsu.perception.motion): see MotionGate."""

    enabled: bool = False
    # While nothing moves the detector is skipped and the last objects are carried, at most this long.
    max_skip_s: float = Field(default=1.0, gt=0, le=10)
    # The motion detector works on a grey copy of the frame scaled to this width.
    analysis_width_px: int = Field(default=320, ge=64, le=1920)
    # Change of a blurred grey pixel from the background (0-255) that counts as motion.
    pixel_threshold: int = Field(default=20, ge=1, le=255)
    # Moving blobs smaller than this share of the frame are noise (compression, leaves).
    min_blob_area_ratio: float = Field(default=0.0003, gt=0, lt=0.5)
    # How fast the background follows the scene, per second (light changes, parked objects).
    background_rate_per_s: float = Field(default=0.5, gt=0, le=20)
    # Image areas whose changes are never motion, x1 y1 x2 y2 in frame pixels (clock overlays, trees).
    ignore_boxes_px: list[tuple[float, float, float, float]] = Field(default_factory=list)


class DetailRegionConfig(Strict):
    """A second detector pass over a fixed part of the frame at a higher resolution (SAHI-style, one slice).

    Far road users are a few pixels high at the full frame's network input and YOLO misses them; a crop
    of the far road given to the network at a larger scale finds them. Its detections are merged with
    the full frame's (see rsu.detectors.detail).
    """

    # x1 y1 x2 y2 in frame pixels; widened or heightened about its centre to the detail input's aspect.
    box_px: tuple[float, float, float, float]
    # openvino / onnx: the model of the detail pass, exported by `rsu export` at the detail input size
    # (a wide strip, e.g. 192x640); default: the camera's own model.
    weights: str | None = None
    # ultralytics: network input (height, width) of the detail pass; default: the camera's imgsz.
    imgsz: tuple[int, int] | None = None
    # Runs at most once per interval, in capture time (0: every frame; 0.1 at 20 fps: every other frame).
    interval_s: float = Field(default=0.0, ge=0, le=10)

    @model_validator(mode="after")
    def _check_box(self) -> DetailRegionConfig:
        x1, y1, x2, y2 = self.box_px
        if x1 < 0 or y1 < 0 or x2 <= x1 or y2 <= y1:
            raise ValueError(f"box_px {list(self.box_px)} must be x1 y1 x2 y2 with 0 <= x1 < x2 and 0 <= y1 < y2")
        return self


class DetectorConfig(Strict):
    # ultralytics: YOLO through Ultralytics (weights .pt or a standard name); openvino / onnx: a model
    # made by `rsu export` (weights: the OpenVINO .xml or its folder / the .onnx file), run directly.
    type: Literal["ultralytics", "openvino", "onnx"] = "ultralytics"
    weights: str = "yolo11n.pt"
    # Network input (height, width), or one number for both; an exported model has its own fixed
    # input, and a value set here must then match it.
    imgsz: int | tuple[int, int] = 640
    confidence: float = Field(default=0.25, gt=0, lt=1)
    # Non-maximum suppression IoU of the openvino / onnx detectors (Ultralytics' default).
    iou: float = Field(default=0.7, gt=0, lt=1)
    threads: int = Field(default=2, ge=1, le=64)
    # OpenVINO: precision of the layers that are not INT8. f32 is exact; bf16 is faster on CPUs with
    # AVX512-BF16/AMX (OpenVINO's own default there) and costs a little accuracy.
    inference_precision: Literal["f32", "bf16"] = "f32"
    # Fold a rider's person box into the bicycle/motorcycle it overlaps (one road user, not a pedestrian too).
    merge_riders: bool = True
    # openvino / onnx: car, truck and bus boxes suppress each other in NMS, as do bicycle and motorcycle
    # (YOLO often boxes one van as both a car and a truck; class-by-class NMS keeps both).
    merge_confusable_classes: bool = True
    motion: MotionGateConfig = MotionGateConfig()
    # Higher-resolution passes over fixed parts of the frame (far road); each costs one more inference.
    detail_regions: list[DetailRegionConfig] = Field(default_factory=list)


class SimulatedCameraConfig(Strict):
    """How the simulated camera degrades SUMO's ground truth."""

    position_noise_m: float = Field(default=0.3, ge=0, le=5)
    miss_probability: float = Field(default=0.05, ge=0, lt=1)
    latency_s: float = Field(default=0.05, ge=0, le=2)
    range_m: float = Field(default=80.0, gt=5, le=500)


class CameraConfig(Strict):
    id: Identifier
    source: CameraSource = CameraSource.SIMULATION
    # File path, RTSP/HTTP URL or device index; required for video sources.
    uri: str | None = None
    position_m: Point = (0.0, 0.0)
    calibration: list[CalibrationPoint] = Field(default_factory=list)
    frame_stride: int = Field(default=1, ge=1, le=30)
    simulation: SimulatedCameraConfig = SimulatedCameraConfig()
    detector: DetectorConfig = DetectorConfig()

    @model_validator(mode="after")
    def _check_source(self) -> CameraConfig:
        if self.source is CameraSource.VIDEO:
            if not self.uri:
                raise ValueError("a video camera needs uri (file path, rtsp:// URL or device index)")
            if len(self.calibration) < 4:
                raise ValueError("a video camera needs at least 4 calibration points (image_px -> ground_m)")
        return self


class TrackingConfig(Strict):
    # A track counts only after this many associated detections.
    confirm_hits: int = Field(default=3, ge=1, le=30)
    max_coast_s: float = Field(default=1.0, gt=0, le=10)
    gate_m: float = Field(default=4.0, gt=0.1, le=30)
    max_tracks: int = Field(default=500, ge=10, le=10000)
    # Below this speed a vehicle counts as queued.
    queue_speed_mps: float = Field(default=1.5, ge=0, le=5)
    # A road user first seen just past a counting line (hidden while it crossed) is counted on that line
    # when its path traced back from where it appeared crosses the line within this time (0: off).
    # See rsu.perception.counting.
    backtrack_s: float = Field(default=1.0, ge=0, le=3)


class WarningConfig(Strict):
    ttc_warning_s: float = Field(default=3.0, gt=0, le=10)
    ttc_critical_s: float = Field(default=1.5, gt=0, le=10)
    horizon_s: float = Field(default=4.0, gt=0.5, le=10)
    collision_radius_m: float = Field(default=2.0, gt=0.1, le=10)
    min_closing_speed_mps: float = Field(default=1.0, ge=0, le=20)
    # A warning ends only after it has been clear for this long (hysteresis).
    clear_after_s: float = Field(default=1.0, ge=0, le=10)
    # A non-critical conflict becomes a warning only after it has lasted this long (two frames at
    # 10 Hz): one-frame threshold crossings are tracking noise. Critical ones go out at once.
    confirm_s: float = Field(default=0.1, ge=0, le=2)
    # Deceleration required to avoid the collision (DRAC) above which a rear-end or crossing conflict
    # is worth a warning. SUMO's SSM device flags DRAC > 3.0; the default is the comfortable limit
    # (3.4, GUIDE §3) so a driver who can still brake comfortably (e.g. towards a queue) gets none.
    drac_threshold_mps2: float = Field(default=3.4, gt=0, le=10)
    # DRAC at or above this makes a warning critical whatever its TTC: emergency braking needed.
    drac_critical_mps2: float = Field(default=5.0, gt=0, le=15)
    # Crossing / vulnerable road user: largest predicted post-encroachment time that still warns.
    pet_threshold_s: float = Field(default=1.0, ge=0, le=5)
    # Red-light violation at a yellow: a vehicle that would need more than this to stop at the line
    # before the yellow ends (and is not braking) is predicted to run the red. Drivers brake up to
    # about 4.5 m/s² at a yellow onset (SUMO's default car decel) although 3.4 is comfortable.
    red_light_deceleration_mps2: float = Field(default=4.5, gt=0, le=10)
    # A vehicle standing inside the junction box this long is reported (stopped_in_junction).
    stopped_in_junction_s: float = Field(default=10.0, gt=0, le=300)


class V2XEncodings(Strict):
    """Payload encoding per vehicle-facing message class: this project's JSON schemas, or the ETSI
    ASN.1 UPER message (SPATEM, MAPEM, DENM). Sensor-sharing objects are always JSON."""

    spat: Literal["json", "uper"] = "json"
    map: Literal["json", "uper"] = "json"
    warnings: Literal["json", "uper"] = "json"


class V2XConfig(Strict):
    spat_rate_hz: float = Field(default=10.0, ge=1, le=50)
    # Sensor sharing (all tracked objects in one message, SDSM / CPM / RSM style).
    objects_rate_hz: float = Field(default=10.0, ge=1, le=50)
    # MAP is retained; it is re-sent this often so late subscribers get a fresh signature.
    map_period_s: float = Field(default=10.0, ge=1, le=240)
    # Ed25519 private key (PEM, PKCS#8) that signs every V2X message, relative to the site file.
    # None: a key generated on first start in the unit's state dir (see rsu.stages.v2x).
    signing_key: str | None = None
    # Where the unit keeps its generated key; None: $RSU_STATE_DIR, else $XDG_STATE_HOME/rsu-edge,
    # else ~/.local/state/rsu-edge (one sub-folder per unit_id).
    state_dir: str | None = None
    # ITS StationID and J2735 IntersectionID; None: derived from the unit id (stable).
    station_id: int | None = Field(default=None, ge=0, le=4294967295)
    intersection_numeric_id: int | None = Field(default=None, ge=1, le=65535)
    encodings: V2XEncodings = V2XEncodings()
    # default: {prefix}/{unit}/v2x/{spat|map|warnings|objects}; china: V2X/RSU/{unit}/{SPAT|MAP|RSI|RSM}/UP
    topic_layout: Literal["default", "china"] = "default"
    warnings: WarningConfig = WarningConfig()
    # SCHED_RR priority (1-99) of the warning path: the V2X stage and the perception stage's network
    # thread (never the detector). 0: normal scheduling. Needs CAP_SYS_NICE; see deploy/systemd.
    realtime_priority: int = Field(default=0, ge=0, le=99)


class MqttConfig(Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    topic_prefix: str = "rsu"
    username: str | None = None
    password: str | None = None
    tls: bool = False
    # With tls: a PEM file of the CA certificates to trust instead of the system store (a private
    # CA for the broker); in a site file relative to the file. Optional.
    ca_file: str | None = Field(default=None, min_length=1)
    keepalive_s: int = Field(default=10, ge=2, le=600)


class RedisConfig(Strict):
    url: str = "redis://127.0.0.1:6379/0"


# Sealed beside a base interval of whole minutes that divide it (ATSPM's 15-minute bins).
LONG_INTERVAL_S = 900.0


class UplinkConfig(Strict):
    # The shortest (base) aggregation interval.
    interval_s: float = Field(default=60.0, ge=1, le=3600)
    # Every interval length sealed and sent, each a multiple of the shortest. None: interval_s plus
    # LONG_INTERVAL_S when interval_s is whole minutes dividing it (60 s gives [60, 900]), else interval_s.
    intervals_s: list[float] | None = Field(default=None, min_length=1, max_length=4)
    # Centre broker; None means the unit's own broker.
    mqtt: MqttConfig | None = None
    topic_prefix: str = "centre"
    outbox_max_records: int = Field(default=100_000, ge=10, le=10_000_000)

    @model_validator(mode="before")
    @classmethod
    def _base_interval_from_list(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("intervals_s") and "interval_s" not in data:
            return {**data, "interval_s": min(data["intervals_s"])}
        return data

    @model_validator(mode="after")
    def _check_intervals(self) -> UplinkConfig:
        if self.intervals_s is None:
            return self
        if len(set(self.intervals_s)) != len(self.intervals_s):
            raise ValueError(f"uplink.intervals_s {self.intervals_s} lists a length twice")
        shortest = min(self.intervals_s)
        if self.interval_s != shortest:
            raise ValueError(
                f"uplink.interval_s ({self.interval_s}) must be the shortest of intervals_s {self.intervals_s}"
            )
        for length in self.intervals_s:
            if not 1 <= length <= 86_400:
                raise ValueError(f"uplink.intervals_s: {length} is outside 1..86400 s")
            if abs(length / shortest - round(length / shortest)) > 1e-9:
                raise ValueError(f"uplink.intervals_s: {length} is not a multiple of the shortest, {shortest}")
        return self

    @property
    def aggregation_intervals_s(self) -> list[float]:
        """Every interval length sealed, shortest first."""
        if self.intervals_s is not None:
            return sorted(self.intervals_s)
        base = self.interval_s
        whole_minutes = base % 60 == 0 and LONG_INTERVAL_S % base == 0 and base < LONG_INTERVAL_S
        return [base, LONG_INTERVAL_S] if whole_minutes else [base]


class WebConfig(Strict):
    """The unit's local web page: live view, calibration helper and /metrics."""

    # 127.0.0.1 keeps the page on the box; set the box's LAN address to open it from a laptop on site.
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    # Annotated camera preview (video cameras only), published on a local-only topic.
    preview_fps: float = Field(default=4.0, gt=0, le=5)
    preview_width_px: int = Field(default=960, ge=160, le=3840)


class SimulationConfig(Strict):
    """The embedded SUMO world used when no real camera is configured."""

    network: str = "sumo/intersection.net.xml"
    routes: str = "sumo/demand.rou.xml"
    step_s: float = Field(default=0.1, gt=0.01, le=1.0)
    traffic_light_id: str = "C"
    seed: int = 42
    # Scales the demand in the route file.
    demand_scale: float = Field(default=1.0, gt=0, le=5)


class PriorityKind(StrEnum):
    EMERGENCY = "emergency"  # preemption: conflicting greens end, the requested approach gets green
    TRANSIT = "transit"  # transit signal priority: bounded early green or green extension


class PriorityRequester(Strict):
    """One vehicle (or fleet key) allowed to ask for priority, and what it may ask for."""

    id: Identifier
    # Its Ed25519 public key (PEM), relative to the site file; read when the controller starts.
    public_key: str = Field(min_length=1)
    kinds: list[PriorityKind] = Field(min_length=1, max_length=2)


class PreemptionConfig(Strict):
    # Longest the requested stage is held green for one request; then the unit returns to normal
    # operation (ATSPM 110) and the request ends.
    max_dwell_s: float = Field(default=90.0, ge=5.0, le=600.0)


class TransitPriorityConfig(Strict):
    # Longest a bus's green is held beyond the moment the strategy would end it.
    max_extension_s: float = Field(default=10.0, ge=0.0, le=30.0)
    # Most a conflicting stage's green is shortened (never below its min green and pedestrian service).
    max_early_green_s: float = Field(default=10.0, ge=0.0, le=60.0)


class PriorityConfig(Strict):
    """Emergency preemption and transit priority requests over MQTT (signed, validated, rate limited)."""

    requesters: list[PriorityRequester] = Field(default_factory=list, max_length=1000)
    # Accepted difference between a request's signing time and the unit's clock.
    signature_window_s: float = Field(default=2.0, gt=0.0, le=30.0)
    # Per requester token bucket: sustained requests per minute and the burst allowed above that.
    rate_per_min: float = Field(default=12.0, gt=0.0, le=600.0)
    burst: int = Field(default=4, ge=1, le=100)
    # A check-in without valid_until_s holds this long after its estimated arrival unless renewed.
    grace_after_arrival_s: float = Field(default=15.0, ge=1.0, le=300.0)
    # Longest any request stays checked in without a renewal.
    max_request_s: float = Field(default=300.0, ge=10.0, le=3600.0)
    max_active_requests: int = Field(default=16, ge=1, le=256)
    preemption: PreemptionConfig = PreemptionConfig()
    transit: TransitPriorityConfig = TransitPriorityConfig()

    @model_validator(mode="after")
    def _check_requesters(self) -> PriorityConfig:
        ids = [requester.id for requester in self.requesters]
        repeated = sorted({identifier for identifier in ids if ids.count(identifier) > 1})
        if repeated:
            raise ValueError(f"priority.requesters: ids {repeated} are listed twice")
        return self


class SiteConfig(Strict):
    schema_version: Literal[1] = 1
    unit_id: Identifier
    name: str = ""
    reference: GeoReference
    approaches: list[Approach] = Field(min_length=1)
    crosswalks: list[Crosswalk] = Field(default_factory=list)
    counting_lines: list[CountingLine] = Field(default_factory=list)
    signal_groups: list[SignalGroup] = Field(min_length=2)
    # Pairs of signal groups that must never be green at the same time.
    conflicts: list[tuple[Identifier, Identifier]] = Field(min_length=1)
    controller: ControllerConfig
    cameras: list[CameraConfig] = Field(min_length=1)
    tracking: TrackingConfig = TrackingConfig()
    v2x: V2XConfig = V2XConfig()
    mqtt: MqttConfig = MqttConfig()
    redis: RedisConfig = RedisConfig()
    uplink: UplinkConfig = UplinkConfig()
    simulation: SimulationConfig = SimulationConfig()
    web: WebConfig = WebConfig()
    priority: PriorityConfig = PriorityConfig()

    @property
    def lanes(self) -> list[Lane]:
        return [lane for approach in self.approaches for lane in approach.lanes]

    def approach_of(self, lane_id: str) -> Approach:
        for approach in self.approaches:
            if any(lane.id == lane_id for lane in approach.lanes):
                return approach
        raise KeyError(lane_id)

    def signal_group(self, group_id: str) -> SignalGroup:
        for group in self.signal_groups:
            if group.id == group_id:
                return group
        raise KeyError(group_id)

    @property
    def is_simulated(self) -> bool:
        return all(camera.source is CameraSource.SIMULATION for camera in self.cameras)

    @model_validator(mode="after")
    def _check_references(self) -> SiteConfig:
        group_ids = [group.id for group in self.signal_groups]
        _require_unique("signal_groups", group_ids)
        _require_unique("lanes", [lane.id for lane in self.lanes])
        _require_unique("approaches", [approach.id for approach in self.approaches])
        _require_unique("cameras", [camera.id for camera in self.cameras])
        known = set(group_ids)
        for approach in self.approaches:
            for lane in approach.lanes:
                if lane.signal_group not in known:
                    raise ValueError(
                        f"approaches[{approach.id}].lanes[{lane.id}].signal_group "
                        f"'{lane.signal_group}' is not a defined signal group"
                    )
        for crosswalk in self.crosswalks:
            if crosswalk.signal_group is not None and crosswalk.signal_group not in known:
                raise ValueError(f"crosswalks[{crosswalk.id}].signal_group '{crosswalk.signal_group}' is not defined")
        for a, b in self.conflicts:
            for group in (a, b):
                if group not in known:
                    raise ValueError(f"conflicts: '{group}' is not a defined signal group")
            if a == b:
                raise ValueError(f"conflicts: '{a}' cannot conflict with itself")
        conflict_set = {frozenset(pair) for pair in self.conflicts}
        served: set[str] = set()
        for stage in self.controller.stages:
            for group in stage.signal_groups:
                if group not in known:
                    raise ValueError(f"controller.stages[{stage.id}]: '{group}' is not a defined signal group")
            served.update(stage.signal_groups)
            for i, a in enumerate(stage.signal_groups):
                for b in stage.signal_groups[i + 1 :]:
                    if frozenset((a, b)) in conflict_set:
                        raise ValueError(
                            f"controller.stages[{stage.id}] makes conflicting groups '{a}' and '{b}' green together"
                        )
        unserved = known - served
        if unserved:
            raise ValueError(f"controller.stages never serve signal groups {sorted(unserved)}")
        self._check_permissive_lefts(conflict_set)
        return self

    def _check_permissive_lefts(self, conflict_set: set[frozenset[str]]) -> None:
        """A permissive left runs only beside its partner's green and clears with it, so every other
        vehicle group it crosses must also cross the partner (and wait for the partner's clearance).
        That its yellow and all-red fit within the partner's is checked on the resolved timings
        (``signal_control.phasing``)."""
        groups = {group.id: group for group in self.signal_groups}
        for group in self.signal_groups:
            partner_id = group.permissive_with
            if partner_id is None:
                continue
            where = f"signal_groups[{group.id}].permissive_with"
            partner = groups.get(partner_id)
            if partner is None:
                raise ValueError(f"{where} '{partner_id}' is not a defined signal group")
            if SignalGroupKind.PEDESTRIAN in (group.kind, partner.kind):
                raise ValueError(f"{where}: permissive turns are for vehicle groups, not pedestrian ones")
            if frozenset((group.id, partner_id)) not in conflict_set:
                raise ValueError(
                    f"{where}: '{group.id}' and '{partner_id}' must be declared conflicting "
                    "(the protected turn crosses the opposing through it gives way to)"
                )
            for pair in conflict_set:
                if group.id not in pair:
                    continue
                (other_id,) = pair - {group.id}
                other = groups[other_id]
                if other_id == partner_id or other.kind is SignalGroupKind.PEDESTRIAN:
                    continue
                if frozenset((other_id, partner_id)) not in conflict_set:
                    raise ValueError(
                        f"{where}: '{group.id}' crosses '{other_id}', which does not conflict with '{partner_id}'; "
                        f"the permissive turn clears with '{partner_id}', so '{other_id}' could start too early"
                    )


def _require_unique(field: str, ids: list[str]) -> None:
    seen: set[str] = set()
    for identifier in ids:
        if identifier in seen:
            raise ValueError(f"{field}: id '{identifier}' is used twice")
        seen.add(identifier)
