"""Start the virtual cabinet's SNMP agent (rsu_tools.cabinet.agent) as its own process."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

from rsu_tools.cabinet.nema import CabinetTiming

READY_TIMEOUT_S = 20.0


class VirtualCabinet:
    def __init__(
        self, timing: CabinetTiming, folder: Path, community: str = "public", ignore_force_off: bool = False
    ) -> None:
        self.timing_file = folder / "cabinet-timing.json"
        self.timing_file.write_text(
            json.dumps(
                {
                    "phases": {str(n): asdict(t) for n, t in timing.phases.items()},
                    "overlaps": {str(n): list(pair) for n, pair in timing.overlaps.items()},
                }
            )
        )
        self.community = community
        self.ignore_force_off = ignore_force_off
        self.port = 0
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> int:
        """Start (or restart on the same port) and return the UDP port once it listens."""
        command = [
            sys.executable,
            "-m",
            "rsu_tools.cabinet.agent",
            "--port",
            str(self.port),
            "--community",
            self.community,
            "--timing",
            str(self.timing_file),
        ]
        if self.ignore_force_off:
            command.append("--ignore-force-off")
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith("ready "):
            self.stop()
            raise RuntimeError(f"virtual cabinet did not start: {line!r}")
        self.port = int(line.split()[1])
        return self.port

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None


@contextmanager
def running_cabinet(timing: CabinetTiming, folder: Path, **options: object) -> Iterator[VirtualCabinet]:
    cabinet = VirtualCabinet(timing, folder, **options)  # type: ignore[arg-type]
    cabinet.start()
    try:
        yield cabinet
    finally:
        cabinet.stop()
