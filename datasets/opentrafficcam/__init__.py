"""The OpenTrafficCam junction: a real-footage site (geometry rebuilt by `python -m datasets.opentrafficcam.build`)."""
