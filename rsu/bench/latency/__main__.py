"""`python -m rsu.bench.latency [options]`: the same as `rsu bench latency [options]`."""

from __future__ import annotations

import sys

from rsu.bench.latency.cli import main

sys.exit(main())
