"""The resolver against a real signed repository on 127.0.0.1 (no Debian mirror needed).

It proves what the nightly freshness check relies on: the set names exact versions, an
unchanged repository is not downloaded again (one InRelease request), a changed one is, a
`build --all` batch asks each repository once, a wrong key fails with the repository named,
and `--offline` reuses the last set without any request.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from imagepipe.apt.resolve import BATCH_ENV, AptState, ResolveError, resolve
from imagepipe.apt.sources import Repo
from imagepipe.errors import InputError
from tests.integration.aptrepo import SUITE, SignedRepo
from tests.integration.pipeline_helpers import HttpServer


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SignedRepo, HttpServer,
                                                                         Path]]:
    d = tmp_path_factory.mktemp("aptrepo")
    repo = SignedRepo(d / "www", d / "gnupg")
    key = repo.export_key(d / "canary.asc")
    repo.publish("canary", "1.0")
    server = HttpServer(d / "www")
    try:
        yield repo, server, key
    finally:
        server.stop()
        repo.close()


def _requests(server: HttpServer, name: str) -> int:
    return sum(1 for e in server.log() if str(e["path"]).endswith(name))


def test_resolve_follows_the_repository(signed: tuple[SignedRepo, HttpServer, Path],
                                        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo, server, key = signed
    monkeypatch.delenv(BATCH_ENV, raising=False)
    state = AptState(tmp_path / "apt")
    r = Repo(server.url, SUITE, ("main",), str(key), origin="extra")
    first = resolve(state, [r], "custom", ["canary"])
    assert [(p.name, p.version, p.arch) for p in first.packages] == [("canary", "1.0", "all")]
    assert first.fetched == [r.id]

    server.control("reset")
    again = resolve(state, [r], "custom", ["canary"])
    assert again.fetched == [] and again.digest() == first.digest()
    assert _requests(server, "InRelease") == 1 and _requests(server, "Packages.gz") == 0

    repo.publish("canary", "1.1")
    bumped = resolve(state, [r], "custom", ["canary"])
    assert bumped.fetched == [r.id] and bumped.as_map() == {"canary": "1.1 all"}

    monkeypatch.setenv(BATCH_ENV, "batch-1")
    resolve(state, [r], "custom", ["canary"])
    server.control("reset")
    resolve(state, [r], "custom", ["canary"])  # same batch: the repository is not asked
    assert server.log() == []

    offline = resolve(state, [r], "custom", ["canary"], offline=True)
    assert offline.offline and offline.as_map() == {"canary": "1.1 all"}
    assert server.log() == []
    with pytest.raises(InputError, match="no package set was resolved"):
        resolve(state, [r], "custom", ["canary", "other"], offline=True)
    repo.publish("canary", "1.0")  # leave it as the module found it


def test_wrong_key_and_missing_package_are_named(signed: tuple[SignedRepo, HttpServer, Path],
                                                 tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    _, server, key = signed
    monkeypatch.delenv(BATCH_ENV, raising=False)
    state = AptState(tmp_path / "apt")
    good = Repo(server.url, SUITE, ("main",), str(key))
    with pytest.raises(InputError, match="not found in canary: no-such-pkg"):
        resolve(state, [good], "custom", ["no-such-pkg"])
    bad = Repo(server.url, SUITE, ("main",), "/usr/share/keyrings/debian-archive-keyring.gpg")
    with pytest.raises(ResolveError) as err:
        resolve(AptState(tmp_path / "apt2"), [bad], "custom", ["canary"])
    assert server.url in str(err.value) and "canary" in str(err.value)
