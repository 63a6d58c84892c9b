"""A world factory that always closes its worlds: libsumo runs one simulation per process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import pytest

from rsu.samples import SAMPLE_SITE
from rsu.sim.world import SumoWorld
from rsu_contracts.config import SiteConfig


class WorldFactory(Protocol):
    def __call__(
        self, site: SiteConfig | None = None, seed: int = 42, use_traci: bool = False, routes: Path | None = None
    ) -> SumoWorld: ...


@pytest.fixture
def open_world(sample_site: SiteConfig) -> Iterator[WorldFactory]:
    """A SumoWorld on the sample site (or a variant of it), closed after the test."""
    opened: list[SumoWorld] = []

    def factory(
        site: SiteConfig | None = None, seed: int = 42, use_traci: bool = False, routes: Path | None = None
    ) -> SumoWorld:
        world = SumoWorld(site or sample_site, SAMPLE_SITE, seed=seed, use_traci=use_traci, routes=routes)
        opened.append(world)
        return world

    yield factory
    for world in opened:
        world.close()
