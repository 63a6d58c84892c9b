"""Publishing typed messages: one sequence counter per schema, the envelope filled in one place."""

from __future__ import annotations

from typing import Any, TypeVar

from rsu.runtime.bus import MqttBus
from rsu_contracts.messages import Message, Sequencer
from rsu_contracts.topics import Route

M = TypeVar("M", bound=Message)


class WrongSchema(TypeError):
    """A message sent on a registered topic whose registry entry names another schema."""


class Outlet:
    def __init__(self, bus: MqttBus, unit_id: str) -> None:
        self.bus = bus
        self.unit_id = unit_id
        self._sequencers: dict[str, Sequencer] = {}

    def build(self, message_type: type[M], capture_time_s: float, publish_time_s: float, **fields: Any) -> M:
        sequencer = self._sequencers.setdefault(message_type.SCHEMA, Sequencer(self.unit_id))
        return message_type(**sequencer.header(capture_time_s, publish_time_s), **fields)

    def send(self, route: Route, message: Message) -> None:
        """Publish on a registered topic with the registry's QoS and retain flag."""
        self.bus.publish_to(route, self.payload_for(route, message))

    def send_and_wait(self, route: Route, message: Message, timeout_s: float) -> None:
        """Send and wait (at most timeout_s) until it is on the wire; see MqttBus.publish_and_wait."""
        self.bus.publish_to_and_wait(route, self.payload_for(route, message), timeout_s)

    @staticmethod
    def payload_for(route: Route, message: Message) -> bytes:
        # A subscriber decodes by the topic's schema: a message of another schema would be dropped
        # there as invalid, so refuse it here, where the mistake is made.
        if route.spec.schema is None or not isinstance(message, route.spec.schema):
            raise WrongSchema(f"a {message.SCHEMA} message on {route.topic} (registered for {route.spec.schema_name})")
        return message.to_json()
