"""Redis restarts under a running unit: control and warnings carry on, the outbox resumes.

Done when (issue 6): Redis restarted: the unit keeps controlling and warning, and the outbox resumes.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import time
from pathlib import Path

import pytest

from rsu.uplink.outbox import Outbox
from rsu_tools.testing.mosquitto import EphemeralMosquitto
from rsu_tools.testing.redis_server import EphemeralRedis
from tests.faults.harness import Centre, LocalListener, RunningUnit, sim_epoch_for, wait_until, write_site

pytestmark = [pytest.mark.services, pytest.mark.sumo]

INTERVAL_S = 5.0
REDIS_STOPS_AT_S = 25.0  # unit time
REDIS_DOWN_FOR_S = 40.0  # unit time: eight intervals are sealed while Redis is away
MIN_WALL_DOWN_S = 3.0  # and at least this long in wall time, however fast the simulation runs
RUN_S = 100.0
MAX_MESSAGE_GAP_S = 1.0
WALL_TIMEOUT_S = 120.0


def largest_gap(times: list[float]) -> float:
    ordered = sorted(times)
    return max((later - earlier for earlier, later in itertools.pairwise(ordered)), default=math.inf)


def test_control_and_warnings_carry_on_and_the_outbox_resumes_after_a_redis_restart(
    tmp_path: Path, local_broker: EphemeralMosquitto, centre_broker: EphemeralMosquitto, unit_redis: EphemeralRedis
) -> None:
    """What happens (times are the unit's clock, simulated in lock-step):

    - 25 s: Redis is shut down (SIGTERM, so it writes its AOF) for 40 s of unit time, and at
      least 3 s of wall time. Only the uplink uses Redis: the controller, perception and V2X
      stages never notice, so signal states, SPaT and collision warnings keep flowing on the
      local broker with no gap over 1 s of message time. The uplink's first failing write is
      logged once; from then on each sealed interval is kept in a bounded memory buffer, in
      order, and Redis is retried about once a second (wall time). The unit's health reports
      redis_connected false; no stage crashes or restarts.
    - 65 s: Redis is started again on the same port and folder and loads its AOF. The uplink's
      next retry moves the buffered intervals into the stream, oldest first, and forwarding
      resumes: the centre gets every interval once, in order, each with the data it was sealed
      with (not empty placeholders).
    """
    site = write_site(
        tmp_path / "site",
        local_broker=local_broker,
        centre_host=centre_broker.host,
        centre_port=centre_broker.port,
        redis_url=unit_redis.url,
        interval_s=INTERVAL_S,
    )
    centre = Centre(centre_broker.host, centre_broker.port, tmp_path / "centre.sqlite")
    centre.start()
    listener = LocalListener(local_broker, site.topics)
    epoch_s = sim_epoch_for(INTERVAL_S)
    unit = RunningUnit(site, epoch_s, duration_s=RUN_S + 0.5)
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(centre.stop)
        cleanup.callback(listener.close)
        unit.start()
        cleanup.callback(unit.stop)

        listener.wait_for_time(epoch_s + REDIS_STOPS_AT_S, WALL_TIMEOUT_S)
        unit_redis.stop()
        redis_stopped_at_s = listener.newest_time_s
        down_since = time.monotonic()
        listener.wait_for_time(redis_stopped_at_s + REDIS_DOWN_FOR_S, WALL_TIMEOUT_S)
        # Also long enough in wall time for the uplink's retries and the unit's health checks.
        time.sleep(max(0.0, MIN_WALL_DOWN_S - (time.monotonic() - down_since)))
        unit_redis.start()
        redis_back_at_s = listener.newest_time_s

        assert wait_until(lambda: unit.world_finished, WALL_TIMEOUT_S), "the run did not finish"
        last_seq = round((epoch_s + RUN_S) / INTERVAL_S) - 1
        centre.wait_for_seq(site.unit_id, last_seq, timeout_s=60.0)
        heard = listener.heard
        assert wait_until(lambda: heard.redis_health[-1][1], 10.0), "the unit's health should show Redis back"
        restarts = unit.restarts()
        unit.stop()

        # The unit kept controlling and warning throughout.
        assert largest_gap(heard.signal_state_times) <= MAX_MESSAGE_GAP_S
        assert largest_gap(heard.spat_times) <= MAX_MESSAGE_GAP_S
        assert min(heard.signal_state_times) < redis_stopped_at_s and max(heard.spat_times) >= epoch_s + RUN_S
        # The warning logic keeps checking every track snapshot: its sensor-sharing output never pauses.
        assert largest_gap(heard.objects_times) <= MAX_MESSAGE_GAP_S
        assert max(heard.objects_times) >= epoch_s + RUN_S - 1.0, "the V2X stage stopped checking tracks"
        assert restarts == dict.fromkeys(restarts, 0), f"stages restarted: {restarts}"
        # The operator saw Redis go (and, above, come back).
        assert any(not up and redis_stopped_at_s <= t <= redis_back_at_s for t, up in heard.redis_health)

        # The outbox resumed: every interval once, in order, none empty, and nothing left behind.
        unit_id = site.unit_id
        arrived = centre.seqs_in_arrival_order(unit_id)
        assert arrived == list(range(arrived[0], last_seq + 1))
        assert arrived[0] < redis_stopped_at_s / INTERVAL_S - 1, "intervals before the outage should be there too"
        assert centre.store.missing_seqs(unit_id) == [] and centre.store.gaps(unit_id) == []
        assert centre.store.counters(unit_id).seq_conflicts == 0
        sealed_while_down = [seq for seq in arrived if redis_stopped_at_s <= (seq + 1) * INTERVAL_S <= redis_back_at_s]
        assert len(sealed_while_down) >= REDIS_DOWN_FOR_S / INTERVAL_S - 1
        valid_ratio = centre.valid_ratio_by_seq(unit_id)
        assert all(valid_ratio[seq] > 0 for seq in arrived), "every interval should carry the data it was sealed with"
        outbox = Outbox(unit_redis.client(), unit_id, max_records=100)
        assert outbox.backlog() == 0
        assert outbox.sealed_until() == (last_seq + 1) * INTERVAL_S
        print(
            f"\nRedis down {redis_back_at_s - redis_stopped_at_s:.0f} s of unit time: "
            f"{len(sealed_while_down)} intervals sealed meanwhile, all {len(arrived)} delivered once; "
            f"largest signal-state gap {largest_gap(heard.signal_state_times):.2f} s, "
            f"SPaT gap {largest_gap(heard.spat_times):.2f} s"
        )
