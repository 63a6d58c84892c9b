"""The phase plan: the site's signal groups, conflicts and stages resolved into timings.

A PhasePlan is plain, immutable data computed once from the SiteConfig. The controller, the
strategies and the conflict monitor all read it; none of them changes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from rsu_contracts.config.model import Approach, SignalGroup, SiteConfig, Stage
from rsu_contracts.enums import SignalGroupKind
from signal_control import timing


@dataclass(frozen=True)
class GroupTiming:
    """Resolved timing of one signal group.

    For a pedestrian group the "green" is the walk indication and the change interval is the
    flashing don't walk (pedestrian clearance); for a vehicle group it is green and yellow.
    """

    group_id: str
    kind: SignalGroupKind
    min_green_s: float  # vehicles: minimum green; pedestrians: walk time
    max_green_s: float
    passage_s: float
    change_interval_s: float  # vehicles: yellow; pedestrians: pedestrian clearance
    all_red_s: float
    lane_ids: tuple[str, ...]
    crosswalk_ids: tuple[str, ...]
    # Protected/permissive left: the opposing through during whose green it may turn permissively.
    permissive_with: str | None = None

    @property
    def is_pedestrian(self) -> bool:
        return self.kind is SignalGroupKind.PEDESTRIAN

    @property
    def pedestrian_service_s(self) -> float:
        """Walk plus clearance: how long a served pedestrian group holds its stage."""
        return self.min_green_s + self.change_interval_s if self.is_pedestrian else 0.0


@dataclass(frozen=True)
class StagePlan:
    stage_id: str
    group_ids: tuple[str, ...]
    vehicle_group_ids: tuple[str, ...]
    pedestrian_group_ids: tuple[str, ...]
    # Lanes of the stage's vehicle groups: the detectors that extend this stage's green.
    lane_ids: tuple[str, ...]
    vehicle_min_green_s: float
    # The longest walk + clearance of the stage's pedestrian groups (0 without any).
    pedestrian_service_s: float
    max_green_s: float

    @property
    def min_green_with_pedestrians_s(self) -> float:
        return max(self.vehicle_min_green_s, self.pedestrian_service_s)


@dataclass(frozen=True)
class PhasePlan:
    groups: Mapping[str, GroupTiming]
    stages: tuple[StagePlan, ...]
    conflicts: frozenset[frozenset[str]]
    conflicts_of: Mapping[str, frozenset[str]]
    group_of_lane: Mapping[str, str]
    group_of_crosswalk: Mapping[str, str]
    detector_stale_after_s: float
    fixed_green_s: float
    default_strategy: str
    # Per stage, in order: its own fixed_time green, or None (Webster or fixed_green_s decides).
    stage_fixed_greens_s: tuple[float | None, ...] = ()
    design_flows_vph: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def from_site(cls, site: SiteConfig) -> PhasePlan:
        groups = {group.id: _resolve_group(site, group) for group in site.signal_groups}
        conflicts = frozenset(frozenset(pair) for pair in site.conflicts)
        conflicts_of = {
            group_id: frozenset(other for pair in conflicts if group_id in pair for other in pair if other != group_id)
            for group_id in groups
        }
        stages = tuple(_resolve_stage(stage.id, tuple(stage.signal_groups), groups) for stage in site.controller.stages)
        _check_permissive_clearance(groups)
        return cls(
            groups=MappingProxyType(groups),
            stages=stages,
            conflicts=conflicts,
            conflicts_of=MappingProxyType(conflicts_of),
            group_of_lane=MappingProxyType({lane.id: lane.signal_group for lane in site.lanes}),
            group_of_crosswalk=MappingProxyType(
                {cw.id: cw.signal_group for cw in site.crosswalks if cw.signal_group is not None}
            ),
            detector_stale_after_s=site.controller.detector_stale_after_s,
            fixed_green_s=site.controller.fixed_green_s,
            default_strategy=site.controller.strategy.value,
            stage_fixed_greens_s=tuple(stage.fixed_green_s for stage in site.controller.stages),
            design_flows_vph=MappingProxyType(dict(site.controller.design_flows_vph)),
        )

    def in_conflict(self, group_a: str, group_b: str) -> bool:
        return group_b in self.conflicts_of.get(group_a, frozenset())

    @property
    def max_all_red_s(self) -> float:
        return max(group.all_red_s for group in self.groups.values())

    def stage_index(self, stage_id: str) -> int:
        for index, stage in enumerate(self.stages):
            if stage.stage_id == stage_id:
                return index
        raise KeyError(stage_id)

    def transition_clearance_s(self, from_stage: int, to_stage: int) -> float:
        """Time from the end of one stage's green to the start of the next one's.

        Vehicle groups that leave run yellow then all-red. Pedestrian groups finish their
        clearance inside their stage's green, so only their all-red can remain.
        """
        staying = set(self.stages[to_stage].group_ids)
        leaving = [self.groups[g] for g in self.stages[from_stage].group_ids if g not in staying]
        return max(
            (g.all_red_s if g.is_pedestrian else g.change_interval_s + g.all_red_s for g in leaving),
            default=0.0,
        )


# NEMA dual ring: ring 1 holds phases 1-4, ring 2 phases 5-8; phases 1, 2, 5, 6 lie on one side of
# the barrier (main street) and 3, 4, 7, 8 on the other. Both rings cross the barrier together.
NEMA_RING_OF_PHASE = {1: 1, 2: 1, 3: 1, 4: 1, 5: 2, 6: 2, 7: 2, 8: 2}
NEMA_BARRIER_OF_PHASE = {1: 1, 2: 1, 5: 1, 6: 1, 3: 2, 4: 2, 7: 2, 8: 2}


def ring_barrier_stages(site: SiteConfig) -> tuple[Stage, ...]:
    """The dual-ring stages the site's configured stage sequence leaves out.

    For each configured stage followed by another on the same side of the barrier (a lead-left
    stage such as {1, 5} before its through stage {2, 6}), one phase of each ring may run with
    the other ring's phase of the next stage: {1, 6} and {2, 5}. Such a stage is kept only when
    its groups are NEMA phases of different rings on the same side of the barrier and none of
    them conflict (the site's conflict list decides, so a site that forbids a pair never gets
    it). Pedestrian groups of the next stage that conflict with none of the pair walk with it.

    The adaptive strategy uses them to start a through movement while the opposing left still
    runs (and to serve a lone left beside its own through); sequential strategies ignore them.
    """
    groups = {group.id: group for group in site.signal_groups}
    conflicts = {frozenset(pair) for pair in site.conflicts}
    configured = site.controller.stages

    def compatible(a: str, b: str) -> bool:
        return frozenset((a, b)) not in conflicts

    def phase(group_id: str) -> int | None:
        group = groups[group_id]
        return None if group.kind is SignalGroupKind.PEDESTRIAN else group.nema_phase

    existing = {frozenset(stage.signal_groups) for stage in configured}
    derived: list[Stage] = []
    for index, stage in enumerate(configured):
        following = configured[(index + 1) % len(configured)]
        for leaving in stage.signal_groups:
            for entering in following.signal_groups:
                a, b = phase(leaving), phase(entering)
                if a is None or b is None or a not in NEMA_RING_OF_PHASE or b not in NEMA_RING_OF_PHASE:
                    continue
                if NEMA_RING_OF_PHASE[a] == NEMA_RING_OF_PHASE[b]:
                    continue
                if NEMA_BARRIER_OF_PHASE[a] != NEMA_BARRIER_OF_PHASE[b] or not compatible(leaving, entering):
                    continue
                pair = (leaving, entering) if NEMA_RING_OF_PHASE[a] == 1 else (entering, leaving)
                walking = [
                    g
                    for g in following.signal_groups
                    if phase(g) is None
                    and groups[g].kind is SignalGroupKind.PEDESTRIAN
                    and all(compatible(g, other) for other in pair)
                ]
                members = frozenset((*pair, *walking))
                if members in existing:
                    continue
                existing.add(members)
                stage_id = f"nema_{groups[pair[0]].nema_phase}_{groups[pair[1]].nema_phase}"
                derived.append(Stage(id=stage_id, signal_groups=[*pair, *walking]))
    return tuple(derived)


def with_ring_barrier_stages(site: SiteConfig) -> SiteConfig:
    """The site with its dual-ring stages (``ring_barrier_stages``) declared after its own."""
    extra = ring_barrier_stages(site)
    if not extra:
        return site
    controller = site.controller.model_copy(update={"stages": [*site.controller.stages, *extra]})
    return site.model_copy(update={"controller": controller})


def transition_stages(plan: PhasePlan) -> dict[int, tuple[int, int]]:
    """Stages that overlap two earlier stages: index -> (the stage it leads from, the one it
    leads to). A stage whose vehicle groups all belong to two earlier stages, sharing at least one
    with each, is such an overlap (a dual-ring stage like {1, 6} between {1, 5} and {2, 6})."""
    found: dict[int, tuple[int, int]] = {}
    for index, stage in enumerate(plan.stages):
        groups = set(stage.vehicle_group_ids)
        if len(groups) < 2:
            continue
        for first in range(index):
            if first in found:
                continue
            for second in range(index):
                if second == first or second in found:
                    continue
                a = set(plan.stages[first].vehicle_group_ids)
                b = set(plan.stages[second].vehicle_group_ids)
                if groups <= a | b and groups & a and groups & b and not groups <= a and not groups <= b:
                    count = sum(1 for i in range(index) if i not in found)
                    # Lead from the stage that comes first in the rotation of the plain stages.
                    lead, follow = (first, second) if (second - first) % count == 1 else (second, first)
                    found[index] = (lead, follow)
                    break
            if index in found:
                break
    return found


def _check_permissive_clearance(groups: Mapping[str, GroupTiming]) -> None:
    """A permissive turn shows yellow while its partner does and red once the partner is red, so
    its own yellow and all-red must fit within the partner's."""
    for group in groups.values():
        if group.permissive_with is None:
            continue
        partner = groups[group.permissive_with]
        for name, own_s, partner_s in (
            ("yellow", group.change_interval_s, partner.change_interval_s),
            ("all-red", group.all_red_s, partner.all_red_s),
        ):
            if own_s > partner_s + 1e-9:
                raise ValueError(
                    f"signal group '{group.group_id}' turns permissively with '{partner.group_id}' and clears with it, "
                    f"but its {name} ({own_s:.2f} s) is longer than that of '{partner.group_id}' ({partner_s:.2f} s): "
                    "set yellow_s / all_red_s so that it is not"
                )


def _resolve_group(site: SiteConfig, group: SignalGroup) -> GroupTiming:
    lane_ids = tuple(lane.id for lane in site.lanes if lane.signal_group == group.id)
    crosswalk_ids = tuple(cw.id for cw in site.crosswalks if cw.signal_group == group.id)
    if group.kind is SignalGroupKind.PEDESTRIAN:
        # Clear the longest crossing the group controls; the site may list crosswalks longer
        # than the group's crossing_length_m and the safe choice is the longer one.
        assert group.crossing_length_m is not None  # enforced by SignalGroup's validator
        lengths = [group.crossing_length_m, *(cw.length_m for cw in site.crosswalks if cw.signal_group == group.id)]
        return GroupTiming(
            group_id=group.id,
            kind=group.kind,
            min_green_s=group.walk_s,
            max_green_s=group.walk_s,
            passage_s=group.passage_s,
            change_interval_s=timing.pedestrian_clearance_s(max(lengths)),
            all_red_s=site.configured_all_red_s(group) or timing.MIN_ALL_RED_S,
            lane_ids=lane_ids,
            crosswalk_ids=crosswalk_ids,
        )
    approaches = _approaches_of_group(site, group.id)
    # A group fed by several approaches (or none: no lanes mapped) takes the most conservative
    # interval over the candidates: the longest yellow and the longest all-red.
    yellow = max(
        timing.yellow_s(a.speed_limit_mps, a.grade_percent / 100.0, configured_s=site.configured_yellow_s(group))
        for a in approaches
    )
    all_red = max(
        timing.all_red_s(group.clearance_width_m, a.speed_limit_mps, configured_s=site.configured_all_red_s(group))
        for a in approaches
    )
    min_green_s, max_green_s = site.green_bounds_s(group)
    return GroupTiming(
        group_id=group.id,
        kind=group.kind,
        min_green_s=min_green_s,
        max_green_s=max_green_s,
        passage_s=group.passage_s,
        change_interval_s=yellow,
        all_red_s=all_red,
        lane_ids=lane_ids,
        crosswalk_ids=crosswalk_ids,
        permissive_with=group.permissive_with,
    )


def _approaches_of_group(site: SiteConfig, group_id: str) -> list[Approach]:
    fed_by = [a for a in site.approaches if any(lane.signal_group == group_id for lane in a.lanes)]
    return fed_by or list(site.approaches)


def _resolve_stage(stage_id: str, group_ids: tuple[str, ...], groups: Mapping[str, GroupTiming]) -> StagePlan:
    vehicle = tuple(g for g in group_ids if not groups[g].is_pedestrian)
    pedestrian = tuple(g for g in group_ids if groups[g].is_pedestrian)
    vehicle_min = max((groups[g].min_green_s for g in vehicle), default=0.0)
    pedestrian_service = max((groups[g].pedestrian_service_s for g in pedestrian), default=0.0)
    vehicle_max = max((groups[g].max_green_s for g in vehicle), default=0.0)
    return StagePlan(
        stage_id=stage_id,
        group_ids=group_ids,
        vehicle_group_ids=vehicle,
        pedestrian_group_ids=pedestrian,
        lane_ids=tuple(lane for g in vehicle for lane in groups[g].lane_ids),
        vehicle_min_green_s=vehicle_min,
        pedestrian_service_s=pedestrian_service,
        max_green_s=max(vehicle_max, vehicle_min, pedestrian_service),
    )
