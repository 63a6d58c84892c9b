"""A steady, synthetic signal state for benches and tests: one group green (or none), the rest red.

Benches and stage tests need a plausible ``SignalState`` without running a controller; the
timing windows are arguments because each caller wants SPaT to carry different content.
"""

from __future__ import annotations

from dataclasses import dataclass

from rsu_contracts.config import SiteConfig
from rsu_contracts.messages.signal import ControllerMode, Indication, SignalGroupState, SignalState


@dataclass(frozen=True)
class TimingWindows:
    """Each group's SPaT windows, in seconds relative to the state's capture time."""

    since_s: float = -5.0
    min_end_s: float = 10.0
    max_end_s: float = 30.0
    likely_s: float = 15.0


def steady_signal_state(
    site: SiteConfig,
    now_s: float,
    green_group: str | None,
    windows: TimingWindows = TimingWindows(),
    *,
    seq: int = 0,
    strategy: str = "bench",
) -> SignalState:
    """``green_group`` green (``None``: all red), every other group red, all with ``windows``."""
    groups = [
        SignalGroupState(
            signal_group=group.id,
            indication=Indication.GREEN if group.id == green_group else Indication.RED,
            since_s=now_s + windows.since_s,
            min_end_time_s=now_s + windows.min_end_s,
            max_end_time_s=now_s + windows.max_end_s,
            likely_time_s=now_s + windows.likely_s,
        )
        for group in site.signal_groups
    ]
    return SignalState(
        unit_id=site.unit_id,
        seq=seq,
        capture_time_s=now_s,
        publish_time_s=now_s,
        mode=ControllerMode.NORMAL,
        strategy=strategy,
        groups=groups,
    )
