"""A centre outage longer than the outbox can hold: the oldest go, counted and reported.

Issue 6, store and forward: during an outage the backlog grows up to a configured bound (oldest
trimmed, counted, reported); on reconnect it drains in order while new data keeps flowing.
"""

from __future__ import annotations

import contextlib
import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from rsu.runtime.stage import RunOptions
from rsu.runtime.supervisor import Supervisor
from rsu.unit import UPLINK
from rsu.uplink.outbox import Outbox
from rsu_contracts.messages import ControllerMode, Indication, SignalGroupState, SignalState
from rsu_tools.testing.mosquitto import EphemeralMosquitto
from rsu_tools.testing.redis_server import EphemeralRedis
from tests.faults.harness import Centre, FaultSite, wait_until, write_site

pytestmark = [pytest.mark.services]

INTERVAL_S = 1.0  # the shortest the config allows: many intervals in little time
OUTBOX_MAX_RECORDS = 30
BEFORE_OUTAGE_S = 10  # message time
OUTAGE_S = 90  # message time: 90 intervals for an outbox of 30
AFTER_OUTAGE_S = 40  # message time, fed at 4x real time from the moment the centre is back
MESSAGES_PER_S = 4  # signal states per second of message time
TRIM_REPORT = re.compile(
    r"uplink outbox full \(bound (\d+) records\): trimmed the (\d+) oldest aggregates unsent, (\d+) in total"
)


@dataclass(frozen=True)
class TrimReport:
    bound: int
    newly_trimmed: int
    total_trimmed: int


class UplinkLog:
    """The uplink's trim warnings, read from its process' stderr (which capfd captures)."""

    def __init__(self, capfd: pytest.CaptureFixture[str]) -> None:
        self.capfd = capfd
        self.trim_reports: list[TrimReport] = []

    def read(self) -> list[TrimReport]:
        for line in self.capfd.readouterr().err.splitlines():
            match = TRIM_REPORT.search(line)
            if match:
                self.trim_reports.append(TrimReport(*(int(number) for number in match.groups())))
        return self.trim_reports

    def reported_total(self) -> int | None:
        reports = self.read()
        return reports[-1].total_trimmed if reports else None


class SignalFeed:
    """Plays the controller: signal states on the unit's local broker, at message times we choose."""

    def __init__(self, broker: EphemeralMosquitto, site: FaultSite) -> None:
        self.topic = site.topics.signal_state
        self.unit_id = site.unit_id
        self._seq = 0
        self._client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"feed-{uuid.uuid4().hex[:8]}"
        )
        self._client.connect(broker.host, broker.port)
        self._client.loop_start()

    def play(self, from_s: float, to_s: float, wall_pause_s: float) -> None:
        """Signal states at from_s < t <= to_s, MESSAGES_PER_S per second of message time."""
        steps = round((to_s - from_s) * MESSAGES_PER_S)
        for step in range(1, steps + 1):
            self.send(from_s + step / MESSAGES_PER_S)
            time.sleep(wall_pause_s)

    def send(self, time_s: float) -> None:
        green_since_s = time_s - time_s % 20.0
        groups = [
            SignalGroupState(
                signal_group=group,
                indication=Indication.GREEN if group == "2" else Indication.RED,
                since_s=green_since_s,
                min_end_time_s=green_since_s + 20.0,
                max_end_time_s=green_since_s + 20.0,
                likely_time_s=green_since_s + 20.0,
            )
            for group in ("2", "4")
        ]
        message = SignalState(
            unit_id=self.unit_id,
            seq=self._seq,
            capture_time_s=time_s,
            publish_time_s=time_s,
            mode=ControllerMode.NORMAL,
            strategy="fixed",
            groups=groups,
        )
        self._seq += 1
        self._client.publish(self.topic, message.to_json(), qos=1).wait_for_publish(5.0)

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


def test_a_full_outbox_trims_the_oldest_counts_and_reports_it_then_drains_in_order(
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    local_broker: EphemeralMosquitto,
    centre_broker: EphemeralMosquitto,
) -> None:
    """The real uplink stage (a supervised process) on its own, fed signal states we time.

    - Before the outage each 1 s interval goes to the centre as it is sealed.
    - The centre broker stops; 90 intervals are sealed into an outbox bounded at 30 records.
      Redis trims the oldest ones as the newest arrive (XADD MAXLEN ~; this Redis keeps stream
      nodes of 2 entries, so the bound holds to within 2 records), the outbox counts every trimmed
      record in Redis, and the uplink logs a warning with the count within a few seconds.
    - The centre comes back and signal states keep arriving. Until the uplink has reconnected
      (its back-off is up to 5 s) new intervals keep going into the full outbox, so a few more of
      the oldest are trimmed, counted and reported. Then the survivors drain oldest first and the
      new intervals follow them, all in order. What the centre is missing is exactly the trimmed
      records: the oldest of the outage, as many as were counted.
    """
    # Small stream nodes so that MAXLEN ~ trims close to the bound (Redis' default node is 100).
    redis_server = EphemeralRedis({"stream-node-max-entries": "2"}, name="bounded-redis")
    redis_server.start()
    site = write_site(
        tmp_path / "site",
        local_broker=local_broker,
        centre_host=centre_broker.host,
        centre_port=centre_broker.port,
        redis_url=redis_server.url,
        interval_s=INTERVAL_S,
        outbox_max_records=OUTBOX_MAX_RECORDS,
    )
    outbox = Outbox(redis_server.client(), site.unit_id, OUTBOX_MAX_RECORDS)
    centre = Centre(centre_broker.host, centre_broker.port, tmp_path / "centre.sqlite")
    centre.start()
    uplink = Supervisor(site.path, RunOptions(realtime=False), [UPLINK])
    feed = SignalFeed(local_broker, site)
    uplink_log = UplinkLog(capfd)

    with contextlib.ExitStack() as cleanup:
        cleanup.callback(redis_server.cleanup)
        cleanup.callback(centre.stop)
        cleanup.callback(feed.close)
        uplink.start()
        cleanup.callback(uplink.stop)
        assert wait_until(lambda: uplink.health()[0].heartbeat_age_s is not None, 30.0), "uplink did not start"
        time.sleep(0.5)  # its subscriptions go out right after the first heartbeat

        t0 = float(int(time.time()))
        feed.play(t0 - 1, t0 + BEFORE_OUTAGE_S, wall_pause_s=0.005)
        outage_starts_s = t0 + BEFORE_OUTAGE_S
        centre.wait_for_seq(site.unit_id, round(outage_starts_s / INTERVAL_S) - 1, timeout_s=20.0)

        centre_broker.stop()
        feed.play(outage_starts_s, outage_starts_s + OUTAGE_S, wall_pause_s=0.005)
        outage_ends_s = outage_starts_s + OUTAGE_S
        assert wait_until(lambda: outbox.sealed_until() == outage_ends_s, 20.0), "the uplink did not seal the outage"
        trimmed, backlog = outbox.trimmed_total(), outbox.backlog()
        assert trimmed + backlog == OUTAGE_S / INTERVAL_S
        assert OUTBOX_MAX_RECORDS <= backlog <= OUTBOX_MAX_RECORDS + 2
        assert wait_until(lambda: uplink_log.reported_total() == trimmed, 10.0, poll_s=0.5), (
            f"no log line reported the {trimmed} trimmed records; saw {uplink_log.trim_reports}"
        )
        assert {report.bound for report in uplink_log.trim_reports} == {OUTBOX_MAX_RECORDS}
        assert sum(report.newly_trimmed for report in uplink_log.trim_reports) == trimmed

        # The centre returns while new data keeps coming; the uplink drains and keeps up.
        centre_broker.start()
        feed.play(outage_ends_s, outage_ends_s + AFTER_OUTAGE_S, wall_pause_s=1 / (4 * MESSAGES_PER_S))
        last_seq = round((outage_ends_s + AFTER_OUTAGE_S) / INTERVAL_S) - 1
        centre.wait_for_seq(site.unit_id, last_seq, timeout_s=20.0)
        assert outbox.backlog() == 0
        assert uplink.restarts("uplink") == 0
        trimmed_in_all = outbox.trimmed_total()
        assert wait_until(lambda: uplink_log.reported_total() == trimmed_in_all, 10.0, poll_s=0.5), (
            f"no log line reported all {trimmed_in_all} trimmed records; saw {uplink_log.trim_reports}"
        )
        assert sum(report.newly_trimmed for report in uplink_log.trim_reports) == trimmed_in_all

        unit_id = site.unit_id
        arrived = centre.seqs_in_arrival_order(unit_id)
        assert arrived == sorted(arrived), "the backlog and the new data should arrive in order"
        first_outage_seq = round(outage_starts_s / INTERVAL_S)
        first_new_seq = round(outage_ends_s / INTERVAL_S)
        trimmed_seqs = list(range(first_outage_seq, first_outage_seq + trimmed_in_all))
        assert centre.store.missing_seqs(unit_id) == trimmed_seqs, "exactly the oldest of the outage are missing"
        assert arrived == [seq for seq in range(arrived[0], last_seq + 1) if seq not in trimmed_seqs]
        drained = [seq for seq in arrived if first_outage_seq <= seq < first_new_seq]
        assert drained, "some of the outage's records should have survived the bound and drained"
        assert centre.store.counters(unit_id).seq_conflicts == 0
        print(
            f"\noutbox bound {OUTBOX_MAX_RECORDS}: {OUTAGE_S} intervals sealed during the outage, {trimmed} oldest "
            f"trimmed by its end and {trimmed_in_all - trimmed} more before the uplink reconnected, all reported; "
            f"{len(drained)} drained in order, followed by {AFTER_OUTAGE_S} new ones"
        )
