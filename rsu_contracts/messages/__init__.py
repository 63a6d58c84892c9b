"""Message contracts: one typed, versioned schema per message, SI units in field names."""

from rsu_contracts.messages.aggregates import Aggregate, LaneAggregate, MovementCount, PhaseAggregate
from rsu_contracts.messages.envelope import Message, MessageError, Sequencer, decode
from rsu_contracts.messages.health import InputRejection, StageHealth, UnitHealth, UnitStatus
from rsu_contracts.messages.perception import (
    CameraDetections,
    CameraObject,
    CrosswalkObservation,
    DetectorStates,
    ImageBox,
    LaneObservation,
    LineCrossing,
    TrackedObject,
    TrackList,
)
from rsu_contracts.messages.priority import (
    PriorityAction,
    PriorityKind,
    PriorityPhase,
    PriorityReason,
    PriorityRequest,
    PriorityService,
    PriorityStatus,
    PriorityStatusKind,
)
from rsu_contracts.messages.sharing import SharedObjects
from rsu_contracts.messages.signal import (
    ControllerMode,
    Indication,
    SignalEvent,
    SignalGroupState,
    SignalState,
    Spat,
    SpatMovement,
)
from rsu_contracts.messages.simulation import WorldStatistics
from rsu_contracts.messages.warnings import (
    CollisionWarning,
    Participant,
    Severity,
    WarningKind,
    WarningStatus,
)

ALL_MESSAGES: tuple[type[Message], ...] = (
    CameraDetections,
    TrackList,
    DetectorStates,
    SignalState,
    Spat,
    CollisionWarning,
    Aggregate,
    UnitHealth,
    WorldStatistics,
    SharedObjects,
    PriorityRequest,
    PriorityStatus,
)

__all__ = [
    "ALL_MESSAGES",
    "Aggregate",
    "CameraDetections",
    "CameraObject",
    "CollisionWarning",
    "ControllerMode",
    "CrosswalkObservation",
    "DetectorStates",
    "ImageBox",
    "Indication",
    "InputRejection",
    "LaneAggregate",
    "LaneObservation",
    "LineCrossing",
    "Message",
    "MessageError",
    "MovementCount",
    "Participant",
    "PhaseAggregate",
    "PriorityAction",
    "PriorityKind",
    "PriorityPhase",
    "PriorityReason",
    "PriorityRequest",
    "PriorityService",
    "PriorityStatus",
    "PriorityStatusKind",
    "Sequencer",
    "Severity",
    "SharedObjects",
    "SignalEvent",
    "SignalGroupState",
    "SignalState",
    "Spat",
    "SpatMovement",
    "StageHealth",
    "TrackList",
    "TrackedObject",
    "UnitHealth",
    "UnitStatus",
    "WarningKind",
    "WarningStatus",
    "WorldStatistics",
    "decode",
]
