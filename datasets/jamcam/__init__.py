"""Site file for the two TfL JamCam clips (Blackfriars Rd / Stamford St) in ../shared/footage/jamcam/."""

from pathlib import Path

SITE_FILE = Path(__file__).resolve().parent / "site.yaml"
