"""Command-line options for an MQTT broker connection, shared by `rsu vehicle listen`,
`rsu priority request` and `rsu centre`, so each takes the same TLS and login options:

    --tls --ca-file ca.pem --cert-file me.pem --key-file me.key --no-check-hostname
    --username NAME (--password SECRET | --password-env VARIABLE)

Any of --ca-file, --cert-file, --key-file or --no-check-hostname implies --tls. Paths are taken
as given (relative to the working directory), as usual on a command line.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from pydantic import ValidationError

from rsu_contracts.config.model import MqttConfig

# Read when --password-env is not given, so a password need not appear in the process list.
DEFAULT_PASSWORD_VARIABLE = "RSU_MQTT_PASSWORD"


class MqttOptionError(ValueError):
    """The connection options do not fit together; the message names them."""


def add_mqtt_connection_options(parser: argparse.ArgumentParser, *, broker: str = "broker") -> None:
    """--tls, --ca-file, --cert-file, --key-file, --no-check-hostname, --username, --password,
    --password-env; read them back with mqtt_overrides()."""
    group = parser.add_argument_group(f"{broker} login and TLS")
    group.add_argument("--username", default=None, help=f"user name at the {broker}")
    secret = group.add_mutually_exclusive_group()
    secret.add_argument(
        "--password", default=None, help="password (visible in the process list: prefer --password-env)"
    )
    secret.add_argument(
        "--password-env",
        metavar="VARIABLE",
        default=None,
        help=f"read the password from this environment variable (default: {DEFAULT_PASSWORD_VARIABLE}, if set)",
    )
    group.add_argument(
        "--tls",
        action="store_true",
        default=None,
        help="connect over TLS (the system CA store unless --ca-file); implied by the options below",
    )
    group.add_argument("--ca-file", default=None, help="PEM file of the CA(s) that signed the broker's certificate")
    group.add_argument(
        "--cert-file", default=None, help="this client's certificate (PEM), for a broker that requires one"
    )
    group.add_argument("--key-file", default=None, help="the private key of --cert-file (PEM, unencrypted)")
    group.add_argument(
        "--no-check-hostname",
        dest="check_hostname",
        action="store_false",
        default=None,
        help="accept a broker certificate that does not name --host (UNSAFE: any certificate of the CA passes)",
    )


def mqtt_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The MqttConfig fields the options set (only those given), for MqttConfig(**...) or to
    override a site file's broker; MqttOptionError if a password variable is named but unset."""
    overrides: dict[str, Any] = {}
    if args.username is not None:
        overrides["username"] = args.username
    password = _password(args)
    if password is not None:
        overrides["password"] = password
    for name in ("ca_file", "cert_file", "key_file"):
        value = getattr(args, name)
        if value is not None:
            overrides[name] = value
    if args.check_hostname is not None:
        overrides["check_hostname"] = args.check_hostname
    tls_options = {"ca_file", "cert_file", "key_file", "check_hostname"} & overrides.keys()
    if args.tls or tls_options:
        overrides["tls"] = True
    return overrides


def mqtt_config_from_options(
    args: argparse.Namespace, base: MqttConfig | dict[str, Any] | None = None, **fields: Any
) -> MqttConfig:
    """An MqttConfig from base (e.g. a site file's broker), then fields (host, port...), then the
    options; MqttOptionError naming what does not fit (e.g. --cert-file without --key-file)."""
    values: dict[str, Any] = base.model_dump() if isinstance(base, MqttConfig) else dict(base or {})
    values.update(fields)
    overrides = mqtt_overrides(args)
    if "username" in overrides and "password" not in overrides:
        values["password"] = None  # the base's password belongs to the base's user
    values.update(overrides)
    try:
        return MqttConfig.model_validate(values)
    except ValidationError as exc:
        problems = "; ".join(_option_names(str(error["msg"])) for error in exc.errors())
        raise MqttOptionError(problems) from None


def _password(args: argparse.Namespace) -> str | None:
    if args.password is not None:
        return str(args.password)
    if args.password_env is not None:
        value = os.environ.get(args.password_env)
        if value is None:
            raise MqttOptionError(f"--password-env {args.password_env}: that environment variable is not set")
        return value
    return os.environ.get(DEFAULT_PASSWORD_VARIABLE)


def _option_names(message: str) -> str:
    """A model error in the words of the command line (cert_file -> --cert-file)."""
    message = message.removeprefix("Value error, ")
    for field, option in (
        ("cert_file", "--cert-file"),
        ("key_file", "--key-file"),
        ("ca_file", "--ca-file"),
        ("check_hostname", "--no-check-hostname"),
    ):
        message = message.replace(field, option)
    return message
