"""Test tooling: a virtual NEMA cabinet that speaks NTCIP 1202 over real SNMP (UDP)."""
