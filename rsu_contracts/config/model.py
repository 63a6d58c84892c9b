"""The site configuration: one validated model per intersection.

All geometry is in metres in a local east-north frame (x east, y north) whose origin is the
WGS-84 reference point of the site. Every model forbids unknown keys so that a typo fails at
start with the name of the field instead of being silently ignored.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rsu_contracts.config.errors import FieldError, FieldLocation
from rsu_contracts.config.paths import CameraUri, ModelWeights, SitePath
from rsu_contracts.config.strategy import (
    ActuatedParameters,
    AdaptiveParameters,
    FixedTimeParameters,
    ScheduleParameters,
)
from rsu_contracts.enums import (
    CameraSource,
    ControllerStrategy,
    CountingLineRole,
    Movement,
    PriorityKind,
    SignalGroupKind,
)

Point = tuple[float, float]
IDENTIFIER_PATTERN = r"^[A-Za-z0-9_.-]+$"
Identifier = Annotated[str, Field(min_length=1, max_length=64, pattern=IDENTIFIER_PATTERN)]


# Safety floors of the change and clearance intervals: a configured value below one is refused.
MIN_YELLOW_S = 3.0
MIN_ALL_RED_S = 1.0


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GeoReference(Strict):
    """The WGS-84 point that is the origin (0, 0) of the site's local east-north frame."""

    latitude_deg: float = Field(ge=-90, le=90, description="Latitude of the local origin, degrees (WGS-84).")
    longitude_deg: float = Field(ge=-180, le=180, description="Longitude of the local origin, degrees (WGS-84).")
    altitude_m: float = Field(
        default=0.0, description="Altitude of the local origin above the WGS-84 ellipsoid, metres (MAP reference)."
    )


class Lane(Strict):
    """One inbound lane up to its stop line."""

    id: Identifier = Field(description="Lane id, unique over all approaches; used in topics, messages and MAP.")
    movements: list[Movement] = Field(
        min_length=1, description="Movements allowed from this lane at the stop line (left, through, right, uturn)."
    )
    signal_group: Identifier = Field(description="Id of the vehicle signal group that releases this lane.")
    width_m: float = Field(default=3.5, gt=1.0, le=6.0, description="Lane width, metres (MAP and lane matching).")
    centerline_m: list[Point] = Field(
        min_length=2,
        description="Centre line from upstream to the stop line, [x, y] metres; the last point lies on the stop line.",
    )
    stop_bar_zone_length_m: float = Field(
        default=8.0,
        gt=0.5,
        le=50.0,
        description="Length of the virtual loop just upstream of the stop line, metres (presence detection).",
    )
    sumo_lane: str | None = Field(
        default=None,
        description="Lane id in the SUMO network of the simulated world; used only by the simulation backend.",
    )


class Approach(Strict):
    """One road entering the junction, with its inbound lanes."""

    id: Identifier = Field(description="Approach id (e.g. a compass direction), unique; counting lines refer to it.")
    name: str = Field(default="", description="Human-readable name shown on the web page and in reports.")
    speed_limit_mps: float = Field(
        default=13.9, gt=0, le=40, description="Posted speed, m/s; sets the ITE yellow time when yellow_s is unset."
    )
    grade_percent: float = Field(
        default=0.0,
        ge=-12,
        le=12,
        description="Road grade towards the stop line, percent (negative: downhill); enters the ITE yellow time.",
    )
    lanes: list[Lane] = Field(min_length=1, description="Inbound lanes of this approach.")


class Crosswalk(Strict):
    """A pedestrian crossing."""

    id: Identifier = Field(description="Crosswalk id, unique.")
    polygon_m: list[Point] = Field(min_length=3, description="Outline of the crosswalk, [x, y] metres.")
    signal_group: Identifier | None = Field(
        default=None, description="Id of the pedestrian signal group serving it; none for an unsignalised crossing."
    )
    length_m: float = Field(gt=0, le=60, description="Crossing length kerb to kerb, metres.")


class CountingLine(Strict):
    """A virtual line that counts the road users crossing it (per class, per interval)."""

    id: Identifier = Field(description="Counting line id, unique; names the line in counts and aggregates.")
    line_m: tuple[Point, Point] = Field(description="The line's two end points, [[x, y], [x, y]] metres.")
    approach: Identifier | None = Field(
        default=None,
        description="Id of the approach (entry line) or leg (exit line, named by its approach id) whose "
        "traffic crosses it; none: not tied to an approach.",
    )
    role: CountingLineRole = Field(
        default=CountingLineRole.ENTRY,
        description="entry: traffic enters the junction across it; exit: traffic leaves across it. A confirmed "
        "track crossing an entry line and later an exit line makes one turning movement.",
    )


class SignalGroup(Strict):
    """One set of signal heads that always show the same indication."""

    id: Identifier = Field(description="Signal group id, unique; lanes, crosswalks, conflicts and stages refer to it.")
    kind: SignalGroupKind = Field(
        default=SignalGroupKind.VEHICLE, description="vehicle or pedestrian (walk / flashing don't walk)."
    )
    nema_phase: int | None = Field(
        default=None, ge=1, le=16, description="NEMA phase number, for reports (ATSPM) and the SPaT signal group id."
    )
    min_green_s: float = Field(
        default=7.0, ge=2.0, le=60.0, description="Shortest green once started, seconds (driver expectation)."
    )
    max_green_s: float = Field(
        default=40.0,
        ge=5.0,
        le=180.0,
        description="Longest green under continuous demand, seconds; at least min_green_s.",
    )
    passage_s: float = Field(
        default=2.5,
        ge=0.5,
        le=10.0,
        description="Gap (passage) time, seconds: green is extended while a vehicle arrives within this gap.",
    )
    yellow_s: float | None = Field(
        default=None,
        ge=MIN_YELLOW_S,
        le=8.0,
        description="Yellow change interval, seconds; none: signal.defaults.yellow_s, else the ITE formula from "
        "approach speed and grade.",
    )
    all_red_s: float | None = Field(
        default=None,
        ge=MIN_ALL_RED_S,
        le=6.0,
        description="Red clearance interval, seconds (at least the 1 s safety floor: a lower value is refused, not "
        "raised); none: signal.defaults.all_red_s, else the ITE formula from clearance_width_m.",
    )
    walk_s: float = Field(default=7.0, ge=4.0, le=30.0, description="Pedestrian groups: walk time, seconds.")
    crossing_length_m: float | None = Field(
        default=None,
        gt=0,
        le=60,
        description="Pedestrian groups (required there): crossing length, metres, for the flashing-don't-walk time.",
    )
    clearance_width_m: float = Field(
        default=20.0,
        gt=0,
        le=100,
        description="Intersection width crossed after the stop line, metres, for the all-red formula.",
    )
    permissive_with: Identifier | None = Field(
        default=None,
        description="Protected/permissive left turn: the opposing through group during whose green this left may "
        "also turn permissively, giving way (flashing yellow arrow); it clears with that group.",
    )

    @model_validator(mode="after")
    def _check_green_bounds(self) -> SignalGroup:
        if self.max_green_s < self.min_green_s:
            raise FieldError(
                ("max_green_s",), f"max_green_s ({self.max_green_s}) is below min_green_s ({self.min_green_s})"
            )
        if self.kind is SignalGroupKind.PEDESTRIAN and self.crossing_length_m is None:
            raise FieldError(("crossing_length_m",), "a pedestrian signal group needs crossing_length_m")
        return self


class TimingDefaults(Strict):
    """Timings for every signal group that does not set its own."""

    yellow_s: float | None = Field(
        default=None, ge=MIN_YELLOW_S, le=8.0, description="Yellow, seconds; none: the ITE formula per group."
    )
    all_red_s: float | None = Field(
        default=None,
        ge=MIN_ALL_RED_S,
        le=6.0,
        description="All-red, seconds (1 s floor: lower is refused); none: the ITE formula per group.",
    )
    min_green_s: float | None = Field(
        default=None, ge=2.0, le=60.0, description="Min green, seconds; none: 7 s (SignalGroup's default)."
    )
    max_green_s: float | None = Field(
        default=None, ge=5.0, le=180.0, description="Max green, seconds; none: 40 s (SignalGroup's default)."
    )


class SignalSettings(Strict):
    """Site-wide signal settings."""

    defaults: TimingDefaults = Field(
        default=TimingDefaults(), description="Timings used where a signal group omits them."
    )


class Stage(Strict):
    """Signal groups that are green together; a controller serves stages in sequence."""

    id: Identifier = Field(description="Stage id, unique.")
    signal_groups: list[Identifier] = Field(
        min_length=1, description="Ids of the signal groups green together in this stage; none may conflict."
    )
    fixed_green_s: float | None = Field(
        default=None,
        ge=5.0,
        le=120.0,
        description="This stage's green under the fixed_time strategy, seconds; none: Webster's split of "
        "controller.design_flows_vph if given, else controller.fixed_green_s.",
    )


class ControllerConfig(Strict):
    """The signal controller: strategy, stage sequence and fallbacks."""

    strategy: ControllerStrategy = Field(
        default=ControllerStrategy.ACTUATED,
        description="fixed_time, actuated (gap-out / max-out per group), adaptive (demand-weighted extension) "
        "or schedule (plans the coming stages over clusters of vehicles, after SURTRAC); each has its "
        "parameters in the block of its name.",
    )
    decision_rate_hz: float = Field(
        default=10.0, ge=1.0, le=50.0, description="How often the controller decides, per second."
    )
    stages: list[Stage] = Field(min_length=2, description="The stage sequence; together they serve every group.")
    detector_stale_after_s: float = Field(
        default=2.0,
        gt=0,
        le=30,
        description="Detector data older than this, seconds, puts the controller into recall (fixed-time) mode.",
    )
    fixed_green_s: float = Field(
        default=20.0,
        ge=5.0,
        le=120.0,
        description="Green per stage in recall mode, and under fixed_time where a stage sets none and no design "
        "flows are given, seconds.",
    )
    design_flows_vph: dict[Identifier, Annotated[float, Field(ge=0)]] = Field(
        default_factory=dict,
        description="Measured or design flow per lane id, vehicles per hour: fixed_time greens are then Webster's "
        "split (a stage's own fixed_green_s still wins).",
    )
    fixed_time: FixedTimeParameters = Field(
        default=FixedTimeParameters(), description="Parameters of the fixed_time strategy (Webster's split)."
    )
    actuated: ActuatedParameters = Field(
        default=ActuatedParameters(), description="Parameters of the actuated strategy (gap reduction)."
    )
    adaptive: AdaptiveParameters = Field(
        default=AdaptiveParameters(), description="Parameters of the adaptive strategy."
    )
    schedule: ScheduleParameters = Field(
        default=ScheduleParameters(), description="Parameters of the schedule strategy."
    )


class CalibrationPoint(Strict):
    """One image point and where it lies on the ground; four or more give the camera's homography."""

    image_px: Point = Field(description="Point in the frame, [x, y] pixels.")
    ground_m: Point = Field(description="The same point on the ground, [x, y] metres in the site frame.")


class MotionGateConfig(Strict):
    """A cheap motion stage in front of the detector (rsu.perception.motion): see MotionGate."""

    enabled: bool = Field(default=False, description="Skip the detector while nothing in the frame moves.")
    max_skip_s: float = Field(
        default=1.0,
        gt=0,
        le=10,
        description="While nothing moves the last objects are carried at most this long, seconds.",
    )
    analysis_width_px: int = Field(
        default=320, ge=64, le=1920, description="Width of the grey copy the motion detector works on, pixels."
    )
    pixel_threshold: int = Field(
        default=20,
        ge=1,
        le=255,
        description="Change of a blurred grey pixel from the background (0-255) that counts as motion.",
    )
    min_blob_area_ratio: float = Field(
        default=0.0003,
        gt=0,
        lt=0.5,
        description="Moving blobs smaller than this share of the frame are noise (compression, leaves).",
    )
    background_rate_per_s: float = Field(
        default=0.5,
        gt=0,
        le=20,
        description="How fast the background follows the scene, per second (light changes, parked objects).",
    )
    ignore_boxes_px: list[tuple[float, float, float, float]] = Field(
        default_factory=list,
        description="Image areas whose changes are never motion, [x1, y1, x2, y2] frame pixels (clocks, trees).",
    )

    @model_validator(mode="after")
    def _check_ignore_boxes(self) -> MotionGateConfig:
        for index, box in enumerate(self.ignore_boxes_px):
            if not _is_box(box):
                raise FieldError(("ignore_boxes_px", index), f"{list(box)} {_BOX_RULE}")
        return self


# A box in frame pixels: x1 y1 x2 y2 with its corners in order, inside the frame's positive quadrant.
_BOX_RULE = "must be x1 y1 x2 y2 with 0 <= x1 < x2 and 0 <= y1 < y2"


def _is_box(box: tuple[float, float, float, float]) -> bool:
    x1, y1, x2, y2 = box
    return 0 <= x1 < x2 and 0 <= y1 < y2


class DetailRegionConfig(Strict):
    """A second detector pass over a fixed part of the frame at a higher resolution (SAHI-style, one slice).

    Far road users are a few pixels high at the full frame's network input and YOLO misses them; a crop
    of the far road given to the network at a larger scale finds them. Its detections are merged with
    the full frame's (see rsu.detectors.detail).
    """

    box_px: tuple[float, float, float, float] = Field(
        description="The region, [x1, y1, x2, y2] frame pixels; widened or heightened about its centre to the "
        "detail input's aspect."
    )
    weights: ModelWeights | None = Field(
        default=None,
        description="openvino / onnx: the detail pass's model, exported by `rsu export` at the detail input size "
        "(a wide strip, e.g. 192x640); none: the camera's own model. A path by the site path rule.",
    )
    imgsz: tuple[int, int] | None = Field(
        default=None,
        description="ultralytics: network input [height, width] of the detail pass, pixels; none: the camera's imgsz.",
    )
    interval_s: float = Field(
        default=0.0,
        ge=0,
        le=10,
        description="Runs at most once per interval of capture time, seconds (0: every frame; 0.1 at 20 fps: every "
        "other frame).",
    )

    @model_validator(mode="after")
    def _check_box(self) -> DetailRegionConfig:
        if not _is_box(self.box_px):
            raise FieldError(("box_px",), f"box_px {list(self.box_px)} {_BOX_RULE}")
        return self


class DetectorConfig(Strict):
    """The object detector run on each camera frame."""

    type: Literal["ultralytics", "openvino", "onnx"] = Field(
        default="ultralytics",
        description="ultralytics: YOLO through Ultralytics; openvino / onnx: a model made by `rsu export`, run "
        "directly (faster on small boxes).",
    )
    weights: ModelWeights = Field(
        default="yolo11n.pt",
        description="ultralytics: a .pt file or a standard model name (a bare name is looked for in the site "
        "folder, then Ultralytics' own); openvino: the .xml or its folder; onnx: the .onnx file. A path by the site "
        "path rule.",
    )
    imgsz: int | tuple[int, int] = Field(
        default=640,
        description="Network input [height, width] or one number for both, pixels; an exported model has its own "
        "fixed input, and a value set here must then match it.",
    )
    confidence: float = Field(default=0.25, gt=0, lt=1, description="Lowest detection score kept (0-1).")
    iou: float = Field(
        default=0.7,
        gt=0,
        lt=1,
        description="Non-maximum suppression IoU of the openvino / onnx detectors (Ultralytics' default).",
    )
    threads: int = Field(default=2, ge=1, le=64, description="CPU threads the detector may use.")
    inference_precision: Literal["f32", "bf16"] = Field(
        default="f32",
        description="OpenVINO: precision of the layers that are not INT8. f32 is exact; bf16 is faster on CPUs with "
        "AVX512-BF16/AMX and costs a little accuracy.",
    )
    merge_riders: bool = Field(
        default=True,
        description="Fold a rider's person box into the bicycle/motorcycle it overlaps (one road user, not a "
        "pedestrian too).",
    )
    merge_confusable_classes: bool = Field(
        default=True,
        description="openvino / onnx: car, truck and bus boxes suppress each other in NMS, as do bicycle and "
        "motorcycle (YOLO often boxes one van as both a car and a truck).",
    )
    motion: MotionGateConfig = Field(
        default=MotionGateConfig(), description="Motion gate in front of the detector (off by default)."
    )
    detail_regions: list[DetailRegionConfig] = Field(
        default_factory=list,
        description="Higher-resolution passes over fixed parts of the frame (far road); each costs one more inference.",
    )


class SimulatedCameraConfig(Strict):
    """How the simulated camera degrades SUMO's ground truth."""

    position_noise_m: float = Field(
        default=0.3, ge=0, le=5, description="Standard deviation of the position noise added, metres."
    )
    miss_probability: float = Field(
        default=0.05, ge=0, lt=1, description="Chance that a road user is missing from one frame (0-1)."
    )
    latency_s: float = Field(default=0.05, ge=0, le=2, description="Delay from capture to detection, seconds.")
    range_m: float = Field(
        default=80.0, gt=5, le=500, description="Road users farther than this from the camera are not seen, metres."
    )


class CameraConfig(Strict):
    """One camera: where frames come from, how image maps to ground, and its detector."""

    id: Identifier = Field(description="Camera id, unique.")
    source: CameraSource = Field(
        default=CameraSource.SIMULATION,
        description="simulation: detections from the embedded SUMO world; video: a file, stream or device.",
    )
    uri: CameraUri | None = Field(
        default=None,
        description="Video sources (required there): a file path (by the site path rule), an rtsp:// or http:// URL, "
        "or a device index (0).",
    )
    position_m: Point = Field(
        default=(0.0, 0.0), description="Camera position, [x, y] metres (simulated range, web view)."
    )
    calibration: list[CalibrationPoint] = Field(
        default_factory=list,
        description="Image-to-ground point pairs; a video camera needs at least 4 (the web page's calibration helper "
        "writes them).",
    )
    frame_stride: int = Field(default=1, ge=1, le=30, description="Process every n-th frame (1: all).")
    simulation: SimulatedCameraConfig = Field(
        default=SimulatedCameraConfig(), description="Simulation sources: how ground truth is degraded."
    )
    detector: DetectorConfig = Field(default=DetectorConfig(), description="Video sources: the object detector.")

    @model_validator(mode="after")
    def _check_source(self) -> CameraConfig:
        if self.source is CameraSource.VIDEO:
            if not self.uri:
                raise FieldError(("uri",), "a video camera needs uri (file path, rtsp:// URL or device index)")
            if len(self.calibration) < 4:
                raise FieldError(
                    ("calibration",), "a video camera needs at least 4 calibration points (image_px -> ground_m)"
                )
        return self


class TrackingConfig(Strict):
    """Multi-object tracking on the ground plane."""

    confirm_hits: int = Field(
        default=3, ge=1, le=30, description="A track counts only after this many associated detections."
    )
    max_coast_s: float = Field(
        default=1.0, gt=0, le=10, description="A track without detections is dropped after this long, seconds."
    )
    gate_m: float = Field(
        default=4.0, gt=0.1, le=30, description="Farthest a detection may be from a track's prediction, metres."
    )
    max_tracks: int = Field(default=500, ge=10, le=10000, description="Most tracks kept at once (a safety bound).")
    queue_speed_mps: float = Field(
        default=1.5, ge=0, le=5, description="Below this speed a vehicle counts as queued, m/s."
    )
    backtrack_s: float = Field(
        default=1.0,
        ge=0,
        le=3,
        description="A road user first seen just past a counting line (hidden while it crossed) is counted on that "
        "line when its path traced back crosses the line within this time, seconds (0: off).",
    )


class WarningConfig(Strict):
    """Collision and violation warnings (v2x.conflicts): thresholds and hysteresis."""

    ttc_warning_s: float = Field(
        default=3.0,
        gt=0,
        le=10,
        description="A conflict with time-to-collision below this is a warning, seconds; at most horizon_s.",
    )
    ttc_critical_s: float = Field(
        default=1.5,
        gt=0,
        le=10,
        description="Time-to-collision below this is critical, seconds; must be below ttc_warning_s.",
    )
    horizon_s: float = Field(
        default=4.0, gt=0.5, le=10, description="How far ahead trajectories are predicted, seconds."
    )
    collision_radius_m: float = Field(
        default=2.0, gt=0.1, le=10, description="Predicted positions closer than this collide, metres."
    )
    min_closing_speed_mps: float = Field(
        default=1.0, ge=0, le=20, description="A pair must be closing at least this fast to warn, m/s."
    )
    clear_after_s: float = Field(
        default=1.0,
        ge=0,
        le=10,
        description="A warning ends only after it has been clear for this long, seconds (hysteresis).",
    )
    confirm_s: float = Field(
        default=0.1,
        ge=0,
        le=2,
        description="A non-critical conflict becomes a warning only after lasting this long, seconds (two frames at "
        "10 Hz: one-frame crossings are tracking noise); critical ones go out at once.",
    )
    drac_threshold_mps2: float = Field(
        default=3.4,
        gt=0,
        le=10,
        description="Deceleration to avoid the collision (DRAC) above which a rear-end or crossing conflict is worth a "
        "warning, m/s²; the default is the comfortable limit (3.4, GUIDE §3); SUMO's SSM flags 3.0.",
    )
    drac_critical_mps2: float = Field(
        default=5.0,
        gt=0,
        le=15,
        description="DRAC at or above this makes a warning critical whatever its TTC (emergency braking), m/s²; must "
        "be above drac_threshold_mps2.",
    )
    pet_threshold_s: float = Field(
        default=1.0,
        ge=0,
        le=5,
        description="Crossing / vulnerable road user: largest predicted post-encroachment time that still warns, "
        "seconds.",
    )
    red_light_deceleration_mps2: float = Field(
        default=4.5,
        gt=0,
        le=10,
        description="At a yellow, a vehicle not braking that would need more than this to stop at the line is "
        "predicted to run the red, m/s² (drivers brake up to about 4.5 at a yellow onset).",
    )
    stopped_in_junction_s: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="A vehicle standing inside the junction box this long is reported (stopped_in_junction), seconds.",
    )
    max_objects: int = Field(
        default=500,
        ge=2,
        le=5000,
        description="Road users considered per track list in the conflict search, the nearest to the junction centre "
        "first; the rest of an oversized list is left out and counted (bounds time and memory whatever arrives).",
    )
    max_candidate_pairs: int = Field(
        default=20_000,
        ge=1,
        le=1_000_000,
        description="Candidate pairs of road users (close enough now to meet within the horizon) per track list, "
        "the nearest first; more are left out and counted (a busy junction has a few thousand).",
    )
    max_pair_tests: int = Field(
        default=1000,
        ge=1,
        le=100_000,
        description="Pairs through the exact rear-end and crossing tests per track list (those the vectorised "
        "filters keep, about a millisecond each), the nearest first; more are left out and counted (a busy "
        "junction has a few hundred).",
    )

    @model_validator(mode="after")
    def _check_thresholds(self) -> WarningConfig:
        # A critical level at or above the warning level would make every TTC warning critical.
        if self.ttc_critical_s >= self.ttc_warning_s:
            raise FieldError(
                ("ttc_critical_s",),
                f"ttc_critical_s ({self.ttc_critical_s}) must be below ttc_warning_s ({self.ttc_warning_s})",
            )
        # Trajectories end at the horizon, so a longer TTC can never be seen.
        if self.ttc_warning_s > self.horizon_s:
            raise FieldError(
                ("ttc_warning_s",),
                f"ttc_warning_s ({self.ttc_warning_s}) exceeds horizon_s ({self.horizon_s}), the prediction "
                "horizon: no conflict that far ahead is ever predicted",
            )
        if self.drac_critical_mps2 <= self.drac_threshold_mps2:
            raise FieldError(
                ("drac_critical_mps2",),
                f"drac_critical_mps2 ({self.drac_critical_mps2}) must be above drac_threshold_mps2 "
                f"({self.drac_threshold_mps2})",
            )
        return self


class V2XEncodings(Strict):
    """Payload encoding per vehicle-facing message class: this project's JSON schemas, or the ETSI
    ASN.1 UPER message (SPATEM, MAPEM, DENM). Sensor-sharing objects are always JSON."""

    spat: Literal["json", "uper"] = Field(default="json", description="Signal phase and timing: json or uper (SPATEM).")
    map: Literal["json", "uper"] = Field(default="json", description="Intersection geometry: json or uper (MAPEM).")
    warnings: Literal["json", "uper"] = Field(default="json", description="Warnings: json or uper (DENM).")


class V2XConfig(Strict):
    """What the unit sends to vehicles, how often, and how it signs it."""

    spat_rate_hz: float = Field(default=10.0, ge=1, le=50, description="SPaT messages per second.")
    objects_rate_hz: float = Field(
        default=10.0,
        ge=1,
        le=50,
        description="Sensor-sharing messages (all tracked objects, SDSM / CPM / RSM style) per second.",
    )
    map_period_s: float = Field(
        default=10.0,
        ge=1,
        le=240,
        description="MAP is retained and re-sent this often, seconds, so late subscribers get a fresh signature.",
    )
    max_spat_age_s: float = Field(
        default=0.3,
        ge=0.05,
        le=2.0,
        description="Oldest signal state the unit signs a SPaT for, seconds from the controller's decision to the "
        "V2X stage's publish time; an older state (a backlog, a stalled bus) is not sent at all and counted.",
    )
    signing_key: SitePath | None = Field(
        default=None,
        description="Ed25519 private key (PEM, PKCS#8) that signs every V2X message, a path by the site path rule; "
        "none: a key generated on first start in the unit's state dir (see rsu.stages.v2x).",
    )
    state_dir: SitePath | None = Field(
        default=None,
        description="Where the unit keeps its generated key (one sub-folder per unit_id), a path by the site path "
        "rule; none: $RSU_STATE_DIR, else $XDG_STATE_HOME/rsu-edge, else ~/.local/state/rsu-edge.",
    )
    station_id: int | None = Field(
        default=None,
        ge=0,
        le=4294967295,
        description="ITS StationID of the unit; none: derived from the unit id (stable).",
    )
    intersection_numeric_id: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="J2735 IntersectionID; none: derived from the unit id (stable).",
    )
    encodings: V2XEncodings = Field(default=V2XEncodings(), description="Payload encoding per message class.")
    topic_layout: Literal["default", "china"] = Field(
        default="default",
        description="default: {prefix}/{unit}/v2x/{spat|map|warnings|objects}; china: "
        "V2X/RSU/{unit}/{SPAT|MAP|RSI|RSM}/UP.",
    )
    warnings: WarningConfig = Field(default=WarningConfig(), description="Collision and violation warnings.")
    realtime_priority: int = Field(
        default=0,
        ge=0,
        le=99,
        description="SCHED_RR priority (1-99) of the warning path (the V2X stage and the perception stage's network "
        "thread, never the detector); 0: normal scheduling. Needs CAP_SYS_NICE; see deploy/systemd.",
    )


class MqttConfig(Strict):
    """An MQTT broker connection."""

    host: str = Field(default="127.0.0.1", description="Broker host name or address.")
    port: int = Field(default=1883, ge=1, le=65535, description="Broker TCP port.")
    topic_prefix: str = Field(default="rsu", description="First level of every topic the unit publishes.")
    username: str | None = Field(default=None, description="User name; none: anonymous.")
    password: str | None = Field(default=None, description="Password for username.")
    tls: bool = Field(
        default=False,
        description="Connect over TLS: the broker's certificate must be signed by a trusted CA (ca_file or the "
        "system store) and name host (see check_hostname).",
    )
    ca_file: SitePath | None = Field(
        default=None,
        description="With tls: a PEM file of the CA certificates to trust instead of the system store (a private "
        "CA for the broker); none: the system store. A path by the site path rule.",
    )
    cert_file: SitePath | None = Field(
        default=None,
        description="With tls: this client's certificate (PEM, may include its chain), for a broker that requires "
        "client certificates (mosquitto require_certificate); needs key_file. A path by the site path rule.",
    )
    key_file: SitePath | None = Field(
        default=None,
        description="With tls: the private key of cert_file (PEM, unencrypted; keep it mode 0600); needs "
        "cert_file. A path by the site path rule.",
    )
    check_hostname: bool = Field(
        default=True,
        description="With tls: refuse a broker whose certificate does not name host. false is unsafe (any "
        "certificate from a trusted CA is accepted, so another host holding one can impersonate the broker): "
        "only for a test broker whose certificate cannot name the address used.",
    )
    keepalive_s: int = Field(
        default=10, ge=2, le=600, description="MQTT keep-alive, seconds (how soon a dead link is noticed)."
    )
    credentials_dir: SitePath | None = Field(
        default=None,
        description="Unit's broker only: the folder of per-stage logins written by `rsu broker-config` (one "
        "`<unit_id>-<stage>.password` file each, mode 0600); each stage, the supervisor and the unit's monitor "
        "log in as `<unit_id>-<stage>` with its own password instead of username/password. A path by the site "
        "path rule.",
    )
    allow_open_bus: bool = Field(
        default=False,
        description="Unit's broker only: start even when an anonymous client can publish the unit's local topics "
        "(the preflight check refuses such a broker otherwise; `--allow-open-bus` and RSU_ALLOW_OPEN_BUS=1 do the "
        "same). For development only: anyone on the broker can then forge signal states and tracks.",
    )

    @model_validator(mode="after")
    def _credentials_exclude_a_shared_login(self) -> MqttConfig:
        if self.credentials_dir is not None and (self.username is not None or self.password is not None):
            raise FieldError(
                ("credentials_dir",),
                "credentials_dir gives every stage its own login: remove username and password (or credentials_dir)",
            )
        return self

    @model_validator(mode="after")
    def _tls_options_are_consistent(self) -> MqttConfig:
        if (self.cert_file is None) != (self.key_file is None):
            given, missing = ("cert_file", "key_file") if self.cert_file is not None else ("key_file", "cert_file")
            raise FieldError(
                (missing,),
                f"{given} is set but {missing} is not: a client certificate needs both cert_file and key_file",
            )
        if not self.tls:
            # Without tls these would be silently ignored and the connection would go in plain text.
            ignored = [name for name in ("ca_file", "cert_file", "key_file") if getattr(self, name) is not None]
            if not self.check_hostname:
                ignored.append("check_hostname")
            if ignored:
                verb = "applies" if len(ignored) == 1 else "apply"
                raise FieldError(
                    ("tls",), f"{', '.join(ignored)} {verb} only to TLS connections: set tls: true (or remove them)"
                )
        return self


class RedisConfig(Strict):
    """The local Redis that holds the unit's shared state."""

    url: str = Field(default="redis://127.0.0.1:6379/0", description="Redis URL (redis://host:port/db).")


# Sealed beside a base interval of whole minutes that divide it (ATSPM's 15-minute bins).
LONG_INTERVAL_S = 900.0


class UplinkConfig(Strict):
    """Aggregated counts and signal performance sent to the traffic centre."""

    interval_s: float = Field(
        default=60.0,
        ge=1,
        le=3600,
        description="The shortest (base) aggregation interval, seconds; with intervals_s set, their shortest.",
    )
    intervals_s: list[float] | None = Field(
        default=None,
        min_length=1,
        max_length=4,
        description="Every interval length sealed and sent, seconds, each a multiple of the shortest; none: "
        "interval_s plus 900 when interval_s is whole minutes dividing 900 (60 gives [60, 900]), else interval_s.",
    )
    mqtt: MqttConfig | None = Field(default=None, description="Centre broker; none: the unit's own broker.")
    topic_prefix: str = Field(default="centre", description="First topic level of the uplink messages.")
    outbox_max_records: int = Field(
        default=100_000,
        ge=10,
        le=10_000_000,
        description="Most records kept while the centre is unreachable; the oldest go first.",
    )
    min_vehicles_for_statistics: int = Field(
        default=3,
        ge=1,
        le=100,
        description="k-anonymity: a lane-interval's speed and headway statistics are sent only when at least "
        "this many vehicles contributed to them, else null (one vehicle's mean speed is that vehicle's speed).",
    )

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
            raise FieldError(("intervals_s",), f"uplink.intervals_s {self.intervals_s} lists a length twice")
        shortest = min(self.intervals_s)
        if self.interval_s != shortest:
            raise FieldError(
                ("interval_s",),
                f"uplink.interval_s ({self.interval_s}) must be the shortest of intervals_s {self.intervals_s}",
            )
        for index, length in enumerate(self.intervals_s):
            if not 1 <= length <= 86_400:
                raise FieldError(("intervals_s", index), f"uplink.intervals_s: {length} is outside 1..86400 s")
            if abs(length / shortest - round(length / shortest)) > 1e-9:
                raise FieldError(
                    ("intervals_s", index),
                    f"uplink.intervals_s: {length} is not a multiple of the shortest, {shortest}",
                )
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

    host: str = Field(
        default="127.0.0.1",
        description="Address the page listens on; 127.0.0.1 keeps it on the box, the box's LAN address opens it to "
        "a laptop on site.",
    )
    port: int = Field(default=8080, ge=1, le=65535, description="TCP port of the page.")
    preview_fps: float = Field(
        default=4.0,
        gt=0,
        le=5,
        description="Annotated camera preview (video cameras only, local-only topic), frames per second.",
    )
    preview_width_px: int = Field(default=960, ge=160, le=3840, description="Width of the preview frames, pixels.")


class SimulationConfig(Strict):
    """The embedded SUMO world used when no real camera is configured."""

    # Revalidated when used as the site's default, so its default paths also follow the path rule.
    model_config = ConfigDict(revalidate_instances="always")

    network: SitePath = Field(
        default="sumo/intersection.net.xml",
        validate_default=True,
        description="SUMO network file (.net.xml), a path by the site path rule.",
    )
    routes: SitePath = Field(
        default="sumo/demand.rou.xml",
        validate_default=True,
        description="SUMO route (demand) file (.rou.xml), a path by the site path rule.",
    )
    step_s: float = Field(default=0.1, gt=0.01, le=1.0, description="Simulation step, seconds.")
    traffic_light_id: str = Field(default="C", description="Id of the junction's traffic light in the SUMO network.")
    seed: int = Field(default=42, description="SUMO's random seed (same seed, same traffic).")
    demand_scale: float = Field(default=1.0, gt=0, le=5, description="Scales the demand in the route file.")


class PriorityRequester(Strict):
    """One vehicle (or fleet key) allowed to ask for priority, and what it may ask for."""

    id: Identifier = Field(description="Requester id, unique; requests name it.")
    public_key: SitePath = Field(
        min_length=1,
        description="Its Ed25519 public key (PEM), a path by the site path rule; read when the controller starts.",
    )
    kinds: list[PriorityKind] = Field(
        min_length=1, max_length=2, description="What it may ask for: emergency (preemption) and/or transit."
    )


class PreemptionConfig(Strict):
    """Emergency vehicle preemption."""

    max_dwell_s: float = Field(
        default=90.0,
        ge=5.0,
        le=600.0,
        description="Longest the requested stage is held green for one request, seconds; then the unit returns to "
        "normal operation (ATSPM 110) and the request ends.",
    )


class TransitPriorityConfig(Strict):
    """Transit signal priority: bounded green extension or early green."""

    max_extension_s: float = Field(
        default=10.0,
        ge=0.0,
        le=30.0,
        description="Longest a bus's green is held beyond the moment the strategy would end it, seconds.",
    )
    max_early_green_s: float = Field(
        default=10.0,
        ge=0.0,
        le=60.0,
        description="Most a conflicting stage's green is shortened, seconds (never below its min green and "
        "pedestrian service).",
    )


class PriorityConfig(Strict):
    """Emergency preemption and transit priority requests over MQTT (signed, validated, rate limited)."""

    requesters: list[PriorityRequester] = Field(
        default_factory=list, max_length=1000, description="The vehicles allowed to ask; none: priority is off."
    )
    signature_window_s: float = Field(
        default=2.0,
        gt=0.0,
        le=30.0,
        description="Accepted difference between a request's signing time and the unit's clock, seconds.",
    )
    rate_per_min: float = Field(
        default=12.0, gt=0.0, le=600.0, description="Per requester token bucket: sustained requests per minute."
    )
    burst: int = Field(
        default=4, ge=1, le=100, description="Per requester token bucket: requests allowed above the rate."
    )
    grace_after_arrival_s: float = Field(
        default=15.0,
        ge=1.0,
        le=300.0,
        description="A check-in without valid_until_s holds this long after its estimated arrival unless renewed, "
        "seconds.",
    )
    max_request_s: float = Field(
        default=300.0,
        ge=10.0,
        le=3600.0,
        description="Longest any request stays checked in without a renewal, seconds.",
    )
    max_active_requests: int = Field(default=16, ge=1, le=256, description="Most requests checked in at once.")
    preemption: PreemptionConfig = Field(default=PreemptionConfig(), description="Emergency vehicle preemption.")
    transit: TransitPriorityConfig = Field(default=TransitPriorityConfig(), description="Transit signal priority.")

    @model_validator(mode="after")
    def _check_requesters(self) -> PriorityConfig:
        ids = [requester.id for requester in self.requesters]
        repeated = sorted({identifier for identifier in ids if ids.count(identifier) > 1})
        if repeated:
            second_use = next(index for index, identifier in enumerate(ids) if identifier in ids[:index])
            raise FieldError(("requesters", second_use, "id"), f"priority.requesters: ids {repeated} are listed twice")
        return self


class CabinetConfig(Strict):
    """How to reach the cabinet's controller and where the site's signal groups live in it.

    Vehicle groups map to their ``nema_phase`` unless ``vehicle_phases`` says otherwise; a
    pedestrian group maps to the phase whose pedestrian outputs drive it; a protected/permissive
    left may also map to the overlap that shows its flashing yellow arrow.
    """

    host: str = Field(min_length=1, description="The controller's IP address or host name.")
    port: int = Field(default=161, ge=1, le=65535, description="SNMP UDP port.")
    community: str = Field(default="public", min_length=1, max_length=64, description="SNMP v1/v2c community.")
    snmp_version: Literal[1, 2] = Field(default=2, description="1 for SNMPv1, 2 for v2c (v3 is not supported yet).")
    timeout_s: float = Field(default=0.2, gt=0, le=10, description="Per-request answer timeout, seconds.")
    retries: int = Field(default=1, ge=0, le=5, description="Retries after a timeout.")
    backup_time_s: int = Field(
        default=5,
        ge=1,
        le=255,
        description="unitBackupTime written at start: with no write for this long the cabinet reverts to its own plan.",
    )
    vehicle_phases: dict[Identifier, int] = Field(
        default_factory=dict, description="Signal group -> NEMA phase, where it differs from the group's nema_phase."
    )
    pedestrian_phases: dict[Identifier, int] = Field(
        default_factory=dict, description="Pedestrian signal group -> the phase whose walk outputs drive it."
    )
    overlaps: dict[Identifier, int] = Field(
        default_factory=dict, description="Permissive-left signal group -> its flashing-yellow-arrow overlap."
    )

    @model_validator(mode="after")
    def _numbers_in_range(self) -> CabinetConfig:
        for name, mapping in (
            ("vehicle_phases", self.vehicle_phases),
            ("pedestrian_phases", self.pedestrian_phases),
            ("overlaps", self.overlaps),
        ):
            for group_id, number in mapping.items():
                if not 1 <= number <= 16:
                    raise ValueError(f"cabinet.{name}[{group_id}] = {number}: phases and overlaps are 1-16")
        return self


class SiteConfig(Strict):
    """One intersection: its geometry, signals, cameras and the unit's services."""

    schema_version: Literal[1] = Field(default=1, description="Version of this site file format.")
    unit_id: Identifier = Field(description="The unit's id: in every topic, message and client id; unique per unit.")
    name: str = Field(default="", description="Human-readable intersection name.")
    reference: GeoReference | None = Field(
        default=None,
        description="WGS-84 origin of the local frame; required to run the unit (MAP, SPaT, warnings), not for "
        "signal-only library use.",
    )
    approaches: list[Approach] = Field(min_length=1, description="The roads entering the junction.")
    crosswalks: list[Crosswalk] = Field(default_factory=list, description="Pedestrian crossings.")
    counting_lines: list[CountingLine] = Field(default_factory=list, description="Virtual lines that count traffic.")
    signal_groups: list[SignalGroup] = Field(min_length=2, description="Signal groups and their timings.")
    signal: SignalSettings = Field(default=SignalSettings(), description="Site-wide signal settings.")
    conflicts: list[tuple[Identifier, Identifier]] = Field(
        default_factory=list,
        description="Pairs of signal group ids that must never be green at the same time. Empty: derived from the "
        "vehicle groups' NEMA phases 1-8 (dual ring, barrier between 1/2/5/6 and 3/4/7/8); listed: every derived "
        "pair must be among them.",
    )
    controller: ControllerConfig = Field(description="The signal controller.")
    cameras: list[CameraConfig] = Field(
        default_factory=list,
        description="The cameras (or the simulated one); at least one to run the unit, none for signal-only library "
        "use.",
    )
    tracking: TrackingConfig = Field(default=TrackingConfig(), description="Multi-object tracking.")
    v2x: V2XConfig = Field(default=V2XConfig(), description="Messages to vehicles.")
    mqtt: MqttConfig = Field(default=MqttConfig(), description="The unit's own MQTT broker.")
    redis: RedisConfig = Field(default=RedisConfig(), description="The unit's Redis.")
    uplink: UplinkConfig = Field(default=UplinkConfig(), description="Aggregates to the traffic centre.")
    # validate_default: the default section's paths are resolved against the site folder like written ones.
    simulation: SimulationConfig = Field(
        default_factory=SimulationConfig, validate_default=True, description="The embedded SUMO world."
    )
    web: WebConfig = Field(default=WebConfig(), description="The local web page.")
    priority: PriorityConfig = Field(default=PriorityConfig(), description="Preemption and transit priority.")
    cabinet: CabinetConfig | None = Field(
        default=None,
        description="A field cabinet driven over NTCIP 1202; absent: the unit drives its own (or simulated) heads.",
    )

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

    def green_bounds_s(self, group: SignalGroup) -> tuple[float, float]:
        """(min green, max green) of a group: its own where set, else the site default, else the field default."""
        defaults = self.signal.defaults
        minimum = group.min_green_s
        if "min_green_s" not in group.model_fields_set and defaults.min_green_s is not None:
            minimum = defaults.min_green_s
        maximum = group.max_green_s
        if "max_green_s" not in group.model_fields_set and defaults.max_green_s is not None:
            maximum = defaults.max_green_s
        return minimum, maximum

    def configured_yellow_s(self, group: SignalGroup) -> float | None:
        return group.yellow_s if group.yellow_s is not None else self.signal.defaults.yellow_s

    def configured_all_red_s(self, group: SignalGroup) -> float | None:
        return group.all_red_s if group.all_red_s is not None else self.signal.defaults.all_red_s

    @property
    def is_simulated(self) -> bool:
        return bool(self.cameras) and all(camera.source is CameraSource.SIMULATION for camera in self.cameras)

    @property
    def geo_reference(self) -> GeoReference:
        """The reference, for code that needs one (MAP, positions in WGS-84); refused clearly without it."""
        if self.reference is None:
            raise ValueError(
                f"site '{self.unit_id}' has no reference (its WGS-84 origin); set reference: {{lat, lon}} in the "
                "site file"
            )
        return self.reference

    def unit_requirements_missing(self) -> list[str]:
        """What the running unit needs that this site leaves out (empty: it can run)."""
        missing = []
        if self.reference is None:
            missing.append("reference (the WGS-84 origin, for MAP, SPaT and warnings)")
        if not self.cameras:
            missing.append("cameras (at least one, or the simulated one)")
        return missing

    @model_validator(mode="after")
    def _check_references(self) -> SiteConfig:
        groups = {group.id: group for group in self.signal_groups}
        # (approach, location of the lane in the file, lane) for every lane.
        located_lanes: list[tuple[Approach, FieldLocation, Lane]] = [
            (approach, ("approaches", a, "lanes", i), lane)
            for a, approach in enumerate(self.approaches)
            for i, lane in enumerate(approach.lanes)
        ]
        _require_unique("signal_groups", [(("signal_groups", i), g.id) for i, g in enumerate(self.signal_groups)])
        _require_unique("lanes", [(location, lane.id) for _, location, lane in located_lanes])
        _require_unique("approaches", [(("approaches", i), a.id) for i, a in enumerate(self.approaches)])
        _require_unique("cameras", [(("cameras", i), c.id) for i, c in enumerate(self.cameras)])
        _require_unique("crosswalks", [(("crosswalks", i), c.id) for i, c in enumerate(self.crosswalks)])
        _require_unique("counting_lines", [(("counting_lines", i), c.id) for i, c in enumerate(self.counting_lines)])
        _require_unique(
            "controller.stages", [(("controller", "stages", i), s.id) for i, s in enumerate(self.controller.stages)]
        )
        for approach, lane_location, lane in located_lanes:
            location = (*lane_location, "signal_group")
            group = groups.get(lane.signal_group)
            if group is None:
                raise FieldError(
                    location,
                    f"approaches[{approach.id}].lanes[{lane.id}].signal_group "
                    f"'{lane.signal_group}' is not a defined signal group",
                )
            if group.kind is SignalGroupKind.PEDESTRIAN:
                raise FieldError(
                    location,
                    f"approaches[{approach.id}].lanes[{lane.id}].signal_group '{lane.signal_group}' is a pedestrian "
                    "group; a lane is released by a vehicle group",
                )
        for index, crosswalk in enumerate(self.crosswalks):
            if crosswalk.signal_group is None:
                continue
            location = ("crosswalks", index, "signal_group")
            group = groups.get(crosswalk.signal_group)
            if group is None:
                raise FieldError(
                    location, f"crosswalks[{crosswalk.id}].signal_group '{crosswalk.signal_group}' is not defined"
                )
            if group.kind is not SignalGroupKind.PEDESTRIAN:
                raise FieldError(
                    location,
                    f"crosswalks[{crosswalk.id}].signal_group '{crosswalk.signal_group}' is a vehicle group; "
                    "a crosswalk is served by a pedestrian group",
                )
        for index, group in enumerate(self.signal_groups):
            minimum, maximum = self.green_bounds_s(group)
            if maximum < minimum:
                raise FieldError(
                    ("signal_groups", index, "max_green_s"),
                    f"signal_groups[{group.id}]: max green {maximum} s is below min green {minimum} s "
                    "(with signal.defaults applied)",
                )
        lane_ids = {lane.id for _, _, lane in located_lanes}
        for lane_id in self.controller.design_flows_vph:
            if lane_id not in lane_ids:
                raise FieldError(
                    ("controller", "design_flows_vph", lane_id),
                    f"controller.design_flows_vph: '{lane_id}' is not a defined lane",
                )
        approach_ids = {approach.id for approach in self.approaches}
        for index, line in enumerate(self.counting_lines):
            if line.approach is not None and line.approach not in approach_ids:
                raise FieldError(
                    ("counting_lines", index, "approach"),
                    f"counting_lines[{line.id}].approach '{line.approach}' is not a defined approach "
                    f"(approaches: {sorted(approach_ids)})",
                )
        for index, (a, b) in enumerate(self.conflicts):
            for position, group_id in enumerate((a, b)):
                if group_id not in groups:
                    raise FieldError(
                        ("conflicts", index, position), f"conflicts: '{group_id}' is not a defined signal group"
                    )
            if a == b:
                raise FieldError(("conflicts", index), f"conflicts: '{a}' cannot conflict with itself")
        self._check_nema_phases()
        self._check_nema_phases()
        conflict_set = {frozenset(pair) for pair in self.conflicts}
        served: set[str] = set()
        for index, stage in enumerate(self.controller.stages):
            where = ("controller", "stages", index, "signal_groups")
            for position, group_id in enumerate(stage.signal_groups):
                if group_id not in groups:
                    raise FieldError(
                        (*where, position), f"controller.stages[{stage.id}]: '{group_id}' is not a defined signal group"
                    )
                if group_id in stage.signal_groups[:position]:
                    raise FieldError((*where, position), f"controller.stages[{stage.id}] lists '{group_id}' twice")
            served.update(stage.signal_groups)
            for i, a in enumerate(stage.signal_groups):
                for b in stage.signal_groups[i + 1 :]:
                    if frozenset((a, b)) in conflict_set:
                        raise FieldError(
                            where,
                            f"controller.stages[{stage.id}] makes conflicting groups '{a}' and '{b}' green together",
                        )
        unserved = set(groups) - served
        if unserved:
            raise FieldError(
                ("controller", "stages"), f"controller.stages never serve signal groups {sorted(unserved)}"
            )
        self._check_permissive_lefts(conflict_set)
        return self

    def _check_nema_phases(self) -> None:
        """Duplicate phase numbers are refused; with no conflicts listed they are derived from the
        dual ring, and listed ones must include every derived pair (a missing one is refused)."""
        numbered: dict[int, str] = {}
        for index, group in enumerate(self.signal_groups):
            if group.nema_phase is None:
                continue
            if group.nema_phase in numbered:
                raise FieldError(
                    ("signal_groups", index, "nema_phase"),
                    f"signal_groups[{group.id}].nema_phase {group.nema_phase} is also "
                    f"signal group '{numbered[group.nema_phase]}''s phase",
                )
            numbered[group.nema_phase] = group.id
        derived = nema_conflicts(self.signal_groups)
        if not self.conflicts:
            if not derived:
                raise FieldError(
                    ("conflicts",),
                    "conflicts: none listed and none derivable (no two vehicle groups with NEMA phases 1-8)",
                )
            unnumbered = [g.id for g in self.signal_groups if not _in_dual_ring(g)]
            if unnumbered:
                raise FieldError(
                    ("conflicts",),
                    f"conflicts: none listed, and groups {unnumbered} have no NEMA phase 1-8 (or are pedestrian) "
                    "to derive theirs from; list the conflicts",
                )
            # Frozen model: the derived default is filled in once, here, before anything reads it.
            object.__setattr__(self, "conflicts", derived)
            return
        declared = {frozenset(pair) for pair in self.conflicts}
        for a, b in derived:
            if frozenset((a, b)) not in declared:
                phase_a, phase_b = self.signal_group(a).nema_phase, self.signal_group(b).nema_phase
                raise FieldError(
                    ("conflicts",),
                    f"conflicts: '{a}' (NEMA {phase_a}) and '{b}' (NEMA {phase_b}) conflict in the dual ring "
                    "but are not listed",
                )

    def _check_permissive_lefts(self, conflict_set: set[frozenset[str]]) -> None:
        """A permissive left runs only beside its partner's green and clears with it, so every other
        vehicle group it crosses must also cross the partner (and wait for the partner's clearance).
        That its yellow and all-red fit within the partner's is checked on the resolved timings
        (``signal_control.phasing``)."""
        groups = {group.id: group for group in self.signal_groups}
        for index, group in enumerate(self.signal_groups):
            partner_id = group.permissive_with
            if partner_id is None:
                continue
            location = ("signal_groups", index, "permissive_with")
            where = f"signal_groups[{group.id}].permissive_with"
            partner = groups.get(partner_id)
            if partner is None:
                raise FieldError(location, f"{where} '{partner_id}' is not a defined signal group")
            if SignalGroupKind.PEDESTRIAN in (group.kind, partner.kind):
                raise FieldError(location, f"{where}: permissive turns are for vehicle groups, not pedestrian ones")
            if frozenset((group.id, partner_id)) not in conflict_set:
                raise FieldError(
                    location,
                    f"{where}: '{group.id}' and '{partner_id}' must be declared conflicting "
                    "(the protected turn crosses the opposing through it gives way to)",
                )
            for pair in conflict_set:
                if group.id not in pair:
                    continue
                (other_id,) = pair - {group.id}
                other = groups[other_id]
                if other_id == partner_id or other.kind is SignalGroupKind.PEDESTRIAN:
                    continue
                if frozenset((other_id, partner_id)) not in conflict_set:
                    raise FieldError(
                        location,
                        f"{where}: '{group.id}' crosses '{other_id}', which does not conflict with '{partner_id}'; "
                        f"the permissive turn clears with '{partner_id}', so '{other_id}' could start too early",
                    )


# The standard dual ring: ring 1 runs 1-2 | 3-4, ring 2 runs 5-6 | 7-8, the barrier between.
_RING_OF_PHASE = {1: 1, 2: 1, 3: 1, 4: 1, 5: 2, 6: 2, 7: 2, 8: 2}
_BARRIER_SIDE_OF_PHASE = {1: 0, 2: 0, 5: 0, 6: 0, 3: 1, 4: 1, 7: 1, 8: 1}


def _in_dual_ring(group: SignalGroup) -> bool:
    return group.kind is SignalGroupKind.VEHICLE and group.nema_phase in _RING_OF_PHASE


def nema_phases_conflict(phase_a: int, phase_b: int) -> bool:
    """Two vehicle phases of the dual ring conflict when they share a ring (served in turn: a
    left and its opposing through, 1-2, 5-6) or stand on opposite sides of the barrier."""
    same_ring = _RING_OF_PHASE[phase_a] == _RING_OF_PHASE[phase_b]
    across_barrier = _BARRIER_SIDE_OF_PHASE[phase_a] != _BARRIER_SIDE_OF_PHASE[phase_b]
    return same_ring or across_barrier


def nema_conflicts(groups: list[SignalGroup]) -> list[tuple[str, str]]:
    """The conflict pairs among vehicle groups numbered 1-8, in file order.

    A protected/permissive (FYA) left keeps its own phase's conflicts: it conflicts with the
    opposing through it gives way to (its ring-mate), as ``permissive_with`` requires."""
    ringed = [g for g in groups if _in_dual_ring(g)]
    pairs: list[tuple[str, str]] = []
    for i, a in enumerate(ringed):
        for b in ringed[i + 1 :]:
            assert a.nema_phase is not None and b.nema_phase is not None  # _in_dual_ring
            if nema_phases_conflict(a.nema_phase, b.nema_phase):
                pairs.append((a.id, b.id))
    return pairs


def _require_unique(field: str, located_ids: list[tuple[FieldLocation, str]]) -> None:
    """Each id once; a repeat is reported at the id field of its second use."""
    seen: set[str] = set()
    for location, identifier in located_ids:
        if identifier in seen:
            raise FieldError((*location, "id"), f"{field}: id '{identifier}' is used twice")
        seen.add(identifier)
