"""The MQTT topic table. One function per topic so no topic string is typed twice."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Topics:
    unit_id: str
    prefix: str = "rsu"
    centre_prefix: str = "centre"

    @property
    def base(self) -> str:
        return f"{self.prefix}/{self.unit_id}"

    # Local topics: stay on the unit's broker.
    @property
    def tracks(self) -> str:
        return f"{self.base}/perception/tracks"

    @property
    def detectors(self) -> str:
        return f"{self.base}/perception/detectors"

    # Annotated JPEG of a video camera (at most 5 Hz) for the web page; never bridged or exported.
    @property
    def camera_preview(self) -> str:
        return f"{self.base}/perception/preview"

    @property
    def signal_state(self) -> str:
        return f"{self.base}/signal/state"

    # Vehicle-facing V2X topics.
    @property
    def spat(self) -> str:
        return f"{self.base}/v2x/spat"

    @property
    def map(self) -> str:
        return f"{self.base}/v2x/map"

    @property
    def warnings(self) -> str:
        return f"{self.base}/v2x/warnings"

    # Sensor sharing: every tracked object (rsu.v2x.objects), default layout (v2x.wire.TopicLayout).
    @property
    def objects(self) -> str:
        return f"{self.base}/v2x/objects"

    # Priority: signed requests from emergency vehicles and buses (the unit subscribes), and the
    # unit's signed answers (accepted / rejected / active / ended).
    @property
    def priority_request(self) -> str:
        return f"{self.base}/priority/request"

    @property
    def priority_status(self) -> str:
        return f"{self.base}/priority/status"

    # Unit status: retained "online", last will "offline"; health: periodic UnitHealth.
    @property
    def status(self) -> str:
        return f"{self.base}/status"

    @property
    def health(self) -> str:
        return f"{self.base}/health"

    # Simulation only: the simulated camera's detections, like a smart camera on the network.
    @property
    def sim_camera(self) -> str:
        return f"{self.base}/sim/camera"

    @property
    def sim_statistics(self) -> str:
        return f"{self.base}/sim/statistics"

    # Upstream: aggregates for the traffic-management centre.
    @property
    def aggregates(self) -> str:
        return f"{self.centre_prefix}/{self.unit_id}/aggregates"
