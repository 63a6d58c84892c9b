"""The unit's side of a field signal cabinet: NTCIP 1202 over SNMP."""
