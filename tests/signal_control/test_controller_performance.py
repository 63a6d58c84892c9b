"""A decision step must leave the 10 Hz loop plenty of time: p99 well under 5 ms on the sample site."""

from __future__ import annotations

import random
import time

from rsu.config import SiteConfig
from rsu.messages.perception import LaneObservation
from signal_control import SignalController
from tests.signal_control.harness import ALL_LANES, pedestrians_waiting

STEP_BUDGET_P99_S = 0.005


def test_decision_step_p99_is_under_5_ms(sample_site: SiteConfig) -> None:
    rng = random.Random(7)
    # Pre-built observations so the measurement covers the controller, not the test's builders.
    observation_sets = [
        [
            LaneObservation(
                lane_id=lane,
                stop_bar_occupied=rng.random() < 0.3,
                queue_length_m=rng.choice((0.0, 7.0, 21.0)),
                queued_vehicles=rng.randint(0, 3),
                approaching_vehicles=rng.randint(0, 3),
                stop_bar_gap_s=rng.uniform(0.0, 6.0),
            )
            for lane in ALL_LANES
        ]
        for _ in range(100)
    ]
    crosswalks = pedestrians_waiting("cw_north", "cw_east")
    controller = SignalController(sample_site)
    durations = []
    now_s = 0.0
    for index in range(4000):
        now_s += 0.1
        lanes = None if index % 500 > 470 else observation_sets[index % 100]  # some recall too
        started = time.perf_counter()
        controller.step(now_s, lanes, crosswalks if index % 60 == 0 else ())
        durations.append(time.perf_counter() - started)
    durations.sort()
    p99 = durations[int(0.99 * len(durations))]
    assert p99 < STEP_BUDGET_P99_S, f"p99 step time {p99 * 1e3:.2f} ms"
