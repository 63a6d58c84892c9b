"""`python -m rsu_tools.bench.latency [options]`: the same as `rsu bench latency [options]`."""

from __future__ import annotations

import sys

from rsu_tools.bench.latency.cli import main

sys.exit(main())
