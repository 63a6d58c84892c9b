"""Severity of a conflict from its time to collision and the deceleration needed to avoid it.

TTC < ttc_critical_s or DRAC >= drac_critical_mps2 is critical, TTC < ttc_warning_s otherwise a
warning; a later meeting is no conflict.
"""

from __future__ import annotations

from rsu_contracts.config.model import WarningConfig
from rsu_contracts.messages.warnings import Severity


def severity_for_ttc(ttc_s: float, config: WarningConfig) -> Severity | None:
    if ttc_s < config.ttc_critical_s:
        return Severity.CRITICAL
    if ttc_s < config.ttc_warning_s:
        return Severity.WARNING
    return None


def severity_for_ttc_and_deceleration(
    ttc_s: float, required_deceleration_mps2: float, config: WarningConfig
) -> Severity | None:
    severity = severity_for_ttc(ttc_s, config)
    if severity is Severity.WARNING and required_deceleration_mps2 >= config.drac_critical_mps2:
        return Severity.CRITICAL
    return severity
