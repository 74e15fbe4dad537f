"""The build engine on real qemu-img with a tiny qcow2 served over HTTP (guest stage off)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from imagepipe import stages
from imagepipe.errors import ImagepipeError
from imagepipe.hashing import file_digest
from imagepipe.pipeline import BuildOptions, build
from imagepipe.stages import StageNotAvailable
from imagepipe.store import Store
from tests.integration.pipeline_helpers import HttpServer, image_recipe, make_qcow2, sha256

pytestmark = pytest.mark.qemu

THREE = (("qcow2", None), ("vmdk", None), ("vdi", None))


@pytest.fixture(scope="module")
def source(http_root: Path) -> tuple[str, Path]:
    img = make_qcow2(http_root / "base.qcow2")
    return sha256(img), img


def _build(tmp: Path, server: HttpServer, source: tuple[str, Path], **kw: object):
    outputs = kw.pop("outputs", THREE)
    opts = BuildOptions(store=tmp / "store", **kw)  # type: ignore[arg-type]
    recipe = image_recipe(tmp, f"{server.url}/base.qcow2", source[0], outputs=outputs)
    return build(recipe, opts)


def test_first_build_then_everything_cached(tmp_path: Path, server: HttpServer,
                                            source: tuple[str, Path]) -> None:
    first = _build(tmp_path, server, source)
    assert first.rerun == ["fetch", "base.image", "convert.qcow2", "convert.vmdk",
                           "convert.vdi", "publish.local"]
    m = first.manifest
    published = tmp_path / "templates" / "t" / "latest"
    for out in m["outputs"]:
        path = Path(out["path"])
        assert path.parent.resolve() == published.resolve()
        assert file_digest(path) == out["sha256"]
        r = subprocess.run(["qemu-img", "compare", "-f", "qcow2", "-F", out["format"],
                            str(source[1]), str(path)], capture_output=True)
        assert r.returncode == 0, r.stdout
    sums = (published / "SHA256SUMS").read_text().splitlines()
    assert sorted(line.split()[1] for line in sums) == ["t.qcow2", "t.vdi", "t.vmdk"]
    assert m["sources"][0]["digest"] == source[0]
    assert m["recipe"]["name"] == "t" and "qemu-img" in m["tools"]
    assert json.loads((published / "manifest.json").read_text())["outputs"][0]["sha256"]
    log = (first.build_dir / "logs" / "convert.vmdk.log").read_text()
    assert "run: qemu-img convert" in log and "-O vmdk" in log and "-O vdi" not in log

    server.control("reset")
    second = _build(tmp_path, server, source)
    assert second.rerun == ["publish.local"]
    assert second.manifest["publish"]["local"]["unchanged"] is True
    assert server.log() == []  # digest known: no network at all
    assert [o["sha256"] for o in second.manifest["outputs"]] == [o["sha256"] for o in
                                                                  m["outputs"]]


def test_one_output_changed_reruns_only_its_convert(tmp_path: Path, server: HttpServer,
                                                    source: tuple[str, Path],
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    _build(tmp_path, server, source)
    changed = (("qcow2", None), ("vmdk", "workstation"), ("vdi", None))
    report = _build(tmp_path, server, source, outputs=changed, explain=True)
    assert report.rerun == ["convert.vmdk", "publish.local"]
    err = capsys.readouterr().err
    assert "convert.vmdk" in err and "options.preset changed: null -> workstation" in err
    assert "convert.qcow2" in err and err.count("cached") >= 4
    versions = [d for d in (tmp_path / "templates" / "t").iterdir() if not d.is_symlink()]
    assert len(versions) == 2


def test_url_change_same_digest_is_cached(tmp_path: Path, server: HttpServer,
                                          source: tuple[str, Path]) -> None:
    _build(tmp_path, server, source)
    server.control("reset")
    recipe = image_recipe(tmp_path, "http://127.0.0.1:9/moved/base.qcow2", source[0],
                          outputs=THREE)
    report = build(recipe, BuildOptions(store=tmp_path / "store"))
    assert report.rerun == ["publish.local"] and server.log() == []


def test_force_and_from(tmp_path: Path, server: HttpServer, source: tuple[str, Path]) -> None:
    _build(tmp_path, server, source)
    assert _build(tmp_path, server, source, force=("convert.vdi",)).rerun == [
        "convert.vdi", "publish.local"]
    assert _build(tmp_path, server, source, from_stage="convert").rerun == [
        "convert.qcow2", "convert.vmdk", "convert.vdi", "publish.local"]
    with pytest.raises(ImagepipeError, match="no stage 'nope'"):
        _build(tmp_path, server, source, force=("nope",))


def test_dry_run_touches_nothing(tmp_path: Path, server: HttpServer, source: tuple[str, Path],
                                 capsys: pytest.CaptureFixture[str]) -> None:
    _build(tmp_path, server, source)
    store = tmp_path / "store"

    def snapshot() -> dict[str, float]:
        return {str(p): p.stat().st_mtime for p in store.rglob("*")}

    before = snapshot()
    capsys.readouterr()
    report = _build(tmp_path, server, source, outputs=(("qcow2", None), ("vhdx", None)),
                    dry_run=True)
    err = capsys.readouterr().err
    assert "convert.qcow2" in err and "cached" in err
    assert "convert.vhdx" in err and "rerun because no previous build" in err
    assert snapshot() == before and report.records and all(r.cached for r in report.records)
    fresh = tmp_path / "nostore"
    build(image_recipe(tmp_path, f"{server.url}/base.qcow2", source[0]),
          BuildOptions(store=fresh, dry_run=True))
    assert not fresh.exists()


def test_missing_stage_module_fails_the_plan(tmp_path: Path, server: HttpServer,
                                             source: tuple[str, Path],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from imagepipe.recipe.model import CloudInit

    monkeypatch.setitem(stages.STAGES, "guest", "imagepipe.stages.no_such_module:GuestStage")
    recipe = image_recipe(tmp_path, f"{server.url}/base.qcow2", source[0],
                          cloud_init=CloudInit(user_data=None))
    with pytest.raises(StageNotAvailable, match="stage 'guest' is not available"):
        build(recipe, BuildOptions(store=tmp_path / "store"))
    assert server.log() == []  # failed before any work


@pytest.mark.parametrize("keep", [False, True])
def test_failed_stage_leaves_nothing_or_keeps_evidence(
        keep: bool, tmp_path: Path, server: HttpServer, source: tuple[str, Path],
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(stages.STAGES, "convert",
                        "tests.integration.pipeline_stages:FailingConvert")
    with pytest.raises(ImagepipeError, match="on purpose"):
        _build(tmp_path, server, source, keep_on_failure=keep)
    store = Store(tmp_path / "store")
    assert not list((store.root / "tmp").iterdir())
    build_dir = next((store.root / "builds" / "t").glob("2*"))
    assert (build_dir / "cleanup-ran").read_text() == "yes"
    log = (build_dir / "logs" / "convert.qcow2.log").read_text()
    assert "about to fail" in log and "on purpose" in log
    manifest = json.loads((build_dir / "manifest.json").read_text())
    assert manifest["result"] == "failed" and "on purpose" in manifest["error"]
    kept = list(build_dir.glob("failed-*"))
    if keep:
        assert kept and (kept[0] / "half.img").exists()
        assert str(kept[0]) in capsys.readouterr().err
    else:
        assert not kept
    assert not (tmp_path / "templates" / "t").exists()  # publish did not run


def test_resize_compressed_source_and_insecure_warning(tmp_path: Path, server: HttpServer,
                                                       http_root: Path) -> None:
    import lzma

    from imagepipe.recipe import model as m

    raw = http_root / "disk.raw"
    raw.write_bytes(b"\x00" * (1 << 20) + b"data" * 1024 + b"\x00" * (3 << 20))
    packed = http_root / "disk.raw.xz"
    packed.write_bytes(lzma.compress(raw.read_bytes()))
    recipe = m.Recipe(
        name="xz", description="d", path=tmp_path / "xz.yaml",
        source=m.Source(image=m.ImageSource(url=f"{server.url}/disk.raw.xz",
                                            insecure_no_checksum=True)),
        disk=m.Disk(size=8 << 20), seal=m.Seal(operations="none"),
        outputs=(m.Output(format="qcow2"),),
        publish=m.Publish(local=m.LocalPublish(dir=tmp_path / "templates")))
    report = build(recipe, BuildOptions(store=tmp_path / "store"))
    man = report.manifest
    assert man["outputs"][0]["virtual_size"] == 8 << 20
    assert man["sources"][0]["decompressed"]["codec"] == "xz"
    assert any("without checksum" in w for w in man["warnings"])
    out = Path(man["outputs"][0]["path"])
    r = subprocess.run(["qemu-img", "dd", "-f", "qcow2", "-O", "raw", f"if={out}",
                        f"of={tmp_path / 'back.raw'}", "bs=1M", "count=5"], capture_output=True)
    assert r.returncode == 0, r.stderr
    back = (tmp_path / "back.raw").read_bytes()
    assert back[: raw.stat().st_size] == raw.read_bytes() and not back[raw.stat().st_size:].strip(
        b"\0")
    small = m.Disk(size=1 << 20)
    import dataclasses

    with pytest.raises(ImagepipeError, match="smaller than the source image"):
        build(dataclasses.replace(recipe, disk=small), BuildOptions(store=tmp_path / "store"))


def test_keep_removes_older_versions_after_success(tmp_path: Path, server: HttpServer,
                                                   source: tuple[str, Path]) -> None:
    import dataclasses

    from imagepipe.recipe import model as m

    url = f"{server.url}/base.qcow2"
    for i, outputs in enumerate(((("qcow2", None),), (("vdi", None),), (("vmdk", None),))):
        r = image_recipe(tmp_path, url, source[0], outputs=outputs, keep=2)
        r = dataclasses.replace(r, image_version=f"1.{i}")
        report = build(r, BuildOptions(store=tmp_path / "store"))
        assert report.manifest["publish"]["local"]["version"] == f"1.{i}"
    base = tmp_path / "templates" / "t"
    assert sorted(d.name for d in base.iterdir()) == ["1.1", "1.2", "latest"]
    assert (base / "latest").resolve().name == "1.2"
    assert report.manifest["publish"]["local"]["removed"] == ["1.0"]
    assert (base / "1.2" / "t.vmdk").is_file() and m.LocalPublish().dir == Path("templates")


def test_dry_run_of_a_checksum_url_recipe_peeks_at_the_store(
        tmp_path: Path, server: HttpServer, source: tuple[str, Path], http_root: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    import dataclasses

    from imagepipe.recipe import model as m

    (http_root / "SHA256SUMS").write_text(f"{source[0].split(':')[1]}  base.qcow2\n")
    recipe = image_recipe(tmp_path, f"{server.url}/base.qcow2", source[0])
    recipe = dataclasses.replace(recipe, source=m.Source(image=m.ImageSource(
        url=f"{server.url}/base.qcow2", checksum_url=f"{server.url}/SHA256SUMS")))
    first = build(recipe, BuildOptions(store=tmp_path / "store"))
    assert "fetch" in first.rerun
    again = build(recipe, BuildOptions(store=tmp_path / "store"))
    assert again.rerun == ["fetch", "publish.local"]  # fetch re-reads SHA256SUMS only
    assert [e["path"] for e in server.log()].count("/base.qcow2") == 1
    capsys.readouterr()
    build(recipe, BuildOptions(store=tmp_path / "store", dry_run=True))
    err = capsys.readouterr().err
    assert "its result is stored (same digest)" in err and "convert.qcow2" in err
    assert err.count("cached") == 2  # base.image and convert.qcow2
