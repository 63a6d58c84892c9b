"""The traffic centre is unreachable for minutes, and the unit is restarted in the middle of it.

Done when (issue 6): the centre broker is stopped for several minutes and started again, the unit
is restarted mid-outage, and the centre ends with every interval exactly once, in order per unit.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

import pytest

from rsu_tools.testing.mosquitto import EphemeralMosquitto
from rsu_tools.testing.redis_server import EphemeralRedis
from tests.faults.harness import (
    Centre,
    LocalListener,
    RunningUnit,
    interval_boundary_after,
    sim_epoch_for,
    wait_until,
    write_site,
)

pytestmark = [pytest.mark.services, pytest.mark.sumo, pytest.mark.slow]

INTERVAL_S = 5.0  # short intervals, so minutes of unit time hold dozens of them
CENTRE_STOPS_AT_S = 30.0  # unit time into the first run
UNIT_CRASHES_AT_S = 100.0  # unit time into the first run, with the centre still down
DOWNTIME_S = 12.0  # unit time between the crash and the restarted unit's first data
OUTAGE_S = 180.0  # unit time the centre broker stays down
AFTER_RETURN_S = 30.0  # unit time the restarted unit keeps running once the centre is back
WALL_TIMEOUT_S = 150.0


def test_every_interval_reaches_the_centre_once_and_in_order_across_an_outage_and_a_restart(
    tmp_path: Path, local_broker: EphemeralMosquitto, centre_broker: EphemeralMosquitto, unit_redis: EphemeralRedis
) -> None:
    """What happens, step by step (times are the unit's clock):

    - 0-30 s: the unit runs and its uplink forwards each 5 s interval to the centre broker
      (QoS 1); the centre's collector stores it and acknowledges it after the commit.
    - 30 s: the centre broker is stopped. The uplink keeps sealing intervals; they wait in the
      unit's Redis outbox (AOF on). The collector and the uplink retry the connection every 1-5 s.
    - 100 s: every process of the unit is SIGKILLed, like a power cut. The interval it was in the
      middle of existed only in memory and is gone; everything sealed is in Redis, with the end of
      the last sealed interval (sealed_until).
    - 112 s: a new unit starts (a fresh SUMO world, the clock carrying on). Its uplink starts while
      the centre is still down (it connects in the background), reads sealed_until and first seals
      the intervals since then that it has no data for: empty, with detector_valid_ratio 0, so the
      centre sees the unit was down instead of a hole.
    - 210 s: the centre broker comes back with its persisted sessions; the uplink drains the
      backlog oldest first, removing each record only after its PUBACK, while new intervals queue
      behind it; the collector's persistent session receives what arrived before it reconnected.
    - Repeats (a record re-sent because its PUBACK was lost) are dropped by (unit_id, seq).

    The unit runs in lock-step simulation, so its clock is simulated time: the 3 minutes of
    outage take about 20-40 s of wall time. Nothing in the uplink depends on wall time except
    reconnect back-off and acknowledgement timeouts, which are shorter than the outage either way.
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
    first_epoch_s = sim_epoch_for(INTERVAL_S)
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(centre.stop)
        cleanup.callback(listener.close)

        first_run = RunningUnit(site, first_epoch_s, duration_s=3600.0)  # it crashes long before
        first_run.start()
        cleanup.callback(first_run.stop)
        listener.wait_for_time(first_epoch_s + CENTRE_STOPS_AT_S, WALL_TIMEOUT_S)
        centre_broker.stop()
        centre_stopped_at_s = listener.newest_time_s

        listener.wait_for_time(first_epoch_s + UNIT_CRASHES_AT_S, WALL_TIMEOUT_S)
        first_run.crash()
        crashed_at_s = listener.newest_time_s

        second_epoch_s = interval_boundary_after(crashed_at_s + DOWNTIME_S, INTERVAL_S)
        centre_returns_at_s = interval_boundary_after(centre_stopped_at_s + OUTAGE_S, INTERVAL_S)
        run_ends_at_s = centre_returns_at_s + AFTER_RETURN_S  # on a boundary: the last interval ends there
        second_run = RunningUnit(site, second_epoch_s, duration_s=run_ends_at_s - second_epoch_s + 0.5)
        second_run.start()
        cleanup.callback(second_run.stop)
        listener.wait_for_time(centre_returns_at_s, WALL_TIMEOUT_S)
        centre_broker.start()

        assert wait_until(lambda: second_run.world_finished, WALL_TIMEOUT_S), "the second run did not finish"
        last_seq = round(run_ends_at_s / INTERVAL_S) - 1
        centre.wait_for_seq(site.unit_id, last_seq, timeout_s=60.0)

        unit_id = site.unit_id
        arrived = centre.seqs_in_arrival_order(unit_id)
        first_seq = arrived[0]
        outage_began_seq = math.floor(centre_stopped_at_s / INTERVAL_S)
        assert first_seq < outage_began_seq - 2, "the centre should have had data before the outage"
        assert arrived == list(range(first_seq, last_seq + 1)), "every interval once, in order, no gap"
        assert centre.store.missing_seqs(unit_id) == []
        assert centre.store.gaps(unit_id) == []
        counters = centre.store.counters(unit_id)
        assert counters.seq_conflicts == 0
        assert counters.stored == len(arrived)

        # The intervals the unit was down for are there, reported empty; all others carry data.
        valid_ratio = centre.valid_ratio_by_seq(unit_id)
        empty = [seq for seq in arrived if valid_ratio[seq] == 0.0]
        crashed_in_seq = math.floor(crashed_at_s / INTERVAL_S)
        second_run_first_seq = round(second_epoch_s / INTERVAL_S)
        assert empty, "the downtime should be reported as empty intervals"
        assert empty == list(range(empty[0], second_run_first_seq)), f"empty intervals {empty}"
        assert crashed_in_seq - 1 <= empty[0] <= crashed_in_seq

        assert second_run.restarts() == dict.fromkeys(second_run.restarts(), 0), "no stage should have crashed"
        print(
            f"\ncentre outage {run_ends_at_s - AFTER_RETURN_S - centre_stopped_at_s:.0f} s of unit time, "
            f"unit down {second_epoch_s - crashed_at_s:.1f} s: {len(arrived)} intervals stored once "
            f"({counters.duplicates} repeats dropped), {len(empty)} reported empty for the downtime"
        )
