"""The V2X stage signs nothing it should not: conflicting, unknown, stale or future signal states
give no SPaT (and do not feed the warning logic); stale or future track lists give no warnings and
no re-broadcast; each refusal is counted, and the next genuine input goes out at once."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from rsu.runtime.input_guard import Rejection
from rsu.stages.v2x import V2XOutput, wire_publisher
from rsu_contracts.config.model import SiteConfig
from rsu_contracts.messages import Indication, SignalGroupState, SignalState
from rsu_contracts.topics import Topics
from tests.v2x.test_stage_output import FakeBus, conflicting_tracks, signal
from v2x.signing import UnitSigner

NOW_S = 1_700_000_000.0


def output_for(site: SiteConfig) -> tuple[V2XOutput, FakeBus]:
    bus = FakeBus()
    signer = UnitSigner(Ed25519PrivateKey.generate(), site.unit_id)
    return V2XOutput(site, wire_publisher(site, bus, signer)), bus


def with_greens(state: SignalState, greens: set[str]) -> SignalState:
    groups = [
        group.model_copy(update={"indication": Indication.GREEN if group.signal_group in greens else Indication.RED})
        for group in state.groups
    ]
    return state.model_copy(update={"groups": groups})


def spats(bus: FakeBus) -> list[str]:
    return [sent.topic for sent in bus.sent if sent.topic.endswith("/spat")]


def test_a_state_with_conflicting_greens_gives_no_spat_and_is_counted(sample_site: SiteConfig) -> None:
    output, bus = output_for(sample_site)
    forged = with_greens(signal(sample_site, NOW_S), {"2", "4", "6", "8"})
    assert output.on_signal_state(forged, NOW_S) is None
    assert spats(bus) == []
    assert output.latest_signal is None  # a forged picture must not steer the warnings either
    topic = Topics.for_site(sample_site).signal_state
    assert output.guard.count(topic, Rejection.CONFLICTING_GREENS) == 1
    problem = output.guard.report().problem
    assert problem is not None and "conflicting" in problem and "2 and 4" in problem
    # The genuine state right after it goes out at once: the refusal left nothing behind.
    genuine = signal(sample_site, NOW_S + 0.01)
    assert output.on_signal_state(genuine, NOW_S + 0.01) is not None
    assert len(spats(bus)) == 1


def test_a_state_naming_a_group_the_site_does_not_have_gives_no_spat(sample_site: SiteConfig) -> None:
    output, bus = output_for(sample_site)
    state = signal(sample_site, NOW_S)
    extra = SignalGroupState(
        signal_group="99", indication=Indication.GREEN, since_s=NOW_S, min_end_time_s=NOW_S,
        max_end_time_s=NOW_S, likely_time_s=NOW_S,
    )  # fmt: skip
    forged = state.model_copy(update={"groups": [*state.groups, extra]})
    assert output.on_signal_state(forged, NOW_S) is None
    assert spats(bus) == []
    assert output.guard.count(Topics.for_site(sample_site).signal_state, Rejection.UNKNOWN_SIGNAL_GROUP) == 1


def test_no_spat_is_signed_for_a_state_older_than_the_bound(sample_site: SiteConfig) -> None:
    output, bus = output_for(sample_site)
    bound_s = sample_site.v2x.max_spat_age_s
    assert bound_s == 0.3
    topic = Topics.for_site(sample_site).signal_state
    decided = signal(sample_site, NOW_S)
    # A backlog delivered it late: 18.6 s, or just over the bound.
    assert output.on_signal_state(decided, NOW_S + 18.6) is None
    assert output.on_signal_state(decided, NOW_S + bound_s + 0.01) is None
    assert spats(bus) == []
    assert output.guard.count(topic, Rejection.TOO_OLD_TO_SIGN) == 2
    # Within the bound it is signed.
    assert output.on_signal_state(decided, NOW_S + bound_s - 0.01) is not None
    assert len(spats(bus)) == 1


def test_a_state_decided_in_the_future_gives_no_spat(sample_site: SiteConfig) -> None:
    output, bus = output_for(sample_site)
    forged = signal(sample_site, NOW_S + 1e6)
    assert output.on_signal_state(forged, NOW_S) is None
    assert spats(bus) == []
    assert output.guard.count(Topics.for_site(sample_site).signal_state, Rejection.FUTURE) == 1


def test_the_spat_age_bound_is_configurable(sample_site: SiteConfig) -> None:
    site = sample_site.model_copy(update={"v2x": sample_site.v2x.model_copy(update={"max_spat_age_s": 1.0})})
    output, _ = output_for(site)
    assert output.on_signal_state(signal(site, NOW_S), NOW_S + 0.8) is not None


def test_stale_or_future_tracks_give_no_warning_and_no_rebroadcast(sample_site: SiteConfig) -> None:
    output, bus = output_for(sample_site)
    topic = Topics.for_site(sample_site).tracks
    output.on_signal_state(signal(sample_site, NOW_S), NOW_S)
    sent_before = len(bus.sent)
    assert output.on_tracks(conflicting_tracks(sample_site, NOW_S - 30.0), NOW_S) == []
    assert output.on_tracks(conflicting_tracks(sample_site, NOW_S + 1e6), NOW_S) == []
    assert len(bus.sent) == sent_before  # neither warnings nor objects
    assert output.guard.count(topic, Rejection.STALE) == 1
    assert output.guard.count(topic, Rejection.FUTURE) == 1
    # Fresh tracks: the critical rear-end warning and the objects message.
    assert output.on_tracks(conflicting_tracks(sample_site, NOW_S), NOW_S)
    assert any(sent.topic.endswith("/objects") for sent in bus.sent[sent_before:])
