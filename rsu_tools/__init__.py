"""Tools beside the unit, not part of it: benchmarks (bench/), the software-in-the-loop signal runner
(sil/), perception evaluation (evaluation.py), builders of the sample sites (site_builders/), and
throwaway servers for tests and benches (testing/).
"""
