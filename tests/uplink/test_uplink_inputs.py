"""The uplink stage's inputs: an absurd observation (an infinite queue, 1e20 queued vehicles) is
counted and dropped at the stage's guard, and the interval it fell in is sealed from the genuine
messages into an aggregate the centre accepts: nothing is lost."""

from __future__ import annotations

from rsu.runtime.input_guard import Rejection
from rsu.stages.uplink import absorb, input_guard, seal_all
from rsu.uplink.aggregator import IntervalAggregator
from rsu_contracts.config.model import SiteConfig
from rsu_contracts.messages import Aggregate, decode
from rsu_contracts.topics import Topics
from tests.uplink.test_aggregator import LANE, T0, detectors


def test_absurd_observations_are_counted_and_dropped_and_the_interval_is_sealed(sample_site: SiteConfig) -> None:
    topics = Topics.for_site(sample_site)
    guard = input_guard(sample_site)
    aggregators = [IntervalAggregator(sample_site, 60.0)]
    genuine = detectors(T0 + 1, lanes={LANE: (True, 20.0, 3)}).to_json()
    infinite = genuine.replace(b'"queue_length_m":20.0', b'"queue_length_m":Infinity')
    huge = genuine.replace(b'"queued_vehicles":3', b'"queued_vehicles":1e20')
    assert infinite != genuine and huge != genuine
    for t, payload in ((T0 + 1, genuine), (T0 + 2, infinite), (T0 + 3, huge)):
        clock_s = t + 0.05
        absorb(aggregators, topics, topics.detectors, payload, guard, clock_s)
    # A detector state stamped far ahead of the clock does not push sealing forward either.
    future = detectors(T0 + 1e6, lanes={LANE: (True, 20.0, 3)}).to_json()
    assert absorb(aggregators, topics, topics.detectors, future, guard, T0 + 4) == 0.0
    assert absorb(aggregators, topics, topics.detectors, detectors(T0 + 30).to_json(), guard, T0 + 30) == T0 + 30
    assert guard.count(topics.detectors, Rejection.INVALID) == 2
    assert guard.count(topics.detectors, Rejection.FUTURE) == 1
    [body] = seal_all(aggregators, T0 + 61)
    record = Aggregate(unit_id="rsu-test", seq=1, capture_time_s=body.interval_end_s, publish_time_s=T0 + 61,
                       **body.fields())  # fmt: skip
    lane = next(lane for lane in decode(Aggregate, record.to_json()).lanes if lane.lane_id == LANE)
    assert lane.max_queue_m == 20.0
    assert 0 < lane.mean_queue_vehicles <= 3
