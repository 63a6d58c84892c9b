"""What drives the simulated street's lamps when a signal cabinet is configured, and a record of
what they showed.

In the field the lamps hang on the cabinet's load switches, not on the unit: with ``site.cabinet``
the simulated world reads the cabinet's phase and overlap status over SNMP (what its outputs drive)
and shows that in SUMO, never the unit's own signal state. So a unit that publishes something the
cabinet does not show is caught by comparing its SPaT with SUMO's lights.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TextIO

from rsu.cabinet.heads import NtcipSignalHeads
from rsu_contracts.config.model import SiteConfig
from rsu_contracts.messages.signal import Indication, SignalGroupState


class CabinetWiring:
    """The lamps as the cabinet drives them, read once per simulation step."""

    def __init__(self, site: SiteConfig) -> None:
        if site.cabinet is None:
            raise ValueError("CabinetWiring needs site.cabinet")
        self.heads = NtcipSignalHeads(site, site.cabinet)
        self.failed_reads = 0

    def read(self, now_s: float) -> list[SignalGroupState] | None:
        """The groups' indications the cabinet drives now; None when it did not answer (a real
        cabinet keeps driving its lamps whatever the network does: the street keeps what it shows)."""
        shown = self.heads.poll()
        if not shown:
            self.failed_reads += 1
            return None
        return [
            SignalGroupState(
                signal_group=group,
                indication=indication,
                since_s=now_s,
                min_end_time_s=now_s,
                max_end_time_s=now_s,
                likely_time_s=now_s,
            )
            for group, indication in shown.items()
        ]

    def close(self) -> None:
        self.heads.close()


class LampLog:
    """JSON lines of what the simulated heads show, one per change:
    ``{"t": wall time s, "sim_t": simulated s, "lamps": {group: indication}}``."""

    def __init__(self, path: str | Path) -> None:
        # Open for the stage's whole run (closed by close()): one line per change, flushed.
        self._file: TextIO = Path(path).open("a", encoding="utf-8")  # noqa: SIM115
        self._last: dict[str, str] | None = None

    def record(
        self, wall_s: float, sim_s: float, groups: Sequence[SignalGroupState] | Mapping[str, Indication]
    ) -> None:
        if isinstance(groups, Mapping):
            lamps = {group: indication.value for group, indication in groups.items()}
        else:
            lamps = {state.signal_group: state.indication.value for state in groups}
        if lamps == self._last:
            return
        self._last = lamps
        self._file.write(json.dumps({"t": round(wall_s, 4), "sim_t": round(sim_s, 3), "lamps": lamps}) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def read_lamp_log(path: str | Path) -> list[tuple[float, dict[str, Indication]]]:
    """(wall time, indications) of every change a LampLog recorded, in order."""
    entries = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            record = json.loads(line)
            entries.append((float(record["t"]), {g: Indication(v) for g, v in record["lamps"].items()}))
    return entries
