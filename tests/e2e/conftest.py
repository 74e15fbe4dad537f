"""End-to-end fixtures: one store shared by the whole test session.

Why shared: the e2e builds are minutes long and mostly the same stages (a bootstrap tarball,
a base disk); sharing the store lets every e2e test after the first reuse what is cached, the
way a build machine does. Set IMAGEPIPE_TEST_STORE=DIR to keep it across test runs too.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def shared_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    env = os.environ.get("IMAGEPIPE_TEST_STORE")
    if env:
        path = Path(env)
        path.mkdir(parents=True, exist_ok=True)
        return path
    return tmp_path_factory.mktemp("shared-store")
