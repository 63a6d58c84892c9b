"""The fields every message carries, and JSON (de)serialisation with a named schema.

Times are seconds since the Unix epoch. In simulation the clock is the simulated one, anchored at
the wall time the run started, so every stage handles real and simulated data the same way.
"""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, Field, ValidationError

from rsu_contracts.messages.bounds import MAX_TIMESTAMP_S, MESSAGE_MODEL_CONFIG


class MessageError(ValueError):
    """A payload that does not match its schema; the message names the schema and the field."""


class Message(BaseModel):
    model_config = MESSAGE_MODEL_CONFIG

    SCHEMA: ClassVar[str]
    VERSION: ClassVar[int] = 1
    # Older versions this build still reads (a centre keeps accepting units not yet updated).
    READS_VERSIONS: ClassVar[tuple[int, ...]] = ()

    schema_name: str = Field(default="", description="schema identifier, e.g. rsu.tracks")
    schema_version: int = 1
    unit_id: str = Field(min_length=1, max_length=64)
    seq: int = Field(ge=0, description="per-publisher sequence number, +1 per message")
    capture_time_s: float = Field(
        ge=0, le=MAX_TIMESTAMP_S, description="capture time of the sensor data this derives from, s since the epoch"
    )
    publish_time_s: float = Field(
        ge=0, le=MAX_TIMESTAMP_S, description="time the message was published, s since the epoch"
    )

    def model_post_init(self, __context: Any) -> None:
        # The schema name is a class constant; fill it in so it always travels with the payload.
        if not self.schema_name:
            object.__setattr__(self, "schema_name", self.SCHEMA)

    def to_json(self) -> bytes:
        return self.model_dump_json().encode()


M = TypeVar("M", bound=Message)


def decode(message_type: type[M], payload: bytes | str) -> M:
    try:
        message = message_type.model_validate_json(payload)
    except ValidationError as exc:
        fields = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()[:5])
        raise MessageError(f"{message_type.SCHEMA}: invalid payload: {fields}") from None
    if message.schema_name != message_type.SCHEMA:
        raise MessageError(f"expected schema {message_type.SCHEMA}, got {message.schema_name!r}")
    readable = (*message_type.READS_VERSIONS, message_type.VERSION)
    if message.schema_version not in readable:
        raise MessageError(
            f"{message_type.SCHEMA}: unsupported schema_version {message.schema_version} "
            f"(this build reads {', '.join(str(v) for v in readable)})"
        )
    return message


class Sequencer:
    """Stamps messages of one publisher with increasing sequence numbers."""

    def __init__(self, unit_id: str, start: int = 0) -> None:
        self.unit_id = unit_id
        self._next = start

    def next(self) -> int:
        value = self._next
        self._next += 1
        return value

    def header(self, capture_time_s: float, publish_time_s: float) -> dict[str, Any]:
        return {
            "unit_id": self.unit_id,
            "seq": self.next(),
            "capture_time_s": capture_time_s,
            "publish_time_s": publish_time_s,
        }
