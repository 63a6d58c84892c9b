"""A hand-written MQTT v5 packet codec: frame and unframe packets, and build the few a minimal
subscriber sends (CONNECT, SUBSCRIBE, PUBACK).

For benches and tests that must see the bytes as they arrive (paho's parsing would be measured
instead); it covers only what those need, not the protocol.
"""

from __future__ import annotations

# Packet types: the high nibble of the fixed header's first byte.
PUBLISH = 3
SUBACK = 9
# First bytes of the packets built here (type nibble and flags; SUBSCRIBE's flags must be 0b0010).
CONNECT_FIRST_BYTE = 0x10
PUBACK_FIRST_BYTE = 0x40
SUBSCRIBE_FIRST_BYTE = 0x82


def mqtt_string(text: str) -> bytes:
    """A UTF-8 string as MQTT encodes it: two-byte big-endian length, then the bytes."""
    data = text.encode()
    return len(data).to_bytes(2, "big") + data


def mqtt_packet(first_byte: int, body: bytes) -> bytes:
    """A whole packet: the first byte, the body's length as a variable byte integer, the body."""
    length, encoded = len(body), bytearray()
    while True:
        digit, length = length % 128, length // 128
        encoded.append(digit | (0x80 if length else 0))
        if not length:
            return bytes([first_byte]) + bytes(encoded) + body


def split_packet(buffer: bytearray) -> tuple[int, bytes] | None:
    """Take the first complete MQTT packet off the buffer: (first byte, body), or None if incomplete."""
    length, multiplier, index = 0, 1, 1
    while True:
        if index >= len(buffer):
            return None
        digit = buffer[index]
        length += (digit & 0x7F) * multiplier
        multiplier *= 128
        index += 1
        if not digit & 0x80:
            break
    if len(buffer) < index + length:
        return None
    kind, body = buffer[0], bytes(buffer[index : index + length])
    del buffer[: index + length]
    return kind, body


def packet_type(first_byte: int) -> int:
    """The packet type (PUBLISH, SUBACK, ...) of a packet's first byte."""
    return first_byte >> 4


def publish_qos(first_byte: int) -> int:
    """The QoS of a PUBLISH from its first byte's flags (a QoS above 0 puts a packet id after the topic)."""
    return (first_byte >> 1) & 3


def connect_packet(client_id: str) -> bytes:
    """CONNECT: protocol "MQTT" level 5, clean start, keep-alive off, no properties."""
    return mqtt_packet(CONNECT_FIRST_BYTE, mqtt_string("MQTT") + bytes([5, 0x02, 0, 0, 0]) + mqtt_string(client_id))


def subscribe_packet(packet_id: int, topic: str, qos: int) -> bytes:
    """SUBSCRIBE to one topic filter at `qos`, no properties."""
    return mqtt_packet(
        SUBSCRIBE_FIRST_BYTE, packet_id.to_bytes(2, "big") + bytes([0]) + mqtt_string(topic) + bytes([qos])
    )


def puback_packet(packet_id: bytes) -> bytes:
    """PUBACK of a QoS 1 PUBLISH, from the two packet-id bytes as they came in (reason code omitted: success)."""
    return mqtt_packet(PUBACK_FIRST_BYTE, packet_id)
