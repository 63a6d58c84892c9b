"""Builders of the sample site files in `datasets/` (each run by a thin script there)."""
