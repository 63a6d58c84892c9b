"""Signal timing formulas: ITE change and clearance intervals, pedestrian clearance, Webster.

Every function is pure and works in SI units (metres, seconds, metres per second).
"""

from __future__ import annotations

from collections.abc import Sequence

from rsu_contracts.config.model import MIN_ALL_RED_S, MIN_YELLOW_S

# ITE "Guidelines for Determining Traffic Signal Change and Clearance Intervals" defaults.
PERCEPTION_REACTION_S = 1.0
DECELERATION_MPS2 = 3.05
GRAVITY_MPS2 = 9.81
VEHICLE_LENGTH_M = 6.1
# 3.5 ft/s, the MUTCD walking speed for the pedestrian clearance interval.
PEDESTRIAN_WALKING_SPEED_MPS = 1.07

# Floors below which no interval may go: a computed one is raised to it, a configured one refused.
# Their values live with the site schema, which refuses a configured value below them.
__all__ = ["MIN_ALL_RED_S", "MIN_YELLOW_S"]

# Webster saturates as the flow ratio sum Y approaches 1; beyond this the formula is meaningless.
WEBSTER_MAX_FLOW_RATIO = 0.9
DEFAULT_MIN_CYCLE_S = 30.0
DEFAULT_MAX_CYCLE_S = 150.0


def ite_yellow_s(speed_mps: float, grade_fraction: float = 0.0) -> float:
    """Y = t + v / (2a + 2Gg), unfloored; grade is a signed fraction (+0.03 = 3 % uphill)."""
    if speed_mps <= 0:
        raise ValueError(f"approach speed must be positive, got {speed_mps} m/s")
    braking = 2 * DECELERATION_MPS2 + 2 * grade_fraction * GRAVITY_MPS2
    if braking <= 0:
        raise ValueError(f"grade {grade_fraction:+.3f} leaves no braking deceleration")
    return PERCEPTION_REACTION_S + speed_mps / braking


def ite_all_red_s(width_m: float, speed_mps: float, vehicle_length_m: float = VEHICLE_LENGTH_M) -> float:
    """R = (W + L) / v, unfloored: time for a vehicle entering at the end of yellow to clear."""
    if speed_mps <= 0:
        raise ValueError(f"approach speed must be positive, got {speed_mps} m/s")
    return (width_m + vehicle_length_m) / speed_mps


def yellow_s(speed_mps: float, grade_fraction: float = 0.0, configured_s: float | None = None) -> float:
    """The yellow to run: the configured value if any, else ITE raised to MIN_YELLOW_S.

    A configured value below the floor is an error, never silently raised."""
    if configured_s is not None:
        _require_floor("yellow_s", configured_s, MIN_YELLOW_S)
        return configured_s
    return max(MIN_YELLOW_S, ite_yellow_s(speed_mps, grade_fraction))


def all_red_s(
    width_m: float,
    speed_mps: float,
    configured_s: float | None = None,
    vehicle_length_m: float = VEHICLE_LENGTH_M,
) -> float:
    """The all-red to run: the configured value if any, else ITE raised to MIN_ALL_RED_S.

    A configured value below the floor is an error, never silently raised."""
    if configured_s is not None:
        _require_floor("all_red_s", configured_s, MIN_ALL_RED_S)
        return configured_s
    return max(MIN_ALL_RED_S, ite_all_red_s(width_m, speed_mps, vehicle_length_m))


def _require_floor(name: str, configured_s: float, floor_s: float) -> None:
    if configured_s < floor_s:
        raise ValueError(f"{name} {configured_s} s is below its {floor_s} s safety floor")


def pedestrian_clearance_s(crossing_length_m: float) -> float:
    """Flashing don't walk: the whole crossing at the design walking speed."""
    if crossing_length_m <= 0:
        raise ValueError(f"crossing length must be positive, got {crossing_length_m} m")
    return crossing_length_m / PEDESTRIAN_WALKING_SPEED_MPS


def webster_cycle_s(
    lost_time_s: float,
    critical_flow_ratios: Sequence[float],
    min_cycle_s: float = DEFAULT_MIN_CYCLE_S,
    max_cycle_s: float = DEFAULT_MAX_CYCLE_S,
) -> float:
    """Webster's optimum cycle C0 = (1.5 L + 5) / (1 - Y), clamped to [min_cycle_s, max_cycle_s].

    At Y >= 0.9 the junction is (near) oversaturated and C0 explodes; the longest cycle is the
    best a fixed plan can do there, so that is what is returned.
    """
    if min_cycle_s > max_cycle_s:
        raise ValueError(f"min_cycle_s {min_cycle_s} exceeds max_cycle_s {max_cycle_s}")
    if any(ratio < 0 for ratio in critical_flow_ratios):
        raise ValueError("flow ratios cannot be negative")
    total_ratio = sum(critical_flow_ratios)
    if total_ratio >= WEBSTER_MAX_FLOW_RATIO:
        return max_cycle_s
    cycle = (1.5 * lost_time_s + 5.0) / (1.0 - total_ratio)
    return min(max_cycle_s, max(min_cycle_s, cycle))


def webster_green_splits(cycle_s: float, lost_time_s: float, critical_flow_ratios: Sequence[float]) -> list[float]:
    """Effective greens g_i = (y_i / Y)(C - L); an even split when no stage has any flow."""
    if not critical_flow_ratios:
        return []
    effective_green = max(0.0, cycle_s - lost_time_s)
    total_ratio = sum(critical_flow_ratios)
    if total_ratio <= 0:
        return [effective_green / len(critical_flow_ratios)] * len(critical_flow_ratios)
    return [ratio / total_ratio * effective_green for ratio in critical_flow_ratios]
