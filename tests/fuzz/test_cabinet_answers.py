"""Fuzz the one decoder of bytes from the signal cabinet: the SNMP client's handling of a datagram.

Any datagram on the client's socket goes through SnmpClient._answer: it must come back as an answer,
None (a stray datagram, keep waiting) or SnmpError (the documented refusal), never anything else.
Genuine GetResponse datagrams, bit-flipped and cut, reach deep into the BER decoder and the checks.
"""

from __future__ import annotations

import contextlib
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from rsu.cabinet.snmp import SnmpClient, SnmpError, SnmpTarget, encode_message, protocol_module
from tests.fuzz.strategies import FUZZ_SETTINGS, hostile_payloads

OIDS = [(1, 3, 6, 1, 4, 1, 1206, 4, 2, 1, 1, 4, 1, 2, k) for k in (1, 2)]
REQUEST_ID = 4242


def genuine_answer(version: int, request_id: int, values: list[Any]) -> bytes:
    protocol = protocol_module(version)
    pdu = protocol.GetResponsePDU()
    protocol.apiPDU.set_defaults(pdu)
    protocol.apiPDU.set_request_id(pdu, request_id)
    protocol.apiPDU.set_varbinds(pdu, list(zip(OIDS, values, strict=True)))
    return encode_message(version, "public", pdu)


@st.composite
def flipped(draw: st.DrawFn, genuine: bytes) -> bytes:
    data = bytearray(genuine)
    for _ in range(draw(st.integers(1, 6))):
        data[draw(st.integers(0, len(data) - 1))] ^= 1 << draw(st.integers(0, 7))
    return bytes(data[: draw(st.integers(0, len(data)))] if draw(st.booleans()) else data)


def datagrams(version: int) -> st.SearchStrategy[bytes]:
    protocol = protocol_module(version)
    genuine = [
        genuine_answer(version, REQUEST_ID, [protocol.Integer(3), protocol.Integer(-1)]),
        genuine_answer(version, REQUEST_ID, [protocol.OctetString(b"x" * 40), protocol.Null("")]),
        genuine_answer(version, REQUEST_ID + 1, [protocol.Integer(2**31 - 1), protocol.Integer(0)]),
    ]
    return st.one_of(hostile_payloads, *(flipped(datagram) for datagram in genuine))


@FUZZ_SETTINGS
@given(st.sampled_from([1, 2]).flatmap(lambda version: st.tuples(st.just(version), datagrams(version))))
def test_snmp_answers_are_parsed_or_refused_with_snmp_error(case: tuple[int, bytes]) -> None:
    version, datagram = case
    client = SnmpClient(SnmpTarget("127.0.0.1", version=version))
    try:
        with contextlib.suppress(SnmpError):
            answer = client._answer(datagram, REQUEST_ID, OIDS)
            assert answer is None or [oid for oid, _ in answer] == OIDS
    finally:
        client.close()
