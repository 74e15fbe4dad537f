"""Fixtures of the integration tests. Every fixture these tests share lives here, so pytest
finds it for every module without imports, and an autouse fixture applies to every module.

- `http_root`, `http_server`, `server`: one real HTTP server process per module on a free
  127.0.0.1 port (resume, drops, wrong bytes and 404s are proven against a real socket; its
  request log is the evidence the tests assert), reset before each test.
- `sim`, `reset_faults`: one oVirt engine simulator with the real ovirt-imageio daemon per
  module; the faults a test injected are cleared after it, in every module that uses `sim`.
- `sdk_con`: an ovirtsdk4 connection to that simulator for one test (closed after it).
- `store`: a private imagepipe store for one test.

Plain helpers (images, the server's client class, CLI wrappers) stay in the helper modules
beside this file, named for what they are.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from imagepipe.testing.ovirt_engine import EngineSimulator
from tests.integration.pipeline_helpers import HttpServer


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A private imagepipe store for one test."""
    d = tmp_path / "store"
    d.mkdir()
    return d


@pytest.fixture(scope="module")
def http_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("www")


@pytest.fixture(scope="module")
def http_server(http_root: Path) -> Iterator[HttpServer]:
    server = HttpServer(http_root)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def server(http_server: HttpServer) -> HttpServer:
    http_server.control("reset")
    return http_server


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineSimulator]:
    """One simulator + real imageio daemon per test module; faults reset after each test."""
    with EngineSimulator(tmp_path_factory.mktemp("engine"), delay=0.2) as s:
        yield s
        pid = s.daemon.pid if s.daemon else None
    assert pid is None or not _alive(pid), "imageio daemon still running after the fixture"


@pytest.fixture(autouse=True)
def reset_faults(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "sim" in request.fixturenames:
        s = request.getfixturevalue("sim")
        s.engine.faults.values.clear()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def sdk_con(sim: EngineSimulator) -> Iterator[Any]:
    """The unmodified oVirt SDK connected to the module's simulator, closed after the test."""
    import ovirtsdk4 as sdk

    con = sdk.Connection(url=sim.api_url, username=sim.username, password=sim.password,
                         ca_file=str(sim.ca_file))
    yield con
    con.close()
