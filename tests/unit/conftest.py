"""Fixtures of the unit tests (fast, no qemu, no libguestfs, no servers).

- `cli`: `tests.conftest.run_cli` as a fixture: runs `imagepipe ARGS` in a subprocess.
"""

from __future__ import annotations

import pytest

from tests.conftest import run_cli


@pytest.fixture
def cli():
    """The `run_cli` helper as a fixture."""
    return run_cli
