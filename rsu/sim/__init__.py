"""The simulated world: SUMO network, demand and the in-process world."""
