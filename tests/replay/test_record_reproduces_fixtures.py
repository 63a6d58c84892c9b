"""The recorder is deterministic and the committed fixtures are what the current code records.

Not a replay test (it needs SUMO): when it fails while the replay tests pass, the inputs changed
(perception, the simulated camera, SUMO's network or demand), not the logic the references pin.
Re-record then (tests/replay/README.md).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.replay import replaying

pytestmark = [pytest.mark.sumo, pytest.mark.slow]

REPO_ROOT = replaying.REPLAY_DIR.parents[1]


def test_recording_again_gives_the_committed_fixtures() -> None:
    pytest.importorskip("libsumo")
    # A process of its own: libsumo runs one simulation per process.
    result = subprocess.run(
        [sys.executable, "-m", "tests.replay.record", "--check"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
