"""Throwaway servers and builders for tests and benches; never part of the unit.

servers.py: the base of a server process on a free loopback port; mosquitto.py and redis_server.py:
a private Mosquitto and Redis; mqtt_packets.py: a raw MQTT v5 packet codec for latency probes.
"""
