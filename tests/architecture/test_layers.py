"""The layers point one way, and the import contracts that say so would catch a break.

The contracts live in pyproject.toml ([tool.importlinter]); `lint-imports` checks them statically,
so an import inside a function counts as much as one at the top of a module.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("rsu_cli", "rsu_tools", "rsu_clients", "rsu", "v2x", "signal_control", "rsu_contracts")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    if not LINT_IMPORTS.exists():
        pytest.fail(f"{LINT_IMPORTS} is missing: install the dev extra (import-linter)")
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=root, capture_output=True, text=True, timeout=300, check=False
    )


def copy_of_the_tree(tmp_path: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_tree_keeps_every_import_contract() -> None:
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "broken" not in result.stdout.lower().replace("0 broken", "")


@pytest.mark.parametrize(
    ("module", "upward_import", "reported"),
    [
        # The signal controller reaching into the unit's stages.
        ("signal_control/timing.py", "from rsu.stages import controller", "signal_control.timing -> rsu.stages"),
        # The shared vocabulary importing the logic above it, inside a function.
        (
            "rsu_contracts/topics.py",
            "def _late() -> None:\n    import v2x.spat  # noqa: F401\n",
            "rsu_contracts.topics -> v2x.spat",
        ),
        # The unit importing a benchmark.
        ("rsu/unit.py", "import rsu_tools.bench.signal", "rsu.unit -> rsu_tools.bench.signal"),
        # V2X logic pulling in a vision library.
        ("v2x/spat.py", "import cv2", "v2x.spat -> cv2"),
    ],
)
def test_a_reintroduced_upward_import_fails_the_check(
    tmp_path: Path, module: str, upward_import: str, reported: str
) -> None:
    tree = copy_of_the_tree(tmp_path)
    target = tree / module
    target.write_text(target.read_text() + "\n" + upward_import + "\n")
    result = lint_imports(tree)
    assert result.returncode != 0, result.stdout
    assert reported in result.stdout, result.stdout


def test_the_library_imports_without_the_unit_or_heavy_dependencies() -> None:
    """Using the signal controller and the V2X logic as a library loads no torch, OpenCV, SUMO,
    broker client or unit module (what the minimal install, without extras, relies on)."""
    probe = (
        "import sys\n"
        "import rsu_contracts.config, rsu_contracts.messages, rsu_contracts.topics\n"
        "import signal_control.controller, signal_control.strategies.adaptive\n"
        "import v2x.conflicts, v2x.warnings, v2x.spat, v2x.wire, v2x.mapdata\n"
        "heavy = ('torch', 'cv2', 'ultralytics', 'openvino', 'onnxruntime', 'libsumo', 'traci', 'sumolib',"
        " 'paho', 'redis', 'fastapi', 'scipy')\n"
        "loaded = sorted({m.split('.')[0] for m in sys.modules} & set(heavy))\n"
        "unit = sorted(m for m in sys.modules if m == 'rsu' or m.startswith(('rsu.', 'rsu_tools', 'rsu_cli')))\n"
        "print('heavy', loaded); print('unit', unit)\n"
        "sys.exit(1 if loaded or unit else 0)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_the_readme_library_example_runs_with_only_the_minimal_install(tmp_path: Path) -> None:
    """`pip install .` without extras, in a fresh venv, is enough for the README's library example."""
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Using the signal controller as a library") :]
    example = section[section.index("```python\n") + len("```python\n") :]
    example = example[: example.index("```")]
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    installed = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", str(REPO)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    packages = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True, check=True
    ).stdout.lower()
    for heavy in ("torch", "opencv", "ultralytics", "openvino", "eclipse-sumo", "libsumo", "paho-mqtt", "redis"):
        assert f"\n{heavy}==" not in f"\n{packages}", f"the minimal install pulled in {heavy}"
    # Run from a folder holding only the example and the sample data, so nothing is imported from the checkout.
    shutil.copytree(REPO / "datasets", tmp_path / "datasets")
    script = tmp_path / "example.py"
    script.write_text(example)
    ran = subprocess.run([str(python), str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert len(ran.stdout.splitlines()) >= 4  # one line per signal group
