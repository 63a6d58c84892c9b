"""rsu-edge: software for a roadside traffic edge unit."""

__version__ = "0.1.0"
