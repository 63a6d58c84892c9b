"""Load and latency runs for rsu-edge parts, bounded in time and kept on loopback."""
