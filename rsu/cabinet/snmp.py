"""SNMP v1/v2c GET and SET over UDP, with pysnmp's message model and pyasn1's BER codec.

Synchronous on purpose: the controller stage writes and polls once per decision tick, and one
blocking round trip with a short timeout is easier to reason about (and to bound) than an event
loop beside the stage's own. SNMP v3 is not handled here; a site that needs it is refused at
configuration time.
"""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pyasn1.codec.ber import decoder, encoder
from pyasn1.error import PyAsn1Error
from pysnmp.proto import api, rfc1905

Oid = tuple[int, ...]
MAX_DATAGRAM_BYTES = 65_507

# pysnmp's protocol modules by the SNMP version number a site configures (1, or 2 for v2c).
_PROTOCOL: dict[int, Any] = {1: api.PROTOCOL_MODULES[api.SNMP_VERSION_1], 2: api.PROTOCOL_MODULES[api.SNMP_VERSION_2C]}
# v2c answers a missing object with an exception value in its varbind (RFC 3416 section 4.2.1).
_MISSING_TAGS = (rfc1905.NoSuchObject.tagSet, rfc1905.NoSuchInstance.tagSet, rfc1905.EndOfMibView.tagSet)
# RFC 3416 error-status names, for messages a person can act on.
ERROR_STATUS = {
    0: "noError",
    1: "tooBig",
    2: "noSuchName",
    3: "badValue",
    4: "readOnly",
    5: "genErr",
    6: "noAccess",
    7: "wrongType",
    8: "wrongLength",
    9: "wrongEncoding",
    10: "wrongValue",
    11: "noCreation",
    12: "inconsistentValue",
    13: "resourceUnavailable",
    14: "commitFailed",
    15: "undoFailed",
    16: "authorizationError",
    17: "notWritable",
    18: "inconsistentName",
}


class SnmpError(RuntimeError):
    """The agent answered with an error, or with something that is not a valid answer."""


class SnmpTimeout(SnmpError):
    """No valid answer within the timeout and retries (unreachable, or a wrong community:
    agents drop requests with an unknown community silently)."""


def dotted(oid: Oid) -> str:
    return ".".join(str(part) for part in oid)


@dataclass(frozen=True)
class SnmpTarget:
    host: str
    port: int = 161
    community: str = "public"
    version: int = 2
    timeout_s: float = 0.2
    retries: int = 1

    def __post_init__(self) -> None:
        if self.version not in _PROTOCOL:
            raise ValueError(f"SNMP version {self.version} is not supported here (1, or 2 for v2c)")
        if not 0 < self.timeout_s <= 10:
            raise ValueError(f"SNMP timeout_s {self.timeout_s} must be in (0, 10] s")
        if not 0 <= self.retries <= 5:
            raise ValueError(f"SNMP retries {self.retries} must be 0-5")


def protocol_module(version: int) -> Any:
    return _PROTOCOL[version]


def encode_message(version: int, community: str, pdu: Any) -> bytes:
    protocol = _PROTOCOL[version]
    message = protocol.Message()
    protocol.apiMessage.set_defaults(message)
    protocol.apiMessage.set_community(message, community)
    protocol.apiMessage.set_pdu(message, pdu)
    return bytes(encoder.encode(message))


def decode_message(version: int, datagram: bytes) -> tuple[str, Any]:
    """(community, pdu) of a datagram; raises SnmpError if it is not an SNMP message of ``version``."""
    protocol = _PROTOCOL[version]
    try:
        message, rest = decoder.decode(datagram, asn1Spec=protocol.Message())
        if rest:
            raise SnmpError(f"{len(rest)} trailing bytes after the SNMP message")
        community = str(protocol.apiMessage.get_community(message))
        return community, protocol.apiMessage.get_pdu(message)
    except (PyAsn1Error, ValueError, TypeError, AttributeError) as error:
        raise SnmpError(f"not an SNMP v{version} message: {error}") from error


def is_missing(value: Any) -> bool:
    return bool(value.tagSet in _MISSING_TAGS)


class SnmpClient:
    """GET and SET of integer objects on one agent."""

    def __init__(self, target: SnmpTarget) -> None:
        self.target = target
        self._protocol = _PROTOCOL[target.version]
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._request_id = random.randrange(1, 2**30)

    def close(self) -> None:
        self._socket.close()

    def get(self, oids: Sequence[Oid]) -> dict[Oid, int]:
        """Every object's integer value; raises SnmpError naming the first bad one."""
        pdu = self._protocol.GetRequestPDU()
        self._protocol.apiPDU.set_defaults(pdu)
        self._protocol.apiPDU.set_varbinds(pdu, [(oid, self._protocol.Null("")) for oid in oids])
        values: dict[Oid, int] = {}
        for oid, value in self._round_trip(pdu, oids):
            try:
                values[oid] = int(value)
            except (TypeError, ValueError, PyAsn1Error) as error:
                raise SnmpError(f"{dotted(oid)}: not an integer ({value.prettyPrint()})") from error
        return values

    def set(self, varbinds: Sequence[tuple[Oid, int]]) -> None:
        pdu = self._protocol.SetRequestPDU()
        self._protocol.apiPDU.set_defaults(pdu)
        self._protocol.apiPDU.set_varbinds(pdu, [(oid, self._protocol.Integer(value)) for oid, value in varbinds])
        self._round_trip(pdu, [oid for oid, _ in varbinds])

    def _round_trip(self, pdu: Any, oids: Sequence[Oid]) -> list[tuple[Oid, Any]]:
        self._request_id = self._request_id % (2**31 - 1) + 1
        request_id = self._request_id
        self._protocol.apiPDU.set_request_id(pdu, request_id)
        datagram = encode_message(self.target.version, self.target.community, pdu)
        address = (self.target.host, self.target.port)
        for _attempt in range(self.target.retries + 1):
            self._socket.sendto(datagram, address)
            deadline = time.monotonic() + self.target.timeout_s
            while (left := deadline - time.monotonic()) > 0:
                self._socket.settimeout(left)
                try:
                    reply, sender = self._socket.recvfrom(MAX_DATAGRAM_BYTES)
                except TimeoutError:
                    break
                except ConnectionRefusedError:
                    # ICMP port unreachable from an earlier send: nobody listens there (yet).
                    time.sleep(min(left, self.target.timeout_s / 4))
                    break
                if sender[1] != self.target.port:
                    continue
                answer = self._answer(reply, request_id, oids)
                if answer is not None:
                    return answer
        raise SnmpTimeout(
            f"no answer from {self.target.host}:{self.target.port} within {self.target.timeout_s:.2f} s x "
            f"{self.target.retries + 1} (unreachable, or the community is wrong)"
        )

    def _answer(self, reply: bytes, request_id: int, oids: Sequence[Oid]) -> list[tuple[Oid, Any]] | None:
        try:
            community, pdu = decode_message(self.target.version, reply)
        except SnmpError:
            return None  # a stray datagram: keep waiting for the real answer
        api_pdu = self._protocol.apiPDU
        if community != self.target.community or int(api_pdu.get_request_id(pdu)) != request_id:
            return None  # not for us, or a late answer to an earlier request
        status = int(api_pdu.get_error_status(pdu))
        if status:
            index = int(api_pdu.get_error_index(pdu))
            where = dotted(oids[index - 1]) if 0 < index <= len(oids) else "the request"
            raise SnmpError(f"agent answered {ERROR_STATUS.get(status, status)} for {where}")
        answer = [(tuple(oid), value) for oid, value in api_pdu.get_varbinds(pdu)]
        if [oid for oid, _ in answer] != list(oids):
            raise SnmpError("agent answered other objects than were asked for")
        for oid, value in answer:
            if is_missing(value):
                raise SnmpError(f"agent has no object {dotted(oid)}")
        return answer
