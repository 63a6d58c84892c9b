"""`rsu bench conflicts` runs end to end on small scenes and writes its figures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from rsu_cli import main
from rsu_contracts.config import SiteConfig
from rsu_tools.bench.conflicts import scene
from v2x.junction import JunctionGeometry


def test_bench_writes_both_variants_and_skips_the_reference_when_too_large(tmp_path: Path) -> None:
    out = tmp_path / "conflicts.json"
    assert (
        main(["bench", "conflicts", "--sizes", "20,60", "--repeat", "2", "--reference-max", "20", "--out", str(out)])
        == 0
    )
    figures = json.loads(out.read_text())
    rows = {(row["objects"], row["variant"]): row for row in figures["rows"]}
    variants = ("all-pairs", "grid-nocap", "grid")
    assert set(rows) == {(size, variant) for size in (20, 60) for variant in variants}
    assert rows[(60, "all-pairs")]["skipped"] and rows[(60, "grid-nocap")]["skipped"]
    assert not rows[(60, "grid")]["skipped"]
    # Same scenes, same candidates and conflicts: the grid changes the cost, not the result.
    for key in ("candidate_pairs", "pair_tests", "conflicts"):
        assert rows[(20, "all-pairs")][key] == rows[(20, "grid-nocap")][key] == rows[(20, "grid")][key]
    assert rows[(60, "grid")]["median_ms"] > 0 and rows[(60, "grid")]["peak_mib"] > 0


def test_scenes_are_around_the_junction(sample_site: SiteConfig) -> None:
    tracks = scene(sample_site, 200, np.random.default_rng(5))
    assert len(tracks) == 200 and len({t.track_id for t in tracks}) == 200
    centre = np.array(JunctionGeometry(sample_site).centre)
    distances = np.hypot(*(np.array([[t.x_m, t.y_m] for t in tracks]) - centre).T)
    assert np.median(distances) < 300
    assert {t.road_user.value for t in tracks} >= {"car", "pedestrian", "bicycle"}
