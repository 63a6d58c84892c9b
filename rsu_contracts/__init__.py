"""The shared vocabulary of rsu-edge, the bottom layer: enums, the site config model and its loader,
the message models and the topic registry.

Everything else (signal_control, v2x, the unit in rsu, its clients and tools) builds on these, and
this package imports nothing else from the project; `lint-imports` keeps it so.
"""
