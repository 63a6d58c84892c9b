"""Key files on disk: the unit's and the requesters' Ed25519 keys as PEM files.

The V2X logic (v2x.signing, v2x.priority) takes key objects and PEM bytes and never opens a file;
reading and writing the files is I/O at the edge, here, for the unit, its clients and its tools.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from rsu_contracts.config.load import ConfigError, resolve_relative
from rsu_contracts.config.model import SiteConfig
from v2x.priority import PriorityGate, Requester
from v2x.signing import (
    DEFAULT_MAX_STREAMS,
    DEFAULT_RETAINED_MAX_AGE_S,
    DEFAULT_WINDOW_S,
    Clock,
    SignatureVerifier,
    UnitSigner,
    new_key_pair,
    private_key_from_pem,
    public_key_from_pem,
)


def load_public_key(path: str | Path) -> Ed25519PublicKey:
    return public_key_from_pem(Path(path).read_bytes(), str(path))


def load_private_key(path: str | Path) -> Ed25519PrivateKey:
    return private_key_from_pem(Path(path).read_bytes(), str(path))


def generate_key_files(private_path: str | Path, public_path: str | Path) -> str:
    """Write a new Ed25519 key pair as PEM (private key PKCS#8, mode 0600); return its key id.

    Refuses to overwrite an existing file: replacing a unit's key silently would lock out every
    vehicle that trusts the old one.
    """
    private_path, public_path = Path(private_path), Path(public_path)
    for path in (private_path, public_path):
        if path.exists():
            raise FileExistsError(f"{path} already exists; remove it first to replace the key")
    pair = new_key_pair()
    descriptor = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(pair.private_pem)
    public_path.write_bytes(pair.public_pem)
    return pair.key_id


def signer_from_key_file(path: str | Path, unit_id: str, clock: Clock = time.time) -> UnitSigner:
    return UnitSigner(load_private_key(path), unit_id, clock)


def verifier_from_key_files(
    paths: Iterable[str | Path],
    window_s: float = DEFAULT_WINDOW_S,
    retained_max_age_s: float = DEFAULT_RETAINED_MAX_AGE_S,
    max_streams: int = DEFAULT_MAX_STREAMS,
) -> SignatureVerifier:
    return SignatureVerifier([load_public_key(path) for path in paths], window_s, retained_max_age_s, max_streams)


def priority_gate_from_site(site: SiteConfig, site_path: str | Path, topic: str) -> PriorityGate:
    """The gate for a site, reading each requester's public key file (relative to the site file)."""
    requesters = []
    for index, entry in enumerate(site.priority.requesters):
        path = resolve_relative(site_path, entry.public_key)
        where = f"{site_path}: priority.requesters.{index} ({entry.id}).public_key"
        try:
            public_key = load_public_key(path)
        except FileNotFoundError:
            raise ConfigError(f"{where}: {path} not found") from None
        except (ValueError, OSError) as exc:
            raise ConfigError(f"{where}: {path} is not a usable Ed25519 public key: {exc}") from None
        requesters.append(Requester(entry.id, public_key, frozenset(entry.kinds)))
    try:
        return PriorityGate(site, requesters, topic)
    except ValueError as exc:
        raise ConfigError(f"{site_path}: {exc}") from None
