"""Software-in-the-loop: the unit's signal controller against SUMO on generated scenarios.

`rsu.sil.scenarios` writes the demand, `rsu.sil.programs` SUMO's own programs for comparison,
`rsu.sil.runner` runs one (scenario, seed, program) and measures it; `rsu bench signal`
(rsu.bench.signal) runs them all.
"""
