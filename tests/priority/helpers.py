"""Requesters with keys made for the test, a site that allows them, and a clock to sign with."""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from rsu_clients.priority_requester import SignedRequest, signed_request
from rsu_contracts.config import SiteConfig
from rsu_contracts.config.model import PriorityConfig
from rsu_contracts.enums import PriorityKind
from rsu_contracts.messages import PriorityAction
from rsu_contracts.topics import Topics
from v2x.priority import PriorityGate, Requester
from v2x.signing import UnitSigner

START_S = 1_700_000_000.0
AMBULANCE = "ambulance-7"
BUS = "bus-12"
FIRE = "fire-3"  # allowed both kinds


@dataclass
class Clock:
    now_s: float = START_S

    def __call__(self) -> float:
        return self.now_s


@dataclass
class Requesters:
    """Signers (private keys) of the allow-listed requesters, plus one nobody allowed."""

    clock: Clock
    keys: dict[str, Ed25519PrivateKey] = field(default_factory=dict)
    # One signer per identity, so sequence numbers keep increasing as a real requester's do.
    signers: dict[tuple[str, str], UnitSigner] = field(default_factory=dict)

    @classmethod
    def make(cls, clock: Clock) -> Requesters:
        names = (AMBULANCE, BUS, FIRE, "stranger")
        return cls(clock, {name: Ed25519PrivateKey.generate() for name in names})

    def signer(self, name: str, key_of: str | None = None) -> UnitSigner:
        """Signs as `name`, with `key_of`'s key if given (a requester using someone else's key)."""
        key = key_of or name
        if (name, key) not in self.signers:
            self.signers[name, key] = UnitSigner(self.keys[key], name, clock=self.clock)
        return self.signers[name, key]

    def allowed(self) -> list[Requester]:
        kinds = {
            AMBULANCE: frozenset({PriorityKind.EMERGENCY}),
            BUS: frozenset({PriorityKind.TRANSIT}),
            FIRE: frozenset({PriorityKind.EMERGENCY, PriorityKind.TRANSIT}),
        }
        return [Requester(name, self.keys[name].public_key(), kinds[name]) for name in kinds]


def site_with_priority(site: SiteConfig, **priority: object) -> SiteConfig:
    """The sample site with a priority section (requesters are given to the gate directly)."""
    return site.model_copy(update={"priority": PriorityConfig.model_validate(priority)})


def topics_of(site: SiteConfig) -> Topics:
    return Topics.for_site(site)


def make_gate(site: SiteConfig, requesters: Requesters) -> PriorityGate:
    return PriorityGate(site, requesters.allowed(), topics_of(site).priority_request)


def request(
    requesters: Requesters,
    site: SiteConfig,
    name: str,
    kind: PriorityKind,
    request_id: str = "r1",
    key_of: str | None = None,
    **fields: object,
) -> SignedRequest:
    """A request signed by `name` at the clock's time, for the site's request topic."""
    return signed_request(
        requesters.signer(name, key_of),
        site.unit_id,
        topics_of(site).priority_request,
        kind,
        request_id,
        requesters.clock.now_s,
        **fields,  # type: ignore[arg-type]
    )


def check_out(
    requesters: Requesters, site: SiteConfig, name: str, kind: PriorityKind, request_id: str
) -> SignedRequest:
    return request(requesters, site, name, kind, request_id, action=PriorityAction.CHECK_OUT)
