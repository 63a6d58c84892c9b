#!/usr/bin/env bash
# The checks the README asks of contributors, as CI runs them: lint, format, types, import layers.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
say() { printf 'lint: %s\n' "$*" >&2; }
say "ruff check";            .venv/bin/ruff check .
say "ruff format --check";   .venv/bin/ruff format --check .
say "import contracts";      .venv/bin/lint-imports --no-cache
say "mypy";                  .venv/bin/mypy rsu_contracts signal_control v2x rsu rsu_clients rsu_tools rsu_cli
say "all clean"
