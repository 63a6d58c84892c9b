"""Web test set-up."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    # Starlette 1.x asks for httpx2 under its TestClient; httpx works the same for these tests.
    config.addinivalue_line("filterwarnings", "ignore:Using `httpx` with `starlette.testclient` is deprecated")
