"""Software-in-the-loop: the unit's signal controller against SUMO on generated scenarios.

`rsu_tools.sil.scenarios` writes the demand, `rsu_tools.sil.programs` SUMO's own programs for comparison,
`rsu_tools.sil.runner` runs one (scenario, seed, program) and measures it; `rsu bench signal`
(rsu_tools.bench.signal) runs them all.
"""
