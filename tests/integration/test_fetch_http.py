"""fetch against a real local HTTP server: resume, mirrors, retries, checksums, cache by digest."""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import imagepipe.fetch as fetchmod
from imagepipe.errors import ImagepipeError, InputError
from imagepipe.fetch import ChecksumMismatch, fetch, fetch_result
from imagepipe.fetch.transfer import CHUNK
from imagepipe.fetch.unpack import unpack
from imagepipe.recipe.model import Download
from imagepipe.store import Store
from tests.conftest import run_cli
from tests.integration.pipeline_helpers import HttpServer, random_file, sha256


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fetchmod, "BACKOFF", 0.01)


@pytest.fixture
def st(tmp_path: Path) -> Store:
    s = Store(tmp_path / "store")
    yield s
    s.holds.close()


def test_resume_after_drop_sends_only_the_rest(server: HttpServer, http_root: Path,
                                               st: Store) -> None:
    f = random_file(http_root / "big.img", 8 * CHUNK + 12345)
    drop_after = 3 * CHUNK + 777
    server.fault("/big.img", "drop", after=drop_after)
    path = fetch(Download(url=f"{server.url}/big.img", checksum=sha256(f)), st)
    assert path.read_bytes() == f.read_bytes()
    log = server.log("/big.img")
    assert [e["status"] for e in log] == [200, 206]
    assert log[0]["sent"] == drop_after
    resumed_from = int(str(log[1]["range"]).removeprefix("bytes=").rstrip("-"))
    missing = f.stat().st_size - drop_after
    resent = int(log[1]["sent"]) - missing
    assert 0 <= resent < CHUNK, (resumed_from, resent)
    assert not list((st.root / "downloads").glob("*.part"))


def test_wrong_checksum_leaves_nothing_and_names_both(server: HttpServer, http_root: Path,
                                                      st: Store) -> None:
    f = random_file(http_root / "a.img", 100_000)
    bad = "sha256:" + "0" * 64
    with pytest.raises(ChecksumMismatch) as exc:
        fetch(Download(url=f"{server.url}/a.img", checksum=bad), st)
    assert bad in str(exc.value) and sha256(f) in str(exc.value)
    assert not any((st.root / "objects").rglob("*[0-9a-f]"))
    assert not list((st.root / "downloads").glob("*.part"))


def test_wrong_content_then_good_mirror(server: HttpServer, http_root: Path, st: Store) -> None:
    f = random_file(http_root / "m.img", 200_000, seed=2)
    (http_root / "mirror").mkdir(exist_ok=True)
    (http_root / "mirror" / "m.img").write_bytes(f.read_bytes())
    server.fault("/m.img", "wrong")
    res = fetch_result(Download(url=f"{server.url}/m.img", checksum=sha256(f),
                                mirrors=(f"{server.url}/mirror/",)), st)
    assert res.url == f"{server.url}/mirror/m.img"
    assert res.path.read_bytes() == f.read_bytes()


def test_404_tries_mirrors_then_fails_clearly(server: HttpServer, http_root: Path,
                                              st: Store) -> None:
    f = random_file(http_root / "n.img", 1000, seed=3)
    with pytest.raises(ImagepipeError) as exc:
        fetch(Download(url=f"{server.url}/missing.img", checksum=sha256(f),
                       mirrors=(f"{server.url}/also-missing.img",)), st)
    assert "404" in str(exc.value) and "also-missing" in str(exc.value)
    assert len(server.log()) == 2  # 404 is not retried


def test_server_errors_are_retried(server: HttpServer, http_root: Path, st: Store) -> None:
    f = random_file(http_root / "r.img", 5000, seed=4)
    server.fault("/r.img", "500", count=2)
    fetch(Download(url=f"{server.url}/r.img", checksum=sha256(f)), st)
    assert [e["status"] for e in server.log("/r.img")] == [500, 500, 200]


@pytest.mark.parametrize("style", ["gnu", "bsd"])
def test_checksum_file_formats(style: str, server: HttpServer, http_root: Path,
                               st: Store) -> None:
    f = random_file(http_root / f"c-{style}.qcow2", 3000, seed=5)
    hexd = sha256(f).split(":")[1]
    other = "ab" * 32
    if style == "gnu":
        text = f"{other}  other.qcow2\n{hexd} *c-{style}.qcow2\n"
    else:
        text = (f"# comment\nSHA256 (other.qcow2) = {other}\n"
                f"SHA256 (c-{style}.qcow2) = {hexd}\n")
    (http_root / f"SUMS-{style}").write_text(text)
    res = fetch_result(Download(url=f"{server.url}/c-{style}.qcow2",
                                checksum_url=f"{server.url}/SUMS-{style}"), st)
    assert res.digest == sha256(f) and res.checksum_from.endswith(f"SUMS-{style}")


def test_checksum_file_without_our_name(server: HttpServer, http_root: Path, st: Store) -> None:
    (http_root / "SUMS-x").write_text("ab" * 32 + "  other.qcow2\n")
    with pytest.raises(InputError, match="no checksum for 'x.qcow2'.*other.qcow2"):
        fetch(Download(url=f"{server.url}/x.qcow2", checksum_url=f"{server.url}/SUMS-x"), st)


def test_same_digest_new_url_is_a_hit_without_network(server: HttpServer, http_root: Path,
                                                      st: Store) -> None:
    f = random_file(http_root / "h.img", 50_000, seed=6)
    first = fetch(Download(url=f"{server.url}/h.img", checksum=sha256(f)), st)
    server.control("reset")
    res = fetch_result(Download(url="http://127.0.0.1:9/elsewhere/h2.img", checksum=sha256(f)),
                       st)
    assert res.path == first and res.url is None
    assert server.log() == []


def test_refused_without_checksum_unless_insecure(server: HttpServer, http_root: Path,
                                                  st: Store) -> None:
    f = random_file(http_root / "i.img", 1000, seed=7)
    with pytest.raises(InputError, match="without a checksum"):
        fetch(Download(url=f"{server.url}/i.img"), st)
    assert server.log() == []
    res = fetch_result(Download(url=f"{server.url}/i.img", insecure_no_checksum=True), st)
    assert res.digest == sha256(f) and res.warnings


def test_file_url(tmp_path: Path, st: Store) -> None:
    f = random_file(tmp_path / "local.img", 10_000, seed=8)
    assert fetch(Download(url=f.as_uri(), checksum=sha256(f)), st).read_bytes() == f.read_bytes()


@pytest.mark.parametrize("codec", ["xz", "gz", "bz2", "zst"])
def test_decompress_keyed_by_compressed_digest(codec: str, tmp_path: Path, st: Store) -> None:
    raw = random_file(tmp_path / "disk.raw", 300_000, seed=9) .read_bytes() + bytes(4 << 20)
    packed = tmp_path / f"disk.raw.{codec}"
    if codec == "zst":
        (tmp_path / "disk.raw").write_bytes(raw)
        subprocess.run(["zstd", "-q", "-f", str(tmp_path / "disk.raw"), "-o", str(packed)],
                       check=True)
    else:
        opener = {"xz": lzma.open, "gz": gzip.open, "bz2": bz2.open}[codec]
        with opener(packed, "wb") as out:
            out.write(raw)
    res = fetch_result(Download(url=packed.as_uri(), checksum=sha256(packed)), st)
    art = unpack(st, res.path, res.digest, packed.name)
    assert art is not None and art.path is not None
    assert art.path.name == "disk.raw" and art.path.read_bytes() == raw
    assert art.path.stat().st_blocks * 512 < len(raw)  # zeros became holes
    again = unpack(st, res.path, res.digest, packed.name)
    assert again is not None and again.path == art.path


def test_kill_9_mid_download_then_resume(server: HttpServer, http_root: Path,
                                         tmp_path: Path) -> None:
    f = random_file(http_root / "slow.img", 4 * CHUNK, seed=10)
    server.fault("/slow.img", "slow", rate=CHUNK)
    store = tmp_path / "store"
    cmd = [sys.executable, "-m", "imagepipe", "fetch", f"{server.url}/slow.img",
           "--checksum", sha256(f), "--store", str(store)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    part = store / "downloads" / (sha256(f).replace(":", "-") + ".part")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and (not part.exists() or part.stat().st_size < CHUNK):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    have = part.stat().st_size
    assert 0 < have < f.stat().st_size
    assert not any((store / "objects").rglob("*[0-9a-f]"))  # nothing half-written served
    server.control("reset")
    out = tmp_path / "placed.img"
    r = run_cli("fetch", f"{server.url}/slow.img", "--checksum", sha256(f),
                "--store", str(store), "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert Path(r.stdout.strip()).read_bytes() == f.read_bytes() == out.read_bytes()
    assert "slow.img: 100% " in r.stderr and "MiB/s, ETA" in r.stderr  # progress, rate, ETA
    log = server.log("/slow.img")
    assert log[0]["range"] == f"bytes={have}-" and log[0]["status"] == 206


def test_cli_bad_checksum_exit_codes(server: HttpServer, http_root: Path, tmp_path: Path) -> None:
    random_file(http_root / "e.img", 1000, seed=11)
    r = run_cli("fetch", f"{server.url}/e.img", "--checksum", "sha256:xyz",
                "--store", str(tmp_path / "s"))
    assert r.returncode == 2 and "bad checksum" in r.stderr
    r = run_cli("fetch", f"{server.url}/e.img", "--checksum", "sha256:" + "1" * 64,
                "--store", str(tmp_path / "s"))
    assert r.returncode == 1 and "checksum mismatch" in r.stderr


def test_server_without_range_support_restarts_cleanly(server: HttpServer, http_root: Path,
                                                       st: Store) -> None:
    f = random_file(http_root / "nr.img", 3 * CHUNK, seed=12)
    part = st.root / "downloads" / (sha256(f).replace(":", "-") + ".part")
    part.write_bytes(f.read_bytes()[:1000])  # an earlier partial download
    server.control("reset")
    server.fault("/nr.img", "norange")
    path = fetch(Download(url=f"{server.url}/nr.img", checksum=sha256(f)), st)
    assert path.read_bytes() == f.read_bytes()
    log = server.log("/nr.img")
    assert log[0]["range"] == "bytes=1000-" and log[0]["status"] == 200  # ignored: start over


def test_torn_partial_download_is_redone_from_scratch(server: HttpServer, http_root: Path,
                                                      st: Store) -> None:
    """After a power loss the .part may hold garbage; the resumed file then fails its checksum
    and the fetch starts over once instead of failing the build."""
    f = random_file(http_root / "torn.img", 2 * CHUNK, seed=13)
    part = st.root / "downloads" / (sha256(f).replace(":", "-") + ".part")
    part.write_bytes(b"\0" * 5000)  # zeros where data should be
    path = fetch(Download(url=f"{server.url}/torn.img", checksum=sha256(f)), st)
    assert path.read_bytes() == f.read_bytes()
    assert [e["range"] for e in server.log("/torn.img")] == ["bytes=5000-", None]
