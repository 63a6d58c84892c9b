"""Site configurations and simulation worlds shipped with rsu-edge."""

from pathlib import Path

DATASETS_DIR = Path(__file__).resolve().parent
SAMPLE_SITE = DATASETS_DIR / "sample_intersection" / "site.yaml"
