"""Clients of a unit, the other side of its broker: the vehicle-side listener SDK (vehicle.py) and the
priority requester for emergency vehicles and buses (priority_requester.py). They build on the V2X
logic and the contracts, and talk MQTT through the unit's one client wrapper.
"""
