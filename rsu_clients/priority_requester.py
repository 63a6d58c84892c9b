"""Requester side of priority: build and send a signed request, and the `rsu priority` commands.

    rsu priority keygen --private ambulance-7.pem --public ambulance-7.pub.pem
    rsu priority request --site site.yaml --key ambulance-7.pem --requester-id ambulance-7 \\
        --kind emergency --approach north --arrival-in-s 20

Through a TLS listener (e.g. the vehicle-facing one of deploy/mosquitto) add the broker options:
`--host unit.example --port 8883 --ca-file ca.pem --username ambulance-7 --password-env RSU_MQTT_PASSWORD`
(and `--cert-file` / `--key-file` where the broker requires client certificates).

`request` publishes one signed `rsu.priority.request` on the unit's request topic and prints the
unit's answers on the status topic until the request is answered (or `--wait-s` runs out). With
`--unit-key` the answers' signatures are checked against the unit's public key.
"""

from __future__ import annotations

import argparse
import os
import queue
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rsu.key_files import generate_key_files, signer_from_key_file, verifier_from_key_files
from rsu.runtime.mqtt import Inbound, MqttClient
from rsu.runtime.mqtt_options import MqttOptionError, add_mqtt_connection_options, mqtt_config_from_options
from rsu_contracts.config import load_site_config
from rsu_contracts.config.model import MqttConfig, SiteConfig
from rsu_contracts.enums import PriorityKind
from rsu_contracts.messages import (
    MessageError,
    PriorityAction,
    PriorityRequest,
    PriorityStatus,
    PriorityStatusKind,
    decode,
)
from rsu_contracts.topics import PRIORITY_REQUEST, PRIORITY_STATUS, Topics
from v2x.signing import SignatureError, SignatureVerifier, UnitSigner

DEFAULT_WAIT_S = 5.0


@dataclass(frozen=True)
class SignedRequest:
    topic: str
    payload: bytes
    user_properties: list[tuple[str, str]]
    request: PriorityRequest


def signed_request(
    signer: UnitSigner,
    unit_id: str,
    topic: str,
    kind: PriorityKind,
    request_id: str,
    now_s: float,
    action: PriorityAction = PriorityAction.CHECK_IN,
    approach: str | None = None,
    signal_group: str | None = None,
    arrival_in_s: float = 0.0,
    valid_until_s: float | None = None,
) -> SignedRequest:
    """A request from `signer` (its unit id is the requester id) to unit `unit_id`, signed for `topic`."""
    request = PriorityRequest(
        unit_id=unit_id,
        seq=int(now_s * 1000),
        capture_time_s=now_s,
        publish_time_s=now_s,
        requester_id=signer.unit_id,
        request_id=request_id,
        kind=kind,
        action=action,
        approach=approach,
        signal_group=signal_group,
        arrival_in_s=arrival_in_s,
        valid_until_s=valid_until_s,
    )
    payload = request.to_json()
    return SignedRequest(topic, payload, signer.sign(topic, payload), request)


def add_priority_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "priority", help="emergency preemption and transit priority: requester keys and signed requests"
    )
    commands = parser.add_subparsers(dest="priority_command", required=True)

    keygen = commands.add_parser("keygen", help="make a requester's Ed25519 key pair (PEM)")
    keygen.add_argument("--private", required=True, help="private key file to create (mode 0600)")
    keygen.add_argument("--public", required=True, help="public key file to create; list it in priority.requesters")
    keygen.set_defaults(handler=_keygen)

    request = commands.add_parser("request", help="send one signed priority request and print the unit's answers")
    request.add_argument("--site", required=True, help="the unit's site config (broker, unit id, approaches)")
    request.add_argument("--key", required=True, help="the requester's private key (PEM)")
    request.add_argument("--requester-id", required=True, help="the requester id in the unit's allow-list")
    request.add_argument(
        "--kind", required=True, choices=[kind.value for kind in PriorityKind], help="emergency or transit priority"
    )
    target = request.add_mutually_exclusive_group()
    target.add_argument("--approach", help="approach id of the site")
    target.add_argument("--signal-group", help="vehicle signal group id of the site")
    request.add_argument(
        "--action",
        default=PriorityAction.CHECK_IN.value,
        choices=[action.value for action in PriorityAction],
        help=f"what to ask for (default {PriorityAction.CHECK_IN.value})",
    )
    request.add_argument("--request-id", help="request id (default: a new one; give it for check_out / cancel)")
    request.add_argument("--arrival-in-s", type=float, default=0.0, help="estimated seconds to the stop line")
    request.add_argument("--valid-for-s", type=float, help="the request lapses this long after sending")
    request.add_argument("--wait-s", type=float, default=DEFAULT_WAIT_S, help="how long to wait for the answer")
    request.add_argument("--unit-key", help="the unit's V2X public key (PEM) to verify its answers")
    request.add_argument(
        "--host", help="broker host (default: the site file's mqtt.host); e.g. the unit's vehicle-facing listener"
    )
    request.add_argument("--port", type=int, help="broker port (default: the site file's mqtt.port)")
    # Given options replace the site file's; --username without a password drops the site's password.
    add_mqtt_connection_options(request)
    request.set_defaults(handler=_request)
    return parser


def _keygen(args: argparse.Namespace) -> int:
    try:
        identity = generate_key_files(args.private, args.public)
    except FileExistsError as exc:
        print(f"rsu priority keygen: {exc}", file=sys.stderr)
        return 2
    print(f"key {identity}: private {args.private} (keep it on the vehicle), public {args.public}")
    print("allow it in the site file:")
    print("priority:\n  requesters:")
    print(f"    - {{id: <requester-id>, public_key: {args.public}, kinds: [emergency]}}")
    return 0


def _request(args: argparse.Namespace) -> int:
    action = PriorityAction(args.action)
    if action is PriorityAction.CHECK_IN and not (args.approach or args.signal_group):
        print("rsu priority request: a check_in needs --approach or --signal-group", file=sys.stderr)
        return 2
    if action is not PriorityAction.CHECK_IN and not args.request_id:
        print(f"rsu priority request: {action.value} needs the --request-id of the check-in", file=sys.stderr)
        return 2
    site = load_site_config(Path(args.site))
    try:
        broker = requester_broker(site, args)
    except MqttOptionError as exc:
        print(f"rsu priority request: {exc}", file=sys.stderr)
        return 2
    try:
        signer = signer_from_key_file(args.key, args.requester_id)
    except (OSError, ValueError) as exc:
        print(f"rsu priority request: cannot use key {args.key}: {exc}", file=sys.stderr)
        return 2
    try:
        verifier = verifier_from_key_files([args.unit_key]) if args.unit_key else None
    except (OSError, ValueError) as exc:
        print(f"rsu priority request: cannot use the unit key {args.unit_key}: {exc}", file=sys.stderr)
        return 2
    request_id = args.request_id or uuid.uuid4().hex[:12]
    return send_request(site, signer, args, PriorityKind(args.kind), action, request_id, verifier, broker)


def requester_broker(site: SiteConfig, args: argparse.Namespace) -> MqttConfig:
    """The site file's broker with what the command line changes (host, port, login, TLS)."""
    fields = {name: getattr(args, name) for name in ("host", "port") if getattr(args, name, None) is not None}
    return mqtt_config_from_options(args, site.mqtt, **fields)


def send_request(
    site: SiteConfig,
    signer: UnitSigner,
    args: argparse.Namespace,
    kind: PriorityKind,
    action: PriorityAction,
    request_id: str,
    verifier: SignatureVerifier | None,
    broker: MqttConfig | None = None,
) -> int:
    """Send one request through broker (default: the site file's) and print the answers."""
    topics = Topics.for_site(site)
    answers: queue.Queue[Inbound] = queue.Queue()
    client = MqttClient(broker or site.mqtt, f"{args.requester_id}-priority-{os.getpid()}", answers.put)
    client.subscribe(topics.priority_status, qos=PRIORITY_STATUS.qos)
    # Returns once the broker acknowledged the subscription: the answer cannot come before that.
    client.connect()
    try:
        now_s = time.time()
        valid_until_s = now_s + args.valid_for_s if args.valid_for_s is not None else None
        sent = signed_request(
            signer,
            site.unit_id,
            topics.priority_request,
            kind,
            request_id,
            now_s,
            action=action,
            approach=args.approach,
            signal_group=args.signal_group,
            arrival_in_s=args.arrival_in_s,
            valid_until_s=valid_until_s,
        )
        client.publish_to(topics.route(PRIORITY_REQUEST), sent.payload, user_properties=sent.user_properties)
        print(f"sent {action.value} {kind.value} request {request_id} as {args.requester_id} to {sent.topic}")
        return _print_answers(answers, verifier, args.requester_id, request_id, args.wait_s)
    finally:
        client.close()


def _print_answers(
    answers: queue.Queue[Inbound], verifier: SignatureVerifier | None, requester_id: str, request_id: str, wait_s: float
) -> int:
    """Print the answers to our request; 0 once accepted / active / ended, 1 if rejected, 3 if none.

    A request that fails authentication is answered without requester and request ids (the unit
    cannot trust them); such rejections are printed, and make the result 1 if nothing else comes.
    """
    deadline = time.monotonic() + wait_s
    unattributed_rejections = 0
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            item = answers.get(timeout=remaining)
        except queue.Empty:
            break
        trust = "unverified"
        if verifier is not None:
            try:
                verifier.verify(item.topic, item.payload, item.user_properties, time.time())
                trust = "verified"
            except SignatureError as exc:
                print(f"  ignored an answer that fails verification: {exc}")
                continue
        try:
            status = decode(PriorityStatus, item.payload)
        except MessageError as exc:
            print(f"  ignored a malformed answer: {exc}")
            continue
        mine = status.requester_id == requester_id and status.request_id == request_id
        unattributed = status.requester_id is None and status.status is PriorityStatusKind.REJECTED
        if not (mine or unattributed):
            continue
        print(f"  {status.status.value} ({status.reason_code.value}, {trust}): {status.reason}")
        if mine:
            return 1 if status.status is PriorityStatusKind.REJECTED else 0
        unattributed_rejections += 1
    if unattributed_rejections:
        return 1
    print(f"  no answer for request {request_id} within {wait_s:g} s")
    return 3
