"""The virtual cabinet's own controller: it keeps its intervals whatever the unit asks, obeys
hold / force-off / omit while the backup timer runs, and falls back to its local plan after."""

from __future__ import annotations

from rsu_tools.cabinet.nema import CabinetTiming, Controls, DualRingController, PhaseTiming

STEP_S = 0.05
TIMING = PhaseTiming(min_green_s=2.0, local_max_green_s=4.0, yellow_s=1.0, all_red_s=0.5)
CABINET = CabinetTiming(phases={phase: TIMING for phase in (2, 4, 6, 8)})


def run(
    controller: DualRingController, start_s: float, seconds: float
) -> list[tuple[float, frozenset[int], frozenset[int]]]:
    """(time, greens, yellows) every step."""
    trace = []
    steps = round(seconds / STEP_S)
    for index in range(1, steps + 1):
        now = start_s + index * STEP_S
        controller.step(now)
        shown = controller.shown(now)
        trace.append((now, shown.greens, shown.yellows))
    return trace


def durations(trace: list[tuple[float, frozenset[int], frozenset[int]]], phase: int, which: int) -> list[float]:
    """Lengths of every complete run of ``phase`` in greens (which=1) or yellows (which=2)."""
    runs, start = [], None
    for now, *sets in trace:
        lit = phase in sets[which - 1]
        if lit and start is None:
            start = now
        elif not lit and start is not None:
            runs.append(now - start)
            start = None
    return runs


def test_the_local_plan_cycles_every_phase_with_full_yellow_and_all_red() -> None:
    controller = DualRingController(CABINET, 0.0)
    trace = run(controller, 0.0, 30.0)
    for phase in (2, 4, 6, 8):
        assert durations(trace, phase, 1), f"phase {phase} never green"
        assert all(abs(d - TIMING.local_max_green_s) < 0.11 for d in durations(trace, phase, 1))
        assert all(abs(d - TIMING.yellow_s) < 0.11 for d in durations(trace, phase, 2))
    # Never two phases of one ring, or across the barrier, at once.
    for _, greens, yellows in trace:
        lit = greens | yellows
        assert not ({2, 4} <= lit or {6, 8} <= lit or {2, 8} <= lit or {4, 6} <= lit)


def test_a_held_phase_stays_green_and_a_forced_off_one_ends_only_after_its_min_green() -> None:
    controller = DualRingController(CABINET, 0.0)
    controller.set_backup_time(5.0, 0.0)
    hold = Controls(hold=frozenset({2, 6}), veh_call=frozenset({2, 6}), omit=frozenset({4, 8}))
    now = 0.0
    for _ in range(200):  # 10 s of holding, re-written every step as the unit does
        now += STEP_S
        controller.write(hold, now)
        controller.step(now)
    assert controller.shown(now).greens == {2, 6}
    force = Controls(force_off=frozenset({2, 6}), veh_call=frozenset({4, 8}), omit=frozenset({2, 6}))
    controller.write(force, now)
    controller.step(now + STEP_S)
    assert controller.shown(now + STEP_S).yellows == {2, 6}

    fresh = DualRingController(CABINET, 0.0)
    fresh.set_backup_time(5.0, 0.0)
    start = None
    t = 0.0
    while t < 10:
        t += STEP_S
        fresh.write(Controls(veh_call=frozenset({2, 6}), omit=frozenset({4, 8}), force_off=frozenset({2, 6})), t)
        fresh.step(t)
        shown = fresh.shown(t)
        if start is None and shown.greens:
            start = t
        if start is not None and not shown.greens:
            assert t - start >= TIMING.min_green_s - 1e-9
            break
    assert start is not None


def test_an_omitted_phase_is_skipped() -> None:
    controller = DualRingController(CABINET, 0.0)
    controller.set_backup_time(5.0, 0.0)
    seen: set[int] = set()
    t = 0.0
    while t < 20:
        t += STEP_S
        controller.write(Controls(veh_call=frozenset({2, 4, 6}), omit=frozenset({8})), t)
        controller.step(t)
        seen |= controller.shown(t).greens
    assert 8 not in seen and {2, 4, 6} <= seen


def test_without_writes_for_the_backup_time_the_cabinet_reverts_to_its_plan_through_yellow() -> None:
    controller = DualRingController(CABINET, 0.0)
    controller.set_backup_time(2.0, 0.0)
    hold = Controls(hold=frozenset({2, 6}), veh_call=frozenset({2, 6}), omit=frozenset({4, 8}))
    t = 0.0
    while t < 6:
        t += STEP_S
        controller.write(hold, t)
        controller.step(t)
    last_write = t
    trace = run(controller, t, 12.0)
    assert controller.backup_mode
    first_other_green = next(now for now, greens, _ in trace if greens & {4, 8})
    # Back in its own plan within backup time + the end of the held green + clearance.
    assert first_other_green - last_write <= 2.0 + TIMING.local_max_green_s + TIMING.yellow_s + TIMING.all_red_s + 0.2
    assert all(abs(d - TIMING.yellow_s) < 0.11 for d in durations(trace, 2, 2))


def test_the_monitor_flashes_the_cabinet_on_conflicting_phases() -> None:
    controller = DualRingController(CABINET, 0.0)
    run(controller, 0.0, 5.0)
    # Corrupt the timing engine the way a fault would: both rings on opposite barrier sides.
    ring_one, ring_two = controller._rings
    ring_one.phase, ring_two.phase = 2, 8
    ring_one.interval = ring_two.interval = ring_one.interval.GREEN
    controller.step(5.1)
    shown = controller.shown(5.1)
    assert shown.flash and not shown.greens
    assert "conflicting phases 2 and 8" in controller.flash_reason


def test_a_pedestrian_call_during_its_green_gets_the_walk_and_the_green_covers_it() -> None:
    walking = PhaseTiming(
        min_green_s=2.0, local_max_green_s=4.0, yellow_s=1.0, all_red_s=0.5, walk_s=3.0, ped_clear_s=2.0
    )
    controller = DualRingController(CabinetTiming(phases={2: walking, 4: TIMING, 6: walking, 8: TIMING}), 0.0)
    controller.set_backup_time(5.0, 0.0)
    serve_two_six = Controls(hold=frozenset({2, 6}), veh_call=frozenset({2, 6}), omit=frozenset({4, 8}))
    controller.write(serve_two_six, 0.0)
    run(controller, 0.0, 3.0)
    assert controller.shown(3.0).greens == {2, 6} and not controller.shown(3.0).walks
    # The call comes 1 s into the green (the phase started before the unit asked for the walk).
    controller.write(Controls(veh_call=frozenset({4, 8}), force_off=frozenset({2, 6}), ped_call=frozenset({2, 6})), 3.0)
    trace = []
    for index in range(1, 200):
        now = 3.0 + index * STEP_S
        controller.step(now)
        shown = controller.shown(now)
        trace.append((now, shown.greens, shown.walks, shown.ped_clears))
    walk_times = [now for now, _, walks, _ in trace if 2 in walks]
    clear_times = [now for now, _, _, clears in trace if 2 in clears]
    green_times = [now for now, greens, _, _ in trace if 2 in greens]
    assert walk_times and clear_times
    assert walk_times[-1] - walk_times[0] >= 3.0 - 2 * STEP_S
    # Forced off, the green still lasts until the pedestrian clearance is over: no walk cut short.
    assert green_times[-1] >= clear_times[-1]
    assert controller.shown(trace[-1][0]).greens == {4, 8}
