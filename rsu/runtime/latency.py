"""Process settings for stages on the warning path, where a pause of a few milliseconds matters."""

from __future__ import annotations

import gc
import sys

# paho's network thread writes what a stage publishes: it must get the GIL soon after a publish,
# not after CPython's default 5 ms switch interval.
GIL_SWITCH_INTERVAL_S = 0.0005
# Young-generation collections every 50,000 allocations instead of 700: fewer, still short pauses.
YOUNG_GENERATION_THRESHOLD = 50_000


def tune_interpreter_for_latency() -> None:
    """Shorter GIL switch interval and rarer young-generation collections."""
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, middle, old)


def freeze_startup_objects() -> None:
    """Collect once, then exclude everything built so far (models, config, libraries) from later
    collections: a full collection otherwise walks every torch and pydantic object, for tens of ms."""
    gc.collect()
    gc.freeze()
