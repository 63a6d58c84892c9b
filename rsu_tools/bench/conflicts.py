"""`rsu bench conflicts`: time and memory of the conflict search per track list, by scene size.

Random but realistic scenes around the sample junction (rsu.samples.SAMPLE_SITE): vehicles on
the inbound lanes (heading along them, queued or moving, lanes extended upstream as the scene
grows), vehicles crossing the junction box at any heading, cyclists on the lanes and pedestrians
on the crosswalks, under a signal state with one group green. Per size, ConflictDetector.update
(which runs find_conflicts) is timed over successive snapshots (median and p99, wall clock), and
its peak memory is taken with tracemalloc on a separate snapshot (tracing slows the code).

Three variants, run on the same snapshots and interleaved per snapshot (so foreign load on the
machine hits them alike):

- ``all-pairs``: the reference, candidate pairs from one (n, n) comparison and no caps, as the
  search was before (only in this bench; the pair filters after it are the shipped, vectorised
  ones in every variant);
- ``grid-nocap``: the spatial-hash candidate search without the caps (the grid's own effect);
- ``grid``: the code as shipped, the grid and the per-update caps (WarningConfig.max_objects,
  max_candidate_pairs, max_pair_tests).

The two uncapped variants are skipped above --reference-max objects: at 40,000 all-pairs would
allocate tens of GiB (the crash this bench exists for).

Prints a table and writes the figures as JSON (--out).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import v2x.conflicts.detector as detector_module
import v2x.conflicts.snapshot as snapshot_module
from rsu.samples import SAMPLE_SITE
from rsu_contracts.config import SiteConfig, load_site_config
from rsu_contracts.config.model import WarningConfig
from rsu_contracts.enums import RoadUserType
from rsu_contracts.messages.perception import TrackedObject
from rsu_contracts.messages.signal import SignalState
from rsu_tools.testing.signal_states import steady_signal_state
from v2x.conflicts import ConflictDetector
from v2x.conflicts.candidates import CandidatePairs
from v2x.conflicts.candidates import candidate_pairs as grid_candidates
from v2x.conflicts.shared import PATH_EXTENSION_M
from v2x.conflicts.types import PairIndices
from v2x.junction import JunctionGeometry
from v2x.prediction import FloatArray

DEFAULT_SIZES = (10, 50, 100, 200, 500, 2_000, 40_000)
DEFAULT_REPEAT = 30
# Large scenes are slow to build and, for the reference, to search: fewer snapshots there.
LARGE_SCENE = 2_000
LARGE_REPEAT = 5
# The all-pairs reference allocates (n, n, 2) floats: beyond this it is not run.
DEFAULT_REFERENCE_MAX = 2_000
FRAME_S = 0.1
START_S = 1_700_000_000.0
# Scene mix: vehicles on lanes, vehicles in the box, cyclists, pedestrians.
SHARE_IN_BOX = 0.1
SHARE_CYCLISTS = 0.08
SHARE_PEDESTRIANS = 0.1
# Vehicles per lane follow each other this far apart (front to front), metres.
SPACING_M = (6.5, 40.0)


@dataclass
class ConflictBenchOptions:
    sizes: tuple[int, ...] = DEFAULT_SIZES
    repeat: int = DEFAULT_REPEAT
    reference_max: int = DEFAULT_REFERENCE_MAX
    seed: int = 1


@dataclass
class ConflictBenchRow:
    objects: int
    variant: str
    snapshots: int
    median_ms: float
    # The candidate search alone (part of median_ms).
    search_median_ms: float
    p99_ms: float
    max_ms: float
    peak_mib: float
    # Medians per snapshot: candidate pairs and pairs through the exact per-pair tests.
    candidate_pairs: int
    pair_tests: int
    # Totals over the timed snapshots: what the caps left out.
    pairs_left_out: int
    pair_tests_left_out: int
    objects_left_out: int
    conflicts: int
    # Why a variant was not run (empty when it was).
    skipped: str = ""


@dataclass
class ConflictBenchResult:
    site: str
    max_objects: int
    max_candidate_pairs: int
    max_pair_tests: int
    rows: list[ConflictBenchRow] = field(default_factory=list)


def _road_user(
    kind: RoadUserType, track_id: int, x: float, y: float, speed: float, heading: float, **extra: Any
) -> TrackedObject:
    size = {RoadUserType.PEDESTRIAN: (0.5, 0.5), RoadUserType.BICYCLE: (1.8, 0.6), RoadUserType.TRUCK: (10.0, 2.5)}
    length, width = size.get(kind, (4.5, 1.8))
    return TrackedObject(
        track_id=track_id,
        road_user=kind,
        x_m=x,
        y_m=y,
        speed_mps=speed,
        heading_deg=heading % 360.0,
        length_m=length,
        width_m=width,
        age_s=3.0,
        **extra,
    )


def scene(site: SiteConfig, count: int, rng: np.random.Generator) -> list[TrackedObject]:
    """`count` road users around the junction (see the module docstring)."""
    geometry = JunctionGeometry(site)
    lanes = site.lanes
    in_box = int(count * SHARE_IN_BOX)
    cyclists = int(count * SHARE_CYCLISTS)
    pedestrians = int(count * SHARE_PEDESTRIANS) if site.crosswalks else 0
    on_lanes = count - in_box - cyclists - pedestrians
    tracks: list[TrackedObject] = []
    # Vehicles (and cyclists) queued or moving up to each stop line, lanes extended upstream.
    per_lane = np.bincount(rng.integers(0, len(lanes), on_lanes + cyclists), minlength=len(lanes))
    kinds = [RoadUserType.BICYCLE] * cyclists + [RoadUserType.CAR] * on_lanes
    rng.shuffle(kinds)
    next_kind = iter(kinds)
    for lane, vehicles in zip(lanes, per_lane.tolist(), strict=True):
        line = geometry.stop_lines[lane.id]
        ux, uy = line.direction
        upstream = np.cumsum(rng.uniform(*SPACING_M, vehicles))
        for distance in upstream.tolist():
            kind = next(next_kind)
            if kind is RoadUserType.CAR and rng.random() < 0.1:
                kind = RoadUserType.TRUCK
            queued = distance < 60.0 and rng.random() < 0.5
            speed = float(rng.uniform(0.0, 1.0) if queued else rng.uniform(3.0, 15.0))
            jitter = rng.normal(0.0, 0.3)
            tracks.append(
                _road_user(
                    kind,
                    len(tracks),
                    line.x_m - ux * distance + uy * jitter,
                    line.y_m - uy * distance - ux * jitter,
                    speed,
                    line.heading_deg + rng.normal(0.0, 3.0),
                    acceleration_mps2=float(rng.uniform(-2.5, 1.5)),
                    lane_id=lane.id,
                )
            )
    box = geometry.box
    low, high = box.min(axis=0), box.max(axis=0)
    for _ in range(in_box):
        x, y = rng.uniform(low, high)
        tracks.append(
            _road_user(
                RoadUserType.CAR,
                len(tracks),
                float(x),
                float(y),
                float(rng.uniform(2.0, 12.0)),
                float(rng.uniform(0, 360)),
                acceleration_mps2=float(rng.uniform(-2.0, 1.0)),
            )
        )
    for _ in range(pedestrians):
        crosswalk = geometry.crosswalks[int(rng.integers(0, len(geometry.crosswalks)))]
        corners = crosswalk.polygon
        weights = rng.dirichlet(np.ones(len(corners)))
        x, y = weights @ corners
        heading = crosswalk.walking_heading_deg(float(rng.uniform(0, 360)))
        tracks.append(
            _road_user(RoadUserType.PEDESTRIAN, len(tracks), float(x), float(y), float(rng.uniform(0.0, 1.8)), heading)
        )
    return tracks


def signal_state(site: SiteConfig, now_s: float) -> SignalState:
    """The first vehicle group green, everything else red."""
    return steady_signal_state(site, now_s, green_group=min(lane.signal_group for lane in site.lanes))


def all_pairs_candidates(
    tracks: Sequence[TrackedObject], reach_m: FloatArray, config: WarningConfig, max_pairs: int | None = None
) -> CandidatePairs:
    """The reference: every pair compared in one (n, n) pass, no cap (the search before the grid)."""
    positions = np.array([[t.x_m, t.y_m] for t in tracks])
    half_lengths = np.array([t.length_m / 2 for t in tracks])
    separation = np.linalg.norm(positions[:, None, :] - positions[None, :, :], axis=-1)
    limit = reach_m[:, None] + reach_m[None, :] + half_lengths[:, None] + half_lengths[None, :]
    limit = limit + config.collision_radius_m + PATH_EXTENSION_M
    first, second = np.nonzero(np.triu(separation <= limit, k=1))
    return CandidatePairs(first, second, 0)


def _everyone(tracks: Sequence[TrackedObject], centre: tuple[float, float], max_objects: int) -> np.ndarray:
    return np.arange(len(tracks), dtype=np.intp)


def _every_pair(
    positions_m: FloatArray, pair_sets: Sequence[PairIndices], max_pairs: int
) -> tuple[list[PairIndices], int]:
    return list(pair_sets), 0


@contextmanager
def _stand_ins(replaced: Sequence[tuple[Any, str, Any]]) -> Iterator[None]:
    """Module attributes replaced for the duration (the bench's reference variants)."""
    saved = [(module, name, getattr(module, name)) for module, name, _ in replaced]
    for module, name, stand_in in replaced:
        setattr(module, name, stand_in)
    try:
        yield
    finally:
        for module, name, original in saved:
            setattr(module, name, original)


def _uncapped_grid(
    tracks: Sequence[TrackedObject], reach_m: FloatArray, config: WarningConfig, max_pairs: int | None = None
) -> CandidatePairs:
    return grid_candidates(tracks, reach_m, config, None)


_NO_CAPS = [
    (snapshot_module, "nearest_to_junction", _everyone),
    (snapshot_module, "nearest_pairs", _every_pair),
    (detector_module, "nearest_to_junction", _everyone),
]
# Variant -> what it replaces: the search before the grid, the grid without the caps, as shipped.
VARIANTS: dict[str, list[tuple[Any, str, Any]]] = {
    "all-pairs": [(snapshot_module, "candidate_pairs", all_pairs_candidates), *_NO_CAPS],
    "grid-nocap": [(snapshot_module, "candidate_pairs", _uncapped_grid), *_NO_CAPS],
    "grid": [],
}
# Variants without the caps run only up to --reference-max objects.
UNCAPPED = ("all-pairs", "grid-nocap")


@dataclass
class _Samples:
    durations_s: list[float] = field(default_factory=list)
    search_s: list[float] = field(default_factory=list)
    candidates: list[int] = field(default_factory=list)
    tests: list[int] = field(default_factory=list)
    conflicts: int = 0


@contextmanager
def _timed_search(durations_s: list[float]) -> Iterator[None]:
    """Time the candidate search in use (a part of update's time)."""
    search = snapshot_module.candidate_pairs

    def timed(*args: Any, **kwargs: Any) -> CandidatePairs:
        started = time.perf_counter()
        try:
            return search(*args, **kwargs)
        finally:
            durations_s.append(time.perf_counter() - started)

    with _stand_ins([(snapshot_module, "candidate_pairs", timed)]):
        yield


def measure(site: SiteConfig, count: int, variants: Sequence[str], repeat: int, seed: int) -> list[ConflictBenchRow]:
    """The variants on the same snapshots, interleaved per snapshot so foreign load hits all alike."""
    rng = np.random.default_rng(seed + count)
    snapshots = [scene(site, count, rng) for _ in range(repeat + 1)]  # the last for the memory run
    detectors = {variant: ConflictDetector(site, site.v2x.warnings) for variant in variants}
    samples = {variant: _Samples() for variant in variants}
    for index, tracks in enumerate(snapshots[:-1]):
        now_s = START_S + index * FRAME_S
        signal = signal_state(site, now_s)
        for variant in variants:
            detector, sample = detectors[variant], samples[variant]
            with _stand_ins(VARIANTS[variant]), _timed_search(sample.search_s):
                gc.collect()
                started = time.perf_counter()
                sample.conflicts = len(detector.update(tracks, signal, now_s))
                sample.durations_s.append(time.perf_counter() - started)
            sample.candidates.append(detector.search_counters.last_candidate_pairs)
            sample.tests.append(detector.search_counters.last_pair_tests)
    rows = []
    now_s = START_S + repeat * FRAME_S
    signal = signal_state(site, now_s)
    for variant in variants:
        detector, sample = detectors[variant], samples[variant]
        counters = detector.search_counters
        left_out = (counters.pairs_left_out, counters.pair_tests_left_out, counters.objects_left_out)
        with _stand_ins(VARIANTS[variant]):
            gc.collect()
            tracemalloc.start()
            try:
                detector.update(snapshots[-1], signal, now_s)
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
        milliseconds = np.array(sample.durations_s) * 1000.0
        rows.append(
            ConflictBenchRow(
                objects=count,
                variant=variant,
                snapshots=repeat,
                median_ms=float(np.median(milliseconds)),
                search_median_ms=float(np.median(sample.search_s)) * 1000.0 if sample.search_s else 0.0,
                p99_ms=float(np.percentile(milliseconds, 99)),
                max_ms=float(milliseconds.max()),
                peak_mib=peak / 2**20,
                candidate_pairs=int(np.median(sample.candidates)),
                pair_tests=int(np.median(sample.tests)),
                pairs_left_out=left_out[0],
                pair_tests_left_out=left_out[1],
                objects_left_out=left_out[2],
                conflicts=sample.conflicts,
            )
        )
    return rows


def run_bench(
    site: SiteConfig, options: ConflictBenchOptions, progress: Callable[[str], None] | None = None
) -> ConflictBenchResult:
    config = site.v2x.warnings
    result = ConflictBenchResult(
        str(SAMPLE_SITE), config.max_objects, config.max_candidate_pairs, config.max_pair_tests
    )
    for count in options.sizes:
        repeat = options.repeat if count < LARGE_SCENE else min(options.repeat, LARGE_REPEAT)
        variants = [v for v in VARIANTS if v not in UNCAPPED or count <= options.reference_max]
        if progress is not None:
            progress(f"  {count} objects, {', '.join(variants)}: {repeat} snapshots ...")
        rows = {row.variant: row for row in measure(site, count, variants, repeat, options.seed)}
        for variant in VARIANTS:
            if variant in rows:
                result.rows.append(rows[variant])
                continue
            needed = count * count * 2 * 8 / 2**30
            reason = (
                f"not run: the (n, n, 2) distance array alone is {needed:.1f} GiB"
                if variant == "all-pairs"
                else f"not run: uncapped above --reference-max {options.reference_max} objects"
            )
            result.rows.append(
                ConflictBenchRow(
                    count, variant, 0, math.nan, math.nan, math.nan, math.nan, math.nan, 0, 0, 0, 0, 0, 0, reason
                )
            )
    return result


def render_table(result: ConflictBenchResult) -> str:
    lines = [
        f"conflict search per track list (ConflictDetector.update), {result.site}",
        f"caps: max_objects {result.max_objects}, max_candidate_pairs {result.max_candidate_pairs}, "
        f"max_pair_tests {result.max_pair_tests}; pairs and tests: median per snapshot, cut: total",
        f"{'objects':>8} {'variant':>10} {'n':>4} {'median ms':>10} {'search ms':>10} {'p99 ms':>9} {'peak MiB':>9} "
        f"{'pairs':>8} {'tests':>6} {'pairs cut':>10} {'tests cut':>10} {'objs cut':>9} {'conflicts':>9}",
    ]
    for row in result.rows:
        if row.skipped:
            lines.append(f"{row.objects:>8} {row.variant:>10}  {row.skipped}")
            continue
        lines.append(
            f"{row.objects:>8} {row.variant:>10} {row.snapshots:>4} {row.median_ms:>10.2f} "
            f"{row.search_median_ms:>10.2f} {row.p99_ms:>9.2f} "
            f"{row.peak_mib:>9.2f} {row.candidate_pairs:>8} {row.pair_tests:>6} {row.pairs_left_out:>10} "
            f"{row.pair_tests_left_out:>10} {row.objects_left_out:>9} {row.conflicts:>9}"
        )
    return "\n".join(lines)


def run_bench_conflicts_command(args: argparse.Namespace) -> int:
    sizes = tuple(int(size) for size in args.sizes.split(",") if size.strip())
    if not sizes or min(sizes) < 1 or args.repeat < 1:
        print("rsu bench conflicts: error: sizes and --repeat must be positive", file=sys.stderr)
        return 2
    site = load_site_config(Path(args.site)) if args.site else load_site_config(SAMPLE_SITE)
    options = ConflictBenchOptions(sizes=sizes, repeat=args.repeat, reference_max=args.reference_max, seed=args.seed)
    result = run_bench(site, options, progress=lambda line: print(line, file=sys.stderr, flush=True))
    if args.site:
        result.site = args.site
    print(render_table(result))
    out = Path(args.out) if args.out else Path(tempfile.gettempdir()) / "rsu-bench-conflicts.json"
    out.write_text(json.dumps(asdict(result), indent=2) + "\n")
    print(f"  figures written to {out}")
    return 0


def add_bench_conflicts_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser], name: str = "conflicts"
) -> argparse.ArgumentParser:
    """Add the conflict search bench (`rsu bench conflicts`)."""
    defaults = ConflictBenchOptions()
    parser = subparsers.add_parser(
        name,
        help="conflict search time and memory per track list, 10 to 40,000 objects, grid against all-pairs",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument(
        "--sizes",
        default=",".join(str(size) for size in defaults.sizes),
        help="comma-separated scene sizes (default %(default)s)",
    )
    parser.add_argument(
        "--repeat", type=int, default=defaults.repeat, help="snapshots timed per size (default %(default)s)"
    )
    parser.add_argument(
        "--reference-max",
        type=int,
        default=defaults.reference_max,
        help="largest scene the all-pairs reference runs on (default %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=defaults.seed, help="scene seed (default %(default)s)")
    parser.add_argument("--site", default=None, help="site file (default: the sample junction)")
    parser.add_argument("--out", default=None, help="write the figures here (default: a file in the temp folder)")
    parser.set_defaults(handler=run_bench_conflicts_command)
    return parser


def main(argv: list[str] | None = None) -> int:
    """`python -m rsu_tools.bench.conflicts [options]`: the same as `rsu bench conflicts [options]`."""
    parser = argparse.ArgumentParser(prog="rsu")
    subparsers = parser.add_subparsers(dest="bench", required=True)
    add_bench_conflicts_parser(subparsers)
    args = parser.parse_args(["conflicts", *(sys.argv[1:] if argv is None else argv)])
    return int(args.handler(args))


if __name__ == "__main__":
    raise SystemExit(main())
