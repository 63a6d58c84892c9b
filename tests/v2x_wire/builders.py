"""Synthetic messages and keys for the wire-layer tests."""

from __future__ import annotations

from pathlib import Path

from rsu.key_files import generate_key_files, signer_from_key_file
from rsu_contracts.enums import RoadUserType
from rsu_contracts.messages import (
    CollisionWarning,
    Participant,
    Severity,
    Spat,
    SpatMovement,
    WarningKind,
    WarningStatus,
)
from v2x.geo import LocalFrame
from v2x.signing import UnitSigner

NOW_S = 1_700_000_123.45
SITE_FRAME = LocalFrame(48.137154, 11.576124)


class FakeClock:
    def __init__(self, now_s: float = NOW_S) -> None:
        self.now_s = now_s

    def __call__(self) -> float:
        return self.now_s


def key_pair(folder: Path, name: str = "unit") -> tuple[Path, Path]:
    private_path, public_path = folder / f"{name}.pem", folder / f"{name}.pub.pem"
    generate_key_files(private_path, public_path)
    return private_path, public_path


def signer(folder: Path, unit_id: str = "rsu-test", clock: FakeClock | None = None) -> tuple[UnitSigner, Path]:
    private_path, public_path = key_pair(folder)
    return signer_from_key_file(private_path, unit_id, clock or FakeClock()), public_path


def spat(unit_id: str = "rsu-test", now_s: float = NOW_S, seq: int = 7) -> Spat:
    return Spat(
        unit_id=unit_id,
        seq=seq,
        capture_time_s=now_s - 0.05,
        publish_time_s=now_s,
        intersection_id=unit_id,
        movements=[
            SpatMovement(
                signal_group="2",
                event_state="protected-Movement-Allowed",
                min_end_time_s=now_s + 3.0,
                max_end_time_s=now_s + 25.0,
                likely_time_s=now_s + 8.3,
                time_to_change_s=8.3,
            ),
            SpatMovement(
                signal_group="4",
                event_state="stop-And-Remain",
                min_end_time_s=now_s + 12.0,
                max_end_time_s=now_s + 40.0,
                likely_time_s=now_s + 15.5,
                time_to_change_s=15.5,
            ),
            SpatMovement(
                signal_group="p_north",
                event_state="protected-clearance",
                min_end_time_s=now_s + 4.2,
                max_end_time_s=now_s + 4.2,
                likely_time_s=now_s + 4.2,
                time_to_change_s=4.2,
            ),
        ],
    )


def warning(
    unit_id: str = "rsu-test",
    x_m: float = 2.0,
    y_m: float = 3.0,
    kind: WarningKind = WarningKind.CROSSING,
    status: WarningStatus = WarningStatus.NEW,
    now_s: float = NOW_S,
    frame: LocalFrame = SITE_FRAME,
    participants: list[tuple[float, float]] | None = None,
    warning_id: str | None = None,
    seq: int = 3,
) -> CollisionWarning:
    """A warning with its conflict point at (x_m, y_m) in the site frame."""
    latitude, longitude = frame.to_geodetic(x_m, y_m)
    positions = participants if participants is not None else [(x_m, y_m + 20.0), (x_m + 20.0, y_m)]
    return CollisionWarning(
        unit_id=unit_id,
        seq=seq,
        capture_time_s=now_s - 0.08,
        publish_time_s=now_s,
        warning_id=warning_id or f"{kind.value}-1-2-{int(now_s * 1000)}",
        kind=kind,
        severity=Severity.CRITICAL,
        status=status,
        ttc_s=1.4,
        conflict_x_m=x_m,
        conflict_y_m=y_m,
        conflict_latitude_deg=latitude,
        conflict_longitude_deg=longitude,
        participants=[
            Participant(
                track_id=index + 1,
                road_user=RoadUserType.CAR,
                x_m=px,
                y_m=py,
                speed_mps=8.0,
                heading_deg=180.0 if index == 0 else 270.0,
            )
            for index, (px, py) in enumerate(positions)
        ],
    )
