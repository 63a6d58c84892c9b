"""Rebuild site.yaml beside this script from the OpenTrafficCam files (see rsu_tools/site_builders/opentrafficcam.py).

python datasets/opentrafficcam/build.py [--check] [--shared DIR]
"""

import sys

from rsu_tools.site_builders.opentrafficcam import main

sys.exit(main())
