"""Where the sample sites shipped in the repository's `datasets/` folder live.

`datasets/` is data (site files, SUMO networks, build scripts), not a Python package; the unit and
its tools find it next to the checkout, or wherever RSU_DATASETS_DIR points.
"""

from __future__ import annotations

import os
from pathlib import Path

DATASETS_DIR = Path(os.environ.get("RSU_DATASETS_DIR", Path(__file__).resolve().parents[1] / "datasets"))
SAMPLE_SITE = DATASETS_DIR / "sample_intersection" / "site.yaml"
JAMCAM_SITE = DATASETS_DIR / "jamcam" / "site.yaml"
OPENTRAFFICCAM_SITE = DATASETS_DIR / "opentrafficcam" / "site.yaml"
