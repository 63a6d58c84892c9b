"""The unit's local web page: live view, calibration helper and Prometheus metrics.

Importing this package is cheap (no FastAPI): the perception stage uses `rsu.web.preview` to draw
and publish its camera preview, and only the web stage imports the application itself.
"""
