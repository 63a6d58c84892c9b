"""Plausibility bounds shared by the message models: what no genuine input of a junction exceeds.

Every message is decoded from the unit's local broker, which a misconfigured deployment lets any
client write; the models refuse what no camera, tracker or controller produces (non-finite numbers,
oversized lists, road users at 1e20 m/s), so a forged or corrupted message is dropped at decoding
with the field named, instead of reaching a stage's arrays or a signed broadcast.
"""

from __future__ import annotations

from pydantic import ConfigDict

# Every model of a message: no unknown field, immutable, and only finite numbers (JSON has no
# NaN or infinity, but Python's json and pydantic read them; a NaN speed must never be re-broadcast).
MESSAGE_MODEL_CONFIG = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

# Positions are metres east / north of the site's origin; a junction and its approaches fit well
# within this radius.
MAX_DISTANCE_FROM_ORIGIN_M = 5_000.0
# Image coordinates (pixels): a predicted box may leave the frame, but no camera is this large.
MAX_IMAGE_COORDINATE_PX = 100_000.0
# 252 km/h: faster than any road user a roadside camera tracks.
MAX_SPEED_MPS = 70.0
# Tracker estimates are noisy, but beyond ten times the hardest braking they are garbage.
MAX_ACCELERATION_MPS2 = 100.0
MAX_ROAD_USER_LENGTH_M = 50.0
MAX_ROAD_USER_WIDTH_M = 10.0
# A day: longer than any track or wait lives.
MAX_DURATION_S = 86_400.0
# Latest plausible timestamp, seconds since the Unix epoch (the year 2286): a time past it is forged
# or corrupt, and would overflow the millisecond arithmetic of the wire formats.
MAX_TIMESTAMP_S = 1e10

# Lists per message. The warning search costs O(objects) per snapshot (bounded candidate pairs),
# but a track list sized in the tens of thousands is an attack, not a junction.
MAX_TRACKED_OBJECTS = 512
MAX_CAMERA_OBJECTS = 2_048
MAX_LANES = 64
MAX_ARRIVALS_PER_LANE = 64
MAX_CROSSWALKS = 32
MAX_EVENTS_PER_MESSAGE = 1_024
MAX_SIGNAL_GROUPS = 64
MAX_PRIORITY_CALLS = 64
MAX_WARNING_PARTICIPANTS = 16
MAX_LINES = 256
MAX_MOVEMENTS = 1_024

# Queues per lane: 5 km of stopped cars is already far beyond any approach's detection zone.
MAX_QUEUE_LENGTH_M = 5_000.0
MAX_QUEUED_VEHICLES = 1_000
MAX_PEDESTRIANS = 1_000
# A track id or a count that does not fit a JSON number exactly is not a genuine one.
MAX_IDENTIFIER = 2**53
