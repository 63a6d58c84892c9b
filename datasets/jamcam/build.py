"""Print the JamCam site's calibration block (see rsu_tools/site_builders/jamcam.py).

python datasets/jamcam/build.py
"""

from rsu_tools.site_builders.jamcam import main

main()
