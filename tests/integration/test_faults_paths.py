"""Fault suite, issue 11 items 1, 3, 6 and 7: paths confined, host files kept out of
artifacts, credentials masked, special files and foreign directories left alone, copies across
filesystems. Each test starts from the reproduced fault (see docs/security.md)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from tests.integration.faults_helpers import cli, digest, make_image, write_recipe

pytestmark = pytest.mark.faults


@pytest.fixture
def image(tmp_path: Path) -> Path:
    return make_image(tmp_path / "base.qcow2")


# -- item 1: image_version / name escape the template store --------------------------------
@pytest.mark.qemu
@pytest.mark.parametrize("version", ["/tmp/victim", "../../x", "..", "a/b", ".hidden"])
def test_1_image_version_escaping_the_store_is_refused(tmp_path: Path, image: Path,
                                                       version: str) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious").write_text("keep me")
    if version == "/tmp/victim":
        version = str(victim)
    recipe = write_recipe(tmp_path, image, image_version=version)
    r = cli("validate", str(recipe))
    assert r.returncode == 2, r.stderr
    assert f"{recipe}:3:" in r.stderr and "image_version" in r.stderr  # file:line
    r = cli("build", str(recipe), "--store", str(tmp_path / "store"))
    assert r.returncode == 2, r.stderr
    assert (victim / "precious").read_text() == "keep me"
    assert not (tmp_path / "templates").exists()


@pytest.mark.qemu
def test_1_name_with_a_newline_is_refused(tmp_path: Path, image: Path) -> None:
    recipe = write_recipe(tmp_path, image, name="x\n")
    r = cli("validate", str(recipe))
    assert r.returncode == 2 and "name" in r.stderr, r.stderr


def test_1_publish_checks_version_again_where_it_is_used(tmp_path: Path) -> None:
    """Even a recipe object that skipped validate cannot leave DIR/NAME/."""
    from imagepipe.errors import InputError
    from imagepipe.stages.publish_local import safe_component

    for bad in ("..", "../x", "/tmp/victim", "x\n", "", ".x"):
        with pytest.raises(InputError):
            safe_component(bad, "image_version")
    assert safe_component("1.0-rc1+b2~x", "image_version") == "1.0-rc1+b2~x"


# -- item 3: host files in artifacts, credentials in URLs ------------------------------------
@pytest.mark.qemu
def test_3_meta_data_outside_the_recipe_dir_is_refused(tmp_path: Path, image: Path) -> None:
    (tmp_path / "user-data.yaml").write_text("#cloud-config\n{}\n")
    recipe = write_recipe(tmp_path, image, cloud_init={
        "user_data": "user-data.yaml", "meta_data": "../../../../etc/shadow"})
    r = cli("validate", str(recipe))
    assert r.returncode == 2, r.stderr
    assert "cloud_init.meta_data" in r.stderr and "outside the recipe directory" in r.stderr
    assert f"{recipe}:" in r.stderr
    link = tmp_path / "meta.yaml"  # a symlink inside the directory is resolved, too
    link.symlink_to("/etc/shadow")
    recipe = write_recipe(tmp_path, image, cloud_init={"meta_data": "meta.yaml"})
    r = cli("validate", str(recipe))
    assert r.returncode == 2 and "outside the recipe directory" in r.stderr, r.stderr


def test_3_private_file_source_needs_the_flag(tmp_path: Path) -> None:
    secret = tmp_path / "secret.raw"
    secret.write_bytes(b"root:$6$hash:19000:0:99999:7:::\n" * 64)
    secret.chmod(0o600)
    store = tmp_path / "store"
    recipe = write_recipe(tmp_path, secret, source={"image": {
        "url": f"file://{secret}", "insecure_no_checksum": True, "format": "raw"}})
    r = cli("build", str(recipe), "--store", str(store))
    assert r.returncode == 2, r.stderr
    assert "other users cannot read" in r.stderr and "allow_private_file" in r.stderr
    assert not any((store / "objects").rglob("*")) if (store / "objects").exists() else True
    assert not (tmp_path / "templates").exists()
    r = cli("fetch", f"file://{secret}", "--insecure-no-checksum", "--store", str(store))
    assert r.returncode == 2 and "--allow-private-file" in r.stderr, r.stderr
    r = cli("fetch", f"file://{secret}", "--insecure-no-checksum", "--allow-private-file",
            "--store", str(store))
    assert r.returncode == 0, r.stderr


@pytest.mark.qemu
def test_3_url_credentials_are_masked_everywhere(tmp_path: Path, image: Path,
                                                  ) -> None:
    from tests.integration.pipeline_helpers import HttpServer

    www = tmp_path / "www"
    www.mkdir()
    os.link(image, www / "base.qcow2")
    server = HttpServer(www)
    try:
        url = server.url.replace("http://", "http://builder:S3cretPW@") + "/base.qcow2"
        recipe = write_recipe(tmp_path, image, source={"image": {"url": url,
                                                                 "checksum": digest(image)}})
        store = tmp_path / "store"
        r = cli("--json", "build", str(recipe), "--store", str(store))
        assert r.returncode == 0, r.stderr
        assert "S3cretPW" not in r.stdout + r.stderr
        assert "***@127.0.0.1" in (tmp_path / "templates/t/1.0/manifest.json").read_text()
        leaked = [p for p in [*store.rglob("*"), *(tmp_path / "templates").rglob("*")]
                  if p.is_file() and p.stat().st_size < (1 << 20)
                  and b"S3cretPW" in p.read_bytes()]
        assert leaked == []  # manifest.json, artifact.json, logs/fetch.log, stages.json
        assert list(store.rglob("fetch.log"))
        server.stop()  # an error message repeats the URL: masked too
        r = cli("fetch", url, "--checksum", "sha256:" + "0" * 64, "--store",
                str(tmp_path / "s2"), env={"IMAGEPIPE_FETCH_BACKOFF": "0"})
        assert r.returncode == 1 and "***@127.0.0.1" in r.stderr
        assert "S3cretPW" not in r.stderr + r.stdout
    finally:
        server.stop()


# -- item 6: special files, foreign directories -------------------------------------------
@pytest.mark.qemu
@pytest.mark.parametrize("kind", ["devnull", "fifo"])
def test_6_convert_force_never_replaces_a_special_file(tmp_path: Path, image: Path,
                                                       kind: str) -> None:
    if kind == "devnull":
        dst = tmp_path / "null.raw"
        dst.symlink_to("/dev/null")  # as `convert --force a.qcow2 /dev/null` resolves
        target = Path("/dev/null")
    else:
        dst = target = tmp_path / "pipe.raw"
        os.mkfifo(dst)
    before = target.stat()
    r = cli("convert", str(image), str(dst), "--force")
    assert r.returncode == 2, r.stderr
    assert "only replaces regular files" in r.stderr
    after = os.stat(target)
    assert stat.S_IFMT(after.st_mode) == stat.S_IFMT(before.st_mode)
    assert after.st_ino == before.st_ino
    r = cli("convert", str(image), "/dev/null", "--force")
    assert r.returncode == 2 and stat.S_ISCHR(os.stat("/dev/null").st_mode)


@pytest.mark.qemu
def test_6_keep_removes_only_what_it_published(tmp_path: Path, image: Path) -> None:
    tpl = tmp_path / "templates" / "t"
    foreign = tpl / "my-notes"
    foreign.mkdir(parents=True)
    (foreign / "notes.txt").write_text("mine")
    store = str(tmp_path / "store")
    for version in ("1.0", "2.0"):
        img = make_image(tmp_path / f"b{version}.qcow2", data=version.encode() * 10)
        recipe = write_recipe(tmp_path, img, image_version=version,
                              publish={"local": {"dir": str(tmp_path / "templates"), "keep": 1}})
        r = cli("build", str(recipe), "--store", store)
        assert r.returncode == 0, r.stderr
    assert (foreign / "notes.txt").read_text() == "mine"
    assert not (tpl / "1.0").exists() and (tpl / "2.0" / ".imagepipe-published").is_file()
    # a directory imagepipe did not publish is never replaced by a version of that name
    (tpl / "3.0").mkdir()
    recipe = write_recipe(tmp_path, make_image(tmp_path / "b3.qcow2", data=b"3"),
                          image_version="3.0")
    r = cli("build", str(recipe), "--store", store)
    assert r.returncode == 2 and "not published by imagepipe" in r.stderr, r.stderr
    assert (tpl / "3.0").is_dir() and not any((tpl / "3.0").iterdir())


# -- item 7: another filesystem ------------------------------------------------------------
@pytest.mark.qemu
def test_7_copies_across_filesystems_fall_back_and_stay_sparse(tmp_path: Path) -> None:
    from imagepipe.store.place import copy_out

    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("needs /dev/shm on another filesystem")
    src = tmp_path / "sparse.raw"
    with open(src, "wb") as f:
        f.truncate(64 << 20)
        f.seek(32 << 20)
        f.write(b"data" * 1024)
    dst = shm / f"imagepipe-fault-{os.getpid()}.raw"
    try:
        assert copy_out(src, dst, hardlink=False) == "copy"  # copy_file_range: EXDEV
        assert dst.read_bytes() == src.read_bytes()
        assert dst.stat().st_blocks * 512 < (2 << 20)  # holes kept
        # the CLI path: fetch -o onto the other filesystem, a copy (never a hardlink)
        image = make_image(tmp_path / "img.qcow2")
        out = shm / f"imagepipe-fault-{os.getpid()}.qcow2"
        r = cli("fetch", f"file://{image}", "--checksum", digest(image), "--store",
                str(tmp_path / "store"), "-o", str(out))
        assert r.returncode == 0, r.stderr
        assert digest(out) == digest(image)
        out.unlink()
    finally:
        dst.unlink(missing_ok=True)


@pytest.mark.qemu
def test_13_6_fetch_output_is_a_copy_not_the_store_object(tmp_path: Path,
                                                         image: Path) -> None:
    store = tmp_path / "store"
    out = tmp_path / "fetched.qcow2"
    r = cli("fetch", f"file://{image}", "--checksum", digest(image), "--store", str(store),
            "-o", str(out))
    assert r.returncode == 0, r.stderr
    obj = Path(r.stdout.strip().splitlines()[-1].split()[0]) if r.stdout.strip() else None
    assert out.stat().st_nlink == 1 and (obj is None or not os.path.samefile(out, obj))
    with open(out, "r+b") as f:  # the user writes to their copy
        f.seek(1 << 16)
        f.write(b"mine")
    r = cli("cache", "verify", "--store", str(store))
    assert r.returncode == 0 and "0 corrupt" in r.stdout + r.stderr, r.stdout + r.stderr
    assert json.loads(cli("--json", "cache", "verify", "--store", str(store)).stdout
                      .strip().splitlines()[-1])["corrupt"] == []
