"""The deployed controller stage gives the controller what the camera sees beyond a loop detector:
for the frame its detector states come from, when each approaching vehicle reaches the stop line."""

from __future__ import annotations

import pytest

from rsu.config import SiteConfig
from rsu.messages import TrackList
from rsu.stages.controller import Lookahead
from tests.v2x.builders import NOW_S, SOUTH, track


def track_list(capture_s: float, *objects: object) -> bytes:
    return TrackList(
        unit_id="rsu-test",
        seq=0,
        capture_time_s=capture_s,
        publish_time_s=capture_s,
        camera_id="cam",
        objects=list(objects),  # type: ignore[arg-type]
    ).to_json()


def test_arrivals_of_the_same_frame_are_given_per_lane(sample_site: SiteConfig) -> None:
    lookahead = Lookahead(sample_site)
    # Southbound on the north approach, 52.14 m before the stop line (y = 12.14) at 13 m/s: 4.0 s.
    lookahead.on_tracks(track_list(NOW_S, track(1, -4.8, 64.28, 13.0, SOUTH, lane_id="north_through_right")))
    arrivals = lookahead.arrivals_for(NOW_S)
    assert arrivals is not None
    assert arrivals["north_through_right"] == pytest.approx((4.0,), abs=0.05)


def test_no_arrivals_for_detector_states_of_another_frame(sample_site: SiteConfig) -> None:
    lookahead = Lookahead(sample_site)
    lookahead.on_tracks(track_list(NOW_S, track(1, -4.8, 64.28, 13.0, SOUTH, lane_id="north_through_right")))
    assert lookahead.arrivals_for(NOW_S + 0.1) is None


def test_stopped_vehicles_and_an_older_frame_arriving_late_change_nothing(sample_site: SiteConfig) -> None:
    lookahead = Lookahead(sample_site)
    lookahead.on_tracks(track_list(NOW_S, track(1, -4.8, 20.0, 0.0, SOUTH, lane_id="north_through_right")))
    assert lookahead.arrivals_for(NOW_S) == {}
    lookahead.on_tracks(track_list(NOW_S - 0.1, track(2, -4.8, 64.28, 13.0, SOUTH, lane_id="north_through_right")))
    assert lookahead.arrivals_for(NOW_S) == {}


def test_a_bad_track_list_is_dropped_and_the_last_good_one_kept(sample_site: SiteConfig) -> None:
    lookahead = Lookahead(sample_site)
    lookahead.on_tracks(track_list(NOW_S, track(1, -4.8, 64.28, 13.0, SOUTH, lane_id="north_through_right")))
    lookahead.on_tracks(b'{"schema_name": "rsu.tracks", "objects": "garbage"}')
    assert lookahead.arrivals_for(NOW_S) is not None
