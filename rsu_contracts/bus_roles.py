"""Who may publish each registered topic: the unit's logins on its own broker.

Every topic of ``rsu_contracts.topics.REGISTRY`` names the one login that publishes it. The
broker's access lists are generated from this table (``rsu broker-config``,
``rsu.runtime.broker_config``), so a stage can publish only what it is declared to publish, and
a new topic without a publisher here fails ``tests/runtime/test_broker_config.py``.

A login is ``<unit_id>-<role>``; its password is the file ``<role>`` names in the site's
``mqtt.credentials_dir``. The supervisor owns the unit's status and health; the monitor is the
read-only login of the unit's own observers (``rsu demo``, ``rsu run``, the preflight, ``rsu doctor``).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from rsu_contracts.topics import (
    AGGREGATES,
    CAMERA_PREVIEW,
    DETECTORS,
    HEALTH,
    MAP,
    OBJECTS,
    PRIORITY_REQUEST,
    PRIORITY_STATUS,
    REGISTRY,
    SIGNAL_STATE,
    SIM_CAMERA,
    SIM_STATISTICS,
    SPAT,
    SPAT_SENT,
    STATUS,
    TRACKS,
    WARNINGS,
    WARNINGS_SENT,
)


class BusRole(StrEnum):
    """One login of the unit on its own broker (a stage, the supervisor, or the read-only monitor)."""

    SUPERVISOR = "supervisor"
    WORLD = "world"
    PERCEPTION = "perception"
    CONTROLLER = "controller"
    V2X = "v2x"
    UPLINK = "uplink"
    WEB = "web"
    MONITOR = "monitor"


# Who publishes the topic: a role of the unit, or None for a topic written by others (priority
# requests come from vehicles and requesters, on the vehicle listener).
PUBLISHER: Mapping[str, BusRole | None] = {
    TRACKS.name: BusRole.PERCEPTION,
    DETECTORS.name: BusRole.PERCEPTION,
    CAMERA_PREVIEW.name: BusRole.PERCEPTION,
    SIGNAL_STATE.name: BusRole.CONTROLLER,
    PRIORITY_STATUS.name: BusRole.CONTROLLER,
    HEALTH.name: BusRole.SUPERVISOR,
    STATUS.name: BusRole.SUPERVISOR,
    SIM_CAMERA.name: BusRole.WORLD,
    SIM_STATISTICS.name: BusRole.WORLD,
    SPAT.name: BusRole.V2X,
    MAP.name: BusRole.V2X,
    WARNINGS.name: BusRole.V2X,
    OBJECTS.name: BusRole.V2X,
    SPAT_SENT.name: BusRole.V2X,
    WARNINGS_SENT.name: BusRole.V2X,
    AGGREGATES.name: BusRole.UPLINK,
    PRIORITY_REQUEST.name: None,
}

_unlisted = {spec.name for spec in REGISTRY} ^ set(PUBLISHER)
if _unlisted:
    raise ValueError(f"bus_roles.PUBLISHER and topics.REGISTRY disagree on: {', '.join(sorted(_unlisted))}")


def login_name(unit_id: str, role: BusRole) -> str:
    """The broker user name (and client id prefix) of one of the unit's roles."""
    return f"{unit_id}-{role.value}"
