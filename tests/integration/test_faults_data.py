"""Fault suite, issue 11 items 2, 4 and 8: crafted images refused by guest work, corrupt store
data never served, limits and modes (see docs/security.md)."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.integration.faults_helpers import cli, digest, make_image, write_recipe

pytestmark = pytest.mark.faults


@pytest.fixture
def image(tmp_path: Path) -> Path:
    return make_image(tmp_path / "base.qcow2")


# -- item 2: guest commands open crafted images --------------------------------------------
@pytest.fixture
def crafted(tmp_path: Path) -> dict[str, Path]:
    host = tmp_path / "host-file.raw"
    host.write_bytes(b"host data, must not change\n" * 1000)
    df = tmp_path / "df.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-o",
                    f"data_file={host},data_file_raw=on", str(df), "64K"], check=True)
    bk = tmp_path / "bk.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", "/etc/shadow", "-F",
                    "raw", str(bk), "64K"], check=True)
    ud = tmp_path / "user-data.yaml"
    ud.write_text("#cloud-config\nhostname: h\n")
    return {"host": host, "df": df, "bk": bk, "ud": ud}


@pytest.mark.qemu
@pytest.mark.parametrize("command", [
    ["seal"], ["customize", "--run", "true"], ["inject", "--user-data", "{ud}"]])
@pytest.mark.parametrize("which", ["df", "bk"])
def test_2_guest_commands_refuse_crafted_images(tmp_path: Path, crafted: dict[str, Path],
                                                command: list[str], which: str) -> None:
    before = crafted["host"].read_bytes()
    out = tmp_path / f"out-{which}.qcow2"
    args = [a.replace("{ud}", str(crafted["ud"])) for a in command[1:]]
    r = cli(command[0], str(crafted[which]), "-o", str(out), *args)
    assert r.returncode == 2, r.stderr
    assert "refusing an image with a" in r.stderr
    assert ("external data file" if which == "df" else "/etc/shadow") in r.stderr
    assert crafted["host"].read_bytes() == before
    assert not out.exists() and not list(tmp_path.glob(".out-*"))


@pytest.mark.qemu
def test_2_the_appliance_itself_refuses_them(crafted: dict[str, Path]) -> None:
    """GuestSession probes before libguestfs sees the image, whoever calls it."""
    from imagepipe.errors import ImageError
    from imagepipe.tools.guestfs import GuestSession

    for which in ("df", "bk"):
        with pytest.raises(ImageError, match="refusing"):
            with GuestSession(crafted[which], fmt="qcow2", readonly=True):
                pass


# -- item 4: corrupt store data ------------------------------------------------------------
def _flip(path: Path, offset: int | None = None) -> None:
    """Flip one data byte (the last cluster of a small qcow2 holds the written data)."""
    path.chmod(0o644)
    if offset is None:
        offset = min(1 << 20, path.stat().st_size - 1000)
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0xFF]))


@pytest.mark.qemu
def test_4_corrupt_stage_output_is_never_published(tmp_path: Path, image: Path) -> None:
    store = tmp_path / "store"
    recipe = write_recipe(tmp_path, image, image_version="1.0")
    assert cli("build", str(recipe), "--store", str(store)).returncode == 0
    out = next(store.glob("stages/*/t.raw"))
    _flip(out)
    recipe = write_recipe(tmp_path, image, image_version="2.0")
    r = cli("build", str(recipe), "--store", str(store))
    assert r.returncode == 1, r.stderr
    assert "corrupt store file" in r.stderr and "quarantine" in r.stderr
    assert not (tmp_path / "templates/t/2.0").exists()
    assert list((store / "quarantine").iterdir())
    r = cli("build", str(recipe), "--store", str(store))  # rebuilt (same bytes as 1.0)
    assert r.returncode == 0, r.stderr
    assert "convert.raw" in r.stderr and "running convert.raw" in r.stderr
    sums = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=tmp_path / "templates/t/latest",
                          capture_output=True, text=True)
    assert sums.returncode == 0, sums.stdout + sums.stderr


@pytest.mark.qemu
def test_4_corrupt_fetched_object_poisons_nothing(tmp_path: Path, image: Path) -> None:
    store = tmp_path / "store"
    recipe = write_recipe(tmp_path, image)
    assert cli("build", str(recipe), "--store", str(store)).returncode == 0
    obj = next((store / "objects" / "sha256").glob("[0-9a-f]*[0-9a-f]"))
    _flip(obj)
    r = cli("--json", "cache", "verify", "--store", str(store))
    assert r.returncode == 1
    events = [json.loads(line) for line in r.stdout.splitlines()]
    corrupt = next(e for e in events if e["event"] == "result")["corrupt"]
    problems = " ".join(c["problem"] for c in corrupt)
    assert "built from corrupt input" in problems  # the convert made from it, down the chain
    r = cli("cache", "verify", "--delete", "--store", str(store))
    r = cli("cache", "verify", "--store", str(store))
    assert r.returncode == 0 and "0 corrupt" in r.stdout, r.stdout + r.stderr
    r = cli("build", str(recipe), "--store", str(store))
    assert r.returncode == 0, r.stderr
    assert "running convert.raw" in r.stderr  # the poisoned convert was not kept
    assert cli("cache", "verify", "--store", str(store)).returncode == 0
    # and a stage that reads a corrupt object fails instead of building from it
    obj = next((store / "objects" / "sha256").glob("[0-9a-f]*[0-9a-f]"))
    _flip(obj)
    recipe = write_recipe(tmp_path, image, outputs=[{"format": "vdi"}])
    r = cli("build", str(recipe), "--store", str(store))
    assert r.returncode == 1 and "corrupt store file" in r.stderr, r.stderr


# -- item 8: limits and modes ----------------------------------------------------------------
@pytest.mark.qemu
def test_8_recipe_user_data_and_yaml_node_limits(tmp_path: Path, image: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text("description: x\n" + "# padding\n" * 200_000)
    t0 = time.monotonic()
    r = cli("validate", str(big))
    assert r.returncode == 2 and "1.0 MiB limit" in r.stderr, r.stderr
    assert time.monotonic() - t0 < 10
    many = tmp_path / "many.yaml"
    many.write_text("".join(f"k{i}: {i}\n" for i in range(30_000)))
    r = cli("validate", str(many))
    assert r.returncode == 2 and "more than 20000 YAML values" in r.stderr, r.stderr
    assert "alias bomb" not in r.stderr
    ud = tmp_path / "user-data.yaml"
    ud.write_text("#cloud-config\nwrite_files:\n- path: /x\n  content: '" + "a" * (2 << 20)
                  + "'\n")
    recipe = write_recipe(tmp_path, image, cloud_init={"user_data": "user-data.yaml"})
    r = cli("validate", str(recipe))
    assert r.returncode == 2 and "user-data is 2.0 MiB" in r.stderr, r.stderr


def test_8_name_newline_and_engine_rules(tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_text("secret\n")
    pw.chmod(0o644)
    base = ["ovirt", "templates", "ls", "--password-file", str(pw)]
    r = cli(*base, "--engine", "http://127.0.0.1:9")
    assert r.returncode == 2 and "https://" in r.stderr, r.stderr
    r = cli(*base, "--engine", "https://127.0.0.1:9")
    assert r.returncode == 2 and "mode 0644" in r.stderr and "chmod 600" in r.stderr
    pw.write_text("")
    pw.chmod(0o600)
    r = cli(*base, "--engine", "https://127.0.0.1:9")
    assert r.returncode == 2 and "is empty" in r.stderr, r.stderr
    pw.write_text("secret\n")
    t0 = time.monotonic()
    r = cli("ovirt", "upload-disk", str(tmp_path / "nosuch.qcow2"), "-s", "data",
            "--engine", "https://127.0.0.1:9", "--password-file", str(pw))
    assert r.returncode == 2 and "no such file" in r.stderr, r.stderr
    assert "connect" not in r.stderr.lower() and time.monotonic() - t0 < 10


class _Empty500(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        self.send_response(500)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_GET  # noqa: N815

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def empty_500(tmp_path: Path) -> Iterator[str]:
    import ssl

    from imagepipe.testing.ovirt_engine.pki import make_pki

    pki = make_pki(tmp_path / "pki")
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), _Empty500)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(pki.cert_file), str(pki.key_file))
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"https://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()


def test_8_engine_500_with_no_body_is_a_clean_error(tmp_path: Path, empty_500: str) -> None:
    pw = tmp_path / "pw"
    pw.write_text("secret\n")
    pw.chmod(0o600)
    r = cli("ovirt", "templates", "ls", "--engine", empty_500, "--insecure",
            "--password-file", str(pw), timeout=120)
    assert r.returncode == 1, r.stderr
    assert "error: logging in to the engine: the engine sent a reply" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.qemu
def test_8_umask_is_respected_for_published_files(tmp_path: Path, image: Path) -> None:
    recipe = write_recipe(tmp_path, image)
    r = cli("build", str(recipe), "--store", str(tmp_path / "store"), umask=0o077)
    assert r.returncode == 0, r.stderr
    for f in (tmp_path / "templates/t/1.0").iterdir():
        assert f.stat().st_mode & 0o077 == 0, (f, oct(f.stat().st_mode))


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "small"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3M", "tmpfs",
                                            str(mnt)], capture_output=True).returncode:
        pytest.skip("needs root to mount a small tmpfs")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.mark.qemu
def test_8_enospc_writing_an_ova_is_a_clean_error(tmp_path: Path, small_fs: Path) -> None:
    raw = tmp_path / "noise.raw"  # incompressible: the VMDK fits in 3 MiB, the archive not
    raw.write_bytes(os.urandom(2 << 20))
    r = cli("convert", str(raw), str(small_fs / "x.ova"))
    assert r.returncode == 1, r.stderr
    assert "No space left on device" in r.stderr and "Traceback" not in r.stderr
    assert list(small_fs.iterdir()) == []  # nothing half-written left behind


def test_8_failed_download_part_is_removed_on_a_full_disk(tmp_path: Path,
                                                          small_fs: Path) -> None:
    src = tmp_path / "noise.raw"
    src.write_bytes(os.urandom(8 << 20))
    src.chmod(0o644)
    r = cli("fetch", f"file://{src}", "--checksum", digest(src), "--store", str(small_fs))
    assert r.returncode == 1 and "No space left" in r.stderr, r.stderr
    assert list((small_fs / "downloads").glob("*.part")) == []


class _Endless(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    announce: int | None = None

    def do_GET(self) -> None:  # noqa: N802
        self.send_response(200)
        if self.announce is not None:
            self.send_header("Content-Length", str(self.announce))
        self.end_headers()
        chunk = b"\x55" * (1 << 16)
        try:
            for _ in range(1 << 16):  # up to 4 GiB unless the client hangs up
                self.wfile.write(chunk)
        except OSError:
            pass

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize("announce", [None, 5 << 30])
def test_8_download_size_cap(tmp_path: Path, announce: int | None) -> None:
    handler = type("H", (_Endless,), {"announce": announce})
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        store = tmp_path / "store"
        t0 = time.monotonic()
        r = cli("fetch", f"http://127.0.0.1:{srv.server_address[1]}/endless.raw",
                "--insecure-no-checksum", "--max-size", "8M", "--store", str(store))
        assert r.returncode == 2, r.stderr
        assert "more than max_size 8.0 MiB" in r.stderr
        assert time.monotonic() - t0 < 30
        assert list((store / "downloads").glob("*.part")) == []
    finally:
        srv.shutdown()
        srv.server_close()


def test_8_downloads_are_stored_sparse(tmp_path: Path) -> None:
    from tests.integration.pipeline_helpers import HttpServer

    www = tmp_path / "www"
    www.mkdir()
    raw = www / "sparse.raw"
    with open(raw, "wb") as f:
        f.truncate(256 << 20)
        f.seek(100 << 20)
        f.write(b"x" * 4096)
    server = HttpServer(www)
    try:
        store = tmp_path / "store"
        r = cli("fetch", f"{server.url}/sparse.raw", "--checksum", digest(raw),
                "--store", str(store))
        assert r.returncode == 0, r.stderr
        obj = Path(r.stdout.strip().splitlines()[-1])
        assert obj.stat().st_size == 256 << 20
        assert obj.stat().st_blocks * 512 < (4 << 20), obj.stat().st_blocks
    finally:
        server.stop()
