"""Publishing typed messages: one sequence counter per schema, the envelope filled in one place."""

from __future__ import annotations

from typing import Any, TypeVar

from rsu.messages import Message, Sequencer
from rsu.runtime.bus import MqttBus

M = TypeVar("M", bound=Message)


class Outlet:
    def __init__(self, bus: MqttBus, unit_id: str) -> None:
        self.bus = bus
        self.unit_id = unit_id
        self._sequencers: dict[str, Sequencer] = {}

    def build(self, message_type: type[M], capture_time_s: float, publish_time_s: float, **fields: Any) -> M:
        sequencer = self._sequencers.setdefault(message_type.SCHEMA, Sequencer(self.unit_id))
        return message_type(**sequencer.header(capture_time_s, publish_time_s), **fields)

    def send(self, topic: str, message: Message, qos: int = 0, retain: bool = False) -> None:
        self.bus.publish(topic, message.to_json(), qos=qos, retain=retain)

    def send_and_wait(self, topic: str, message: Message, timeout_s: float) -> None:
        """Send and wait (at most timeout_s) until it is on the wire; see MqttBus.publish_and_wait."""
        self.bus.publish_and_wait(topic, message.to_json(), timeout_s)
