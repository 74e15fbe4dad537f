"""Pure parts of the pipeline: stage keys, explain diffs, checksum files, sizes, redaction."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from imagepipe.errors import InputError
from imagepipe.fetch import checksums
from imagepipe.fetch.unpack import unpacked_name
from imagepipe.pipeline import explain
from imagepipe.pipeline.manifest import redact, sha256sums
from imagepipe.pipeline.plan import guest_needed
from imagepipe.recipe import model as m
from imagepipe.stages.base import Artifact, Stage, canonical_options
from imagepipe.store import parse_digest
from imagepipe.store.maintenance import parse_size
from imagepipe.store.place import sparse_copy


@dataclass(frozen=True)
class Opts:
    size: int = 1
    user_data: Path | None = None


class Demo(Stage):
    name = "demo"
    version = 1
    Options = Opts
    inputs = ("image",)


def art(digest: str) -> Artifact:
    return Artifact(path=Path("/x"), kind="image", digest=digest)


def test_key_changes_with_each_ingredient(tmp_path: Path) -> None:
    ud = tmp_path / "user-data"
    ud.write_text("#cloud-config\n")
    base = Demo(Opts(1, ud)).key({"image": art("sha256:aa")})
    assert base == Demo(Opts(1, ud)).key({"image": art("sha256:aa")})
    assert base != Demo(Opts(2, ud)).key({"image": art("sha256:aa")})
    assert base != Demo(Opts(1, ud)).key({"image": art("sha256:bb")})
    moved = tmp_path / "moved"
    moved.write_text("#cloud-config\n")
    assert base == Demo(Opts(1, moved)).key({"image": art("sha256:aa")})  # content, not path
    ud.write_text("#cloud-config\nruncmd: []\n")
    assert base != Demo(Opts(1, ud)).key({"image": art("sha256:aa")})

    class Demo2(Demo):
        version = 2

    assert base != Demo2(Opts(1, moved)).key({"image": art("sha256:aa")})


def test_key_needs_input_digests() -> None:
    with pytest.raises(ValueError, match="without digest"):
        Demo(Opts()).key({"image": Artifact(path=Path("/x"), kind="image")})


def test_canonical_options_rejects_unhashable() -> None:
    with pytest.raises(TypeError):
        canonical_options(object())


def test_explain_names_what_changed() -> None:
    prev = {"material": {"stage": "convert", "version": 1,
                         "options": {"preset": None, "compress": False},
                         "inputs": {"image": "sha256:" + "a" * 64},
                         "tools": {"qemu-img": "7.2"}}}
    now = {"stage": "convert", "version": 2, "options": {"preset": "vsphere", "compress": False},
           "inputs": {"image": "sha256:" + "b" * 64}, "tools": {"qemu-img": "8.0"}}
    text = explain.reason(prev, now)
    assert "options.preset changed: null -> vsphere" in text
    assert "input image changed: sha256:aaaaaaaaaaaa -> sha256:bbbbbbbbbbbb" in text
    assert "tool qemu-img changed: 7.2 -> 8.0" in text and "stage version" in text
    assert explain.reason(None, now) == "no previous build of this stage"
    assert "not in the store" in explain.reason({"material": now}, now)
    file_change = explain.diff({"o": {"f": {"file_sha256": "1"}}}, {"o": {"f": {"file_sha256":
                                                                              "2"}}})
    assert file_change == ["o.f file content changed"]


def test_checksum_files_gnu_bsd_and_signed() -> None:
    h1, h2 = "a" * 64, "b" * 128
    text = (f"-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n{h1}  one.qcow2\n"
            f"{h1.upper()} *two.img\nSHA512 (three.raw.xz) = {h2}\n"
            f"SHA256 (dir/four.iso) = {h1}\n-----BEGIN PGP SIGNATURE-----\nabc\n")
    found = checksums.parse(text)
    assert found["one.qcow2"] == f"sha256:{h1}" and found["two.img"] == f"sha256:{h1}"
    assert found["three.raw.xz"] == f"sha512:{h2}" and found["four.iso"] == f"sha256:{h1}"
    assert checksums.lookup(text, "https://x/y/one.qcow2?token=1", "SUMS") == f"sha256:{h1}"
    with pytest.raises(InputError, match="no checksum for 'five'"):
        checksums.lookup(text, "https://x/five", "SUMS")


def test_parse_digest_and_size() -> None:
    assert parse_digest("SHA256:" + "A" * 64) == ("sha256", "a" * 64)
    for bad in ("md5:abc", "sha256:xyz", "sha256:" + "a" * 63, "nothing"):
        with pytest.raises(InputError):
            parse_digest(bad)
    assert parse_size("20G") == 20 << 30 and parse_size("512MiB") == 512 << 20
    assert parse_size("1024") == 1024 and parse_size("1.5K") == 1536
    with pytest.raises(InputError):
        parse_size("lots")


def test_redact_and_sums() -> None:
    data = {"publish": {"ovirt": {"password": "hunter2", "username": "admin",
                                  "access_token": "t0k"}},
            "checks": [{"passed": True, "secret": "s"}]}
    out = redact(data)
    text = repr(out)
    assert "hunter2" not in text and "t0k" not in text and "'s'" not in text
    assert out["checks"][0]["passed"] is True and out["publish"]["ovirt"]["username"] == "admin"
    assert sha256sums({"outputs": [{"sha256": "ab", "path": "/t/x.qcow2"}]}) == "ab  x.qcow2\n"


def test_guest_stage_off_only_when_everything_is_off() -> None:
    src = m.Source(image=m.ImageSource(url="file:///x", checksum="sha256:" + "a" * 64))
    off = m.Recipe(name="n", description="d", path=Path("/r.yaml"), source=src,
                   seal=m.Seal(operations="none"))
    assert not guest_needed(off)
    assert guest_needed(m.Recipe(name="n", description="d", path=Path("/r.yaml"), source=src))
    assert guest_needed(m.Recipe(name="n", description="d", path=Path("/r.yaml"), source=src,
                                 seal=m.Seal(operations="none"),
                                 customize=m.Customize(run=("true",))))


def test_unpacked_names() -> None:
    assert unpacked_name("disk.raw.xz") == "disk.raw" and unpacked_name("a.qcow2.zst") == "a.qcow2"
    assert unpacked_name("blob") == "blob.unpacked"


def test_sparse_copy_keeps_holes(tmp_path: Path) -> None:
    src = tmp_path / "s"
    with open(src, "wb") as f:
        f.truncate(64 << 20)
        f.seek(10 << 20)
        f.write(os.urandom(1 << 20))
        f.seek((64 << 20) - 5)
        f.write(b"tail!")
    dst = tmp_path / "d"
    sparse_copy(src, dst)
    assert dst.read_bytes() == src.read_bytes()
    assert dst.stat().st_blocks * 512 <= 3 << 20


def test_stored_key_material_has_no_secrets(tmp_path: Path) -> None:
    material = {"options": {"customize": {"files": [{"dest": "/etc/x", "content": "pw=hunter2"}]},
                            "password": "hunter2", "url": "http://x"}}
    explain.save(tmp_path / "last.json", "r.yaml", {"guest": {"key": "k", "material": material}})
    text = (tmp_path / "last.json").read_text()
    assert "hunter2" not in text and "http://x" in text
    prev = explain.load_previous(tmp_path / "last.json")["guest"]
    material["options"]["customize"]["files"][0]["content"] = "pw=other"
    why = explain.reason(prev, material)
    assert "options.customize.files.0.content changed: sha256:" in why and "other" not in why
    assert "password" not in why  # unchanged secret: no diff line


def test_slow_converts_are_started_first() -> None:
    from imagepipe.stages.convert import ConvertOptions, ConvertStage

    fast = ConvertStage(ConvertOptions(format="vdi"))
    slow = ConvertStage(ConvertOptions(format="vmdk", preset="vsphere"))
    zstd = ConvertStage(ConvertOptions(format="qcow2", compress=True))
    assert slow.cost_hint() > fast.cost_hint() and zstd.cost_hint() > fast.cost_hint()


def test_boot_test_runs_beside_the_converts_and_before_publish() -> None:
    from imagepipe.pipeline.plan import make_plan

    src = m.Source(image=m.ImageSource(url="file:///x", checksum="sha256:" + "a" * 64))
    recipe = m.Recipe(name="n", description="d", path=Path("/r.yaml"), source=src,
                      seal=m.Seal(operations="none"),
                      outputs=(m.Output(format="qcow2"), m.Output(format="vmdk")),
                      test=m.Test(boot=m.BootTest(http=(m.HttpCheck(),))))
    levels = [[n.id for n in level] for level in make_plan(recipe)]
    both = next(level for level in levels if "test.boot" in level)
    assert set(both) == {"convert.qcow2", "convert.vmdk", "test.boot"}
    assert levels.index(both) < levels.index(["publish.local"])
    boot = next(n for level in make_plan(recipe) for n in level if n.id == "test.boot")
    assert boot.inputs == {"image": "base.image"}
    assert boot.stage.cost_hint() > max(n.stage.cost_hint() for level in make_plan(recipe)
                                        for n in level if n.id.startswith("convert"))
