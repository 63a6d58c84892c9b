"""The unit's stages, each run as its own supervised process: world (simulation only), perception,
controller, v2x and uplink. Each takes a StageContext and talks to the others only over MQTT."""
