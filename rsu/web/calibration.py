"""The calibration helper's logic: fit a camera's homography, and save calibration and geometry edits.

Saving edits the site file in place with a round-trip YAML parser, so the operator's comments,
key order and flow style survive. The edited document is validated by the site config model (and
the new points by the homography fit) before anything is written; the previous file is kept as a
timestamped backup beside it, and the new one replaces it atomically.
"""

from __future__ import annotations

import io
import json
import math
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from rsu.perception.homography import Homography, HomographyError
from rsu_contracts.config import ConfigError, SiteConfig, parse_site_config
from rsu_contracts.config.model import CalibrationPoint, Point
from rsu_contracts.enums import CameraSource

# Backups kept per site file; older ones are removed so a busy calibration day cannot fill the disk.
MAX_BACKUPS = 20
BACKUP_INFIX = ".bak-"


class CalibrationError(ValueError):
    """The edit cannot be saved; the message says which field or point is wrong."""


@dataclass(frozen=True)
class CalibrationFit:
    image_to_ground: list[list[float]]
    ground_to_image: list[list[float]]
    reprojection_error_m: float
    # Per calibration point: distance in metres between its ground point and its pixel mapped to the ground.
    point_errors_m: list[float]
    mirrored: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "image_to_ground": self.image_to_ground,
            "ground_to_image": self.ground_to_image,
            "reprojection_error_m": self.reprojection_error_m,
            "point_errors_m": self.point_errors_m,
            "mirrored": self.mirrored,
        }


def fit_calibration(points: Sequence[CalibrationPoint]) -> CalibrationFit:
    """The homography of the points and how well it fits them. Raises HomographyError."""
    homography = Homography.from_points(points)
    mapped = homography.image_to_ground(homography.image_points_px)
    errors = [
        float(math.hypot(mx - gx, my - gy))
        for (mx, my), (gx, gy) in zip(mapped, homography.ground_points_m, strict=True)
    ]
    return CalibrationFit(
        image_to_ground=homography.image_to_ground_matrix.tolist(),
        ground_to_image=homography.ground_to_image_matrix.tolist(),
        reprojection_error_m=homography.reprojection_error_m(),
        point_errors_m=errors,
        mirrored=homography.is_mirrored,
    )


class _Edit(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LaneEdit(_Edit):
    """A lane's new centre line (its last point on the stop bar); approach etc. only for a new lane."""

    id: str
    centerline_m: list[Point] = Field(min_length=2)
    approach: str | None = None
    signal_group: str | None = None
    movements: list[str] | None = None
    width_m: float | None = None


class CrosswalkEdit(_Edit):
    id: str
    polygon_m: list[Point] = Field(min_length=3)
    length_m: float | None = None
    signal_group: str | None = None


class CountingLineEdit(_Edit):
    id: str
    line_m: tuple[Point, Point]
    approach: str | None = None


class GeometryEdit(_Edit):
    lanes: list[LaneEdit] = Field(default_factory=list)
    crosswalks: list[CrosswalkEdit] = Field(default_factory=list)
    counting_lines: list[CountingLineEdit] = Field(default_factory=list)
    remove_crosswalks: list[str] = Field(default_factory=list)
    remove_counting_lines: list[str] = Field(default_factory=list)


class CalibrationSave(_Edit):
    camera_id: str
    points: list[CalibrationPoint] = Field(min_length=4)
    geometry: GeometryEdit = Field(default_factory=GeometryEdit)


@dataclass(frozen=True)
class SaveResult:
    path: Path
    backup_path: Path
    site: SiteConfig
    fit: CalibrationFit


def _yaml() -> YAML:
    yaml = YAML()  # round-trip mode: comments, order and flow style are kept
    yaml.preserve_quotes = True
    # Site files indent lists under their key ("  - "), as the shipped ones do; flow mappings stay on one line.
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 4096
    return yaml


def _flow_seq(values: Sequence[Any]) -> CommentedSeq:
    seq = CommentedSeq(values)
    seq.fa.set_flow_style()
    return seq


def _flow_map(values: dict[str, Any]) -> CommentedMap:
    mapping = CommentedMap(values)
    mapping.fa.set_flow_style()
    return mapping


def _point(point: Point, digits: int) -> CommentedSeq:
    return _flow_seq([round(float(point[0]), digits), round(float(point[1]), digits)])


def _points(points: Sequence[Point]) -> CommentedSeq:
    return _flow_seq([_point(p, 3) for p in points])


def _find(items: Any, item_id: str) -> Any:
    for item in items or []:
        if isinstance(item, dict) and str(item.get("id")) == item_id:
            return item
    return None


def _apply_calibration(document: Any, camera_id: str, points: Sequence[CalibrationPoint]) -> None:
    camera = _find(document.get("cameras"), camera_id)
    if camera is None:
        raise CalibrationError(f"cameras: no camera with id '{camera_id}' in the site file")
    camera["calibration"] = CommentedSeq(
        [_flow_map({"image_px": _point(p.image_px, 1), "ground_m": _point(p.ground_m, 3)}) for p in points]
    )


def _apply_lane(document: Any, edit: LaneEdit) -> None:
    for approach in document.get("approaches") or []:
        lane = _find(approach.get("lanes"), edit.id)
        if lane is not None:
            lane["centerline_m"] = _points(edit.centerline_m)
            if edit.width_m is not None:
                lane["width_m"] = round(edit.width_m, 2)
            return
    if not (edit.approach and edit.signal_group and edit.movements):
        raise CalibrationError(f"lanes[{edit.id}]: a new lane needs approach, signal_group and movements")
    approach = _find(document.get("approaches"), edit.approach)
    if approach is None:
        raise CalibrationError(f"lanes[{edit.id}]: approach '{edit.approach}' does not exist")
    lane_fields: dict[str, Any] = {
        "id": edit.id,
        "movements": _flow_seq(edit.movements),
        "signal_group": edit.signal_group,
    }
    if edit.width_m is not None:
        lane_fields["width_m"] = round(edit.width_m, 2)
    lane_fields["centerline_m"] = _points(edit.centerline_m)
    approach.setdefault("lanes", CommentedSeq()).append(_flow_map(lane_fields))


def _longest_edge_m(polygon: Sequence[Point]) -> float:
    return max(math.dist(a, b) for a, b in zip(polygon, [*polygon[1:], polygon[0]], strict=True))


def _section(document: Any, key: str, before: Sequence[str]) -> Any:
    """A top-level list, created (just before the first of `before` that exists) if the file has none."""
    if key not in document:
        keys = list(document.keys())
        position = next((keys.index(name) for name in before if name in keys), len(keys))
        document.insert(position, key, CommentedSeq())
    return document[key]


def _apply_crosswalk(document: Any, edit: CrosswalkEdit) -> None:
    crosswalks = _section(document, "crosswalks", ("counting_lines", "signal_groups"))
    crosswalk = _find(crosswalks, edit.id)
    if crosswalk is None:
        # A crossing runs across the road: for a drawn rectangle that is its longer side.
        length = edit.length_m if edit.length_m is not None else round(_longest_edge_m(edit.polygon_m), 1)
        fields: dict[str, Any] = {"id": edit.id}
        if edit.signal_group:
            fields["signal_group"] = edit.signal_group
        fields["length_m"] = length
        fields["polygon_m"] = _points(edit.polygon_m)
        crosswalks.append(_flow_map(fields))
        return
    crosswalk["polygon_m"] = _points(edit.polygon_m)
    if edit.length_m is not None:
        crosswalk["length_m"] = round(edit.length_m, 2)
    if edit.signal_group is not None:
        crosswalk["signal_group"] = edit.signal_group or None


def _apply_counting_line(document: Any, edit: CountingLineEdit) -> None:
    lines = _section(document, "counting_lines", ("signal_groups",))
    line = _find(lines, edit.id)
    if line is None:
        fields: dict[str, Any] = {"id": edit.id}
        if edit.approach:
            fields["approach"] = edit.approach
        fields["line_m"] = _points(list(edit.line_m))
        lines.append(_flow_map(fields))
        return
    line["line_m"] = _points(list(edit.line_m))
    if edit.approach is not None:
        line["approach"] = edit.approach or None


def _remove(document: Any, key: str, ids: Sequence[str]) -> None:
    items = document.get(key)
    for item_id in ids:
        item = _find(items, item_id)
        if item is None:
            raise CalibrationError(f"{key}: no entry with id '{item_id}' to remove")
        items.remove(item)


def apply_edit(document: Any, edit: CalibrationSave) -> None:
    """Apply an edit to a round-trip YAML document of a site file (in place)."""
    if not isinstance(document, dict):
        raise CalibrationError("the site file does not hold a mapping at the top level")
    _apply_calibration(document, edit.camera_id, edit.points)
    for lane in edit.geometry.lanes:
        _apply_lane(document, lane)
    for crosswalk in edit.geometry.crosswalks:
        _apply_crosswalk(document, crosswalk)
    for line in edit.geometry.counting_lines:
        _apply_counting_line(document, line)
    _remove(document, "crosswalks", edit.geometry.remove_crosswalks)
    _remove(document, "counting_lines", edit.geometry.remove_counting_lines)


def _plain(document: Any) -> dict[str, Any]:
    """The round-trip document as plain dicts and lists, the way yaml.safe_load would give it."""
    plain = json.loads(json.dumps(document))
    if not isinstance(plain, dict):
        raise CalibrationError("the site file does not hold a mapping at the top level")
    return plain


def save_calibration(site_path: str | Path, edit: CalibrationSave, now: datetime | None = None) -> SaveResult:
    """Validate and write an edit into the site file, keeping a backup. Raises CalibrationError."""
    path = Path(site_path)
    try:
        fit = fit_calibration(edit.points)
    except HomographyError as exc:
        raise CalibrationError(f"cameras[{edit.camera_id}].calibration: {exc}") from None
    yaml = _yaml()
    original = path.read_text(encoding="utf-8")
    document = yaml.load(original)
    apply_edit(document, edit)
    try:
        site = parse_site_config(_plain(document), source=str(path), site_dir=path.resolve().parent)
    except ConfigError as exc:
        raise CalibrationError(str(exc)) from None
    camera = next(c for c in site.cameras if c.id == edit.camera_id)
    if camera.source is not CameraSource.VIDEO:
        raise CalibrationError(f"cameras[{edit.camera_id}] is a {camera.source.value} camera: it has no image")
    buffer = io.StringIO()
    yaml.dump(document, buffer)
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S%fZ")
    backup = path.with_name(f"{path.name}{BACKUP_INFIX}{stamp}")
    shutil.copy2(path, backup)
    _write_atomically(path, buffer.getvalue())
    _prune_backups(path)
    return SaveResult(path=path, backup_path=backup, site=site, fit=fit)


def _write_atomically(path: Path, text: str) -> None:
    mode = path.stat().st_mode & 0o7777
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def backups_of(path: Path) -> list[Path]:
    """The site file's backups, oldest first (the timestamp in the name sorts by time)."""
    return sorted(path.parent.glob(f"{path.name}{BACKUP_INFIX}*"))


def _prune_backups(path: Path) -> None:
    for old in backups_of(path)[:-MAX_BACKUPS]:
        old.unlink(missing_ok=True)
