"""The SUMO network of the simulated world: built from plain XML sources with netconvert.

The sources (nodes, edge types, edges, connections with crossings) live beside the site file in
``sumo/``; the built ``intersection.net.xml`` is committed too, so runs never need netconvert.
Coordinates are not normalised: SUMO's x, y equal the site's local metres (x east, y north).

    python -m rsu.sim.network [SUMO_DIR]      # rebuild, default: the sample intersection
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import sumolib

from rsu_contracts.config.model import Point, SiteConfig

NETWORK_FILE = "intersection.net.xml"
NODE_FILE = "intersection.nod.xml"
TYPE_FILE = "intersection.typ.xml"
EDGE_FILE = "intersection.edg.xml"
CONNECTION_FILE = "intersection.con.xml"

# Options that make the network match the site file: no shift of the origin, no U-turns, and only
# the crossings and connections the sources spell out.
NETCONVERT_OPTIONS = (
    "--offset.disable-normalization",
    "true",
    "--no-turnarounds",
    "true",
    "--crossings.guess",
    "false",
    "--sidewalks.guess",
    "false",
    "--tls.guess",
    "false",
)


class NetworkBuildError(RuntimeError):
    """netconvert is missing or rejected the sources."""


def sumo_tool(name: str) -> str:
    """Path of a SUMO executable (sumo, netconvert, ...): the eclipse-sumo wheel first, then PATH."""
    try:
        import sumo  # the eclipse-sumo wheel

        candidate = Path(sumo.SUMO_HOME) / "bin" / name
        if candidate.is_file():
            return str(candidate)
    except ImportError:
        pass
    found = shutil.which(name)
    if found is None:
        raise NetworkBuildError(f"SUMO executable '{name}' not found (pip install eclipse-sumo)")
    return found


def build_network(sumo_dir: str | Path) -> Path:
    """Run netconvert on the XML sources in ``sumo_dir``; returns the written network file."""
    sumo_dir = Path(sumo_dir).resolve()
    sources = {name: sumo_dir / name for name in (NODE_FILE, TYPE_FILE, EDGE_FILE, CONNECTION_FILE)}
    missing = [str(path) for path in sources.values() if not path.is_file()]
    if missing:
        raise NetworkBuildError(f"network sources missing: {', '.join(missing)}")
    output = sumo_dir / NETWORK_FILE
    # Relative names, run inside sumo_dir: the network records its inputs, and the committed file
    # should not carry the path of whoever built it.
    command = [
        sumo_tool("netconvert"),
        "--node-files",
        NODE_FILE,
        "--type-files",
        TYPE_FILE,
        "--edge-files",
        EDGE_FILE,
        "--connection-files",
        CONNECTION_FILE,
        *NETCONVERT_OPTIONS,
        "--output-file",
        NETWORK_FILE,
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False, cwd=sumo_dir)
    if result.returncode != 0:
        raise NetworkBuildError(f"netconvert failed ({result.returncode}):\n{result.stderr or result.stdout}")
    return output


def read_network(net_file: str | Path) -> sumolib.net.Net:
    """The network with internal lanes, crossings and walking areas."""
    return sumolib.net.readNet(str(net_file), withInternal=True, withPedestrianConnections=True)


@dataclass(frozen=True)
class CrossingGeometry:
    crossing_id: str  # SUMO crossing edge, e.g. ":C_c0"
    lane_id: str  # its single lane, e.g. ":C_c0_0"
    centerline_m: tuple[Point, Point]
    width_m: float

    @property
    def midpoint_m(self) -> Point:
        (x0, y0), (x1, y1) = self.centerline_m
        return ((x0 + x1) / 2.0, (y0 + y1) / 2.0)

    @property
    def polygon_m(self) -> list[Point]:
        """The crossing's rectangle: its centre line widened by half the width on each side."""
        (x0, y0), (x1, y1) = self.centerline_m
        length = ((x1 - x0) ** 2 + (y1 - y0) ** 2) ** 0.5
        nx, ny = -(y1 - y0) / length * self.width_m / 2.0, (x1 - x0) / length * self.width_m / 2.0
        return [(x0 - nx, y0 - ny), (x1 - nx, y1 - ny), (x1 + nx, y1 + ny), (x0 + nx, y0 + ny)]


def crossings(net: sumolib.net.Net) -> list[CrossingGeometry]:
    found = []
    for edge in net.getEdges(withInternal=True):
        if edge.getFunction() != "crossing":
            continue
        lane = edge.getLanes()[0]
        shape = lane.getShape()
        found.append(CrossingGeometry(edge.getID(), lane.getID(), (shape[0], shape[-1]), lane.getWidth()))
    return sorted(found, key=lambda crossing: crossing.crossing_id)


def print_site_geometry(net_file: Path, site: SiteConfig | None) -> None:
    """Print the network's lane and crossing geometry in site-file terms (to update site.yaml)."""
    net = read_network(net_file)
    lanes = site.lanes if site is not None else []
    for lane in lanes:
        if lane.sumo_lane:
            shape = net.getLane(lane.sumo_lane).getShape()
            points = ", ".join(f"[{x:.2f}, {y:.2f}]" for x, y in shape)
            print(f"lane {lane.id} ({lane.sumo_lane}): centerline_m: [{points}]")
    for crossing in crossings(net):
        polygon = ", ".join(f"[{x:.2f}, {y:.2f}]" for x, y in crossing.polygon_m)
        print(f"crossing {crossing.crossing_id} ({crossing.lane_id}): polygon_m: [{polygon}]")


def main(argv: list[str] | None = None) -> int:
    from rsu.samples import SAMPLE_SITE
    from rsu_contracts.config.load import load_site_config

    parser = argparse.ArgumentParser(description="Build the SUMO network of a simulated site with netconvert.")
    parser.add_argument("sumo_dir", nargs="?", type=Path, default=SAMPLE_SITE.parent / "sumo")
    parser.add_argument("--site", type=Path, default=None, help="site.yaml to print matching geometry for")
    parser.add_argument("--print-geometry", action="store_true", help="print lane and crossing geometry")
    args = parser.parse_args(argv)
    try:
        output = build_network(args.sumo_dir)
    except NetworkBuildError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"wrote {output}")
    if args.print_geometry:
        site_path = args.site or (args.sumo_dir.parent / "site.yaml")
        print_site_geometry(output, load_site_config(site_path) if site_path.is_file() else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
