"""V2X on the unit: SPaT from the controller state, conflict prediction and collision warnings.

Pure logic on plain data: every function takes timestamps in seconds and never reads a clock.
"""
