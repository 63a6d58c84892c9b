"""The unit's Ed25519 signing key: where it lives and the signer made from it.

Kept apart from the V2X stage so the controller stage (which signs its priority answers) does not
load the ASN.1 codecs just to find a key.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from rsu.key_files import generate_key_files, signer_from_key_file
from rsu_contracts.config.load import resolve_relative
from rsu_contracts.config.model import SiteConfig
from v2x.signing import UnitSigner

log = logging.getLogger(__name__)

PRIVATE_KEY_NAME = "v2x-signing.pem"
PUBLIC_KEY_NAME = "v2x-signing.pub.pem"


def state_dir(site: SiteConfig, site_path: str | Path) -> Path:
    """The unit's own folder for state such as its generated signing key (created on demand)."""
    if site.v2x.state_dir is not None:
        base = resolve_relative(site_path, site.v2x.state_dir)
    elif os.environ.get("RSU_STATE_DIR"):
        base = Path(os.environ["RSU_STATE_DIR"]).expanduser()
    else:
        xdg = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
        base = Path(xdg).expanduser() / "rsu-edge"
    return base / site.unit_id


def unit_key_paths(site: SiteConfig, site_path: str | Path) -> tuple[Path, Path]:
    """(private, public) key files of the unit: the configured key, or the generated one."""
    if site.v2x.signing_key is not None:
        private = resolve_relative(site_path, site.v2x.signing_key)
        return private, private.with_name(private.name.removesuffix(".pem") + ".pub.pem")
    folder = state_dir(site, site_path)
    return folder / PRIVATE_KEY_NAME, folder / PUBLIC_KEY_NAME


def unit_signer(site: SiteConfig, site_path: str | Path) -> UnitSigner:
    """The unit's signer; without a configured key, the state dir's key, generated on first start."""
    private, public = unit_key_paths(site, site_path)
    if site.v2x.signing_key is None and not private.exists():
        private.parent.mkdir(parents=True, exist_ok=True)
        try:
            generated = generate_key_files(private, public)
        except FileExistsError:
            pass  # another process of this unit won the race: use its key
        else:
            log.warning(
                "generated the unit's V2X signing key %s in %s; give vehicles the public key %s",
                generated,
                private.parent,
                public,
            )
    signer = signer_from_key_file(private, site.unit_id)
    if not public.exists():
        log.warning("no public key file beside %s: vehicles need the key with id %s", private, signer.key_id)
    log.info("signing V2X messages with key %s (public key %s)", signer.key_id, public)
    return signer
