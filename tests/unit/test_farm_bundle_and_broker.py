"""Farm pieces that need no broker: bundles (what goes in, what unpack refuses), broker URLs
(no password from argv, mode-checked files, redaction) and the Celery settings."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

import pytest

from imagepipe.errors import InputError
from imagepipe.farm import broker, bundle

RECIPE = """\
version: 1
extends: ../base/small.yaml
name: web
description: a farm unit test
customize:
  files:
    - {dest: /etc/motd, src: files/motd}
cloud_init:
  user_data: files/user-data.yaml
"""

BASE = """\
version: 1
description: base
source:
  image: {url: "http://127.0.0.1:9/x.qcow2", checksum: "sha256:%s"}
seal: {operations: none}
""" % ("0" * 64)


@pytest.fixture
def recipe_dir(tmp_path: Path) -> Path:
    (tmp_path / "base").mkdir()
    (tmp_path / "base/small.yaml").write_text(BASE)
    d = tmp_path / "site"
    (d / "files").mkdir(parents=True)
    (d / "files/motd").write_text("hello\n")
    (d / "files/user-data.yaml").write_text("#cloud-config\nruncmd: [[touch, /tmp/ok]]\n")
    (d / "web.yaml").write_text(RECIPE)
    return d


def test_bundle_holds_recipe_base_and_files_and_unpacks_to_same_digest(recipe_dir: Path,
                                                                        tmp_path: Path) -> None:
    from imagepipe.recipe.load import load_recipe, recipe_digest

    b = bundle.make_bundle(recipe_dir / "web.yaml")
    assert b["recipe"] == "site/web.yaml"
    assert set(b["files"]) == {"site/web.yaml", "base/small.yaml", "site/files/motd",
                               "site/files/user-data.yaml"}
    motd = b["files"]["site/files/motd"]
    assert motd["sha256"] == hashlib.sha256(b"hello\n").hexdigest()
    out = bundle.unpack(b, tmp_path / "work")
    assert out == tmp_path / "work/site/web.yaml"
    assert recipe_digest(load_recipe(out)) == b["recipe_sha256"]


def test_bundle_over_16_mib_is_a_clear_input_error(recipe_dir: Path) -> None:
    with open(recipe_dir / "files/motd", "wb") as f:
        f.truncate(bundle.MAX_BUNDLE + 1)
    with pytest.raises(InputError, match="exceed 16 MiB.*motd") as err:
        bundle.make_bundle(recipe_dir / "web.yaml")
    assert "URL" in str(err.value)


def _evil(rel: str, data: bytes = b"x", **extra: object) -> dict[str, object]:
    entry = {"sha256": hashlib.sha256(data).hexdigest(), "data": base64.b64encode(data).decode(),
             **extra}
    b: dict[str, object] = {"format": 1, "recipe": "r.yaml",
                            "files": {"r.yaml": {**entry}, rel: entry}}
    b["digest"] = bundle.bundle_digest(b)  # type: ignore[arg-type]
    return b


@pytest.mark.parametrize("rel", ["/etc/cron.d/x", "../x", "a/../../x", "a//b", "./a", "a\\..\\b"])
def test_unpack_refuses_paths_leaving_the_work_dir(rel: str, tmp_path: Path) -> None:
    with pytest.raises(bundle.BundleError):
        bundle.unpack(_evil(rel), tmp_path / "work")
    assert not (tmp_path / "x").exists()
    assert not Path("/etc/cron.d/x").exists()


def test_unpack_refuses_symlinks_bad_hashes_and_tampered_listing(tmp_path: Path) -> None:
    with pytest.raises(bundle.BundleError, match="symlinks"):
        bundle.unpack(_evil("link", type="symlink"), tmp_path / "w1")
    b = _evil("f")
    b["files"]["f"]["data"] = base64.b64encode(b"y").decode()  # type: ignore[index]
    with pytest.raises(bundle.BundleError, match="sha256 mismatch"):
        bundle.unpack(b, tmp_path / "w2")
    b = _evil("f")
    b["files"]["g"] = b["files"]["f"]  # type: ignore[index]
    with pytest.raises(bundle.BundleError, match="digest"):
        bundle.unpack(b, tmp_path / "w3")


def test_unpack_never_follows_a_symlink_already_in_the_way(tmp_path: Path) -> None:
    """A pre-existing symlink inside the work dir (never there in practice: the dir is fresh)
    is not followed: O_NOFOLLOW on every path part."""
    work = tmp_path / "work"
    outside = tmp_path / "outside"
    outside.mkdir()
    work.mkdir()
    os.symlink(outside, work / "sub")
    with pytest.raises(OSError):
        bundle._write(work, bundle.check_path("sub/f"), b"x", 0o644)
    assert not (outside / "f").exists()


def test_broker_password_never_from_argv_and_files_mode_checked(tmp_path: Path) -> None:
    assert broker.resolve("redis://127.0.0.1:6379/0", True, None) == "redis://127.0.0.1:6379/0"
    with pytest.raises(InputError, match="carries a password"):
        broker.resolve("redis://:s3cret@127.0.0.1:6379/0", True, None)
    assert broker.resolve("redis://:s3cret@h:1/0", False, None) == "redis://:s3cret@h:1/0"
    f = tmp_path / "broker"
    f.write_text("redis://u:s3cret@h:1/0\n")
    f.chmod(0o644)
    with pytest.raises(InputError, match="readable by others.*0644"):
        broker.resolve(None, False, f)
    f.chmod(0o600)
    assert broker.resolve(None, False, f) == "redis://u:s3cret@h:1/0"
    with pytest.raises(InputError, match="only Redis"):
        broker.resolve("amqp://h//", True, None)
    assert broker.redact("redis://u:s3cret@h:1/0") == "redis://u:***@h:1/0"
    assert "s3cret" not in broker.redact("rediss://:s3cret@h/0")


def test_celery_app_is_json_only_with_late_acks() -> None:
    app = broker.make_app("redis://127.0.0.1:9/0")
    assert app.conf.task_serializer == "json"
    assert app.conf.result_serializer == "json"
    assert list(app.conf.accept_content) == ["json"]
    assert app.conf.task_acks_late and app.conf.task_reject_on_worker_lost
    assert app.conf.worker_prefetch_multiplier == 1


def test_cli_refuses_password_on_argv_before_anything(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    res = cli("build", "--all", str(tmp_path), "--broker", "redis://:hunter2@127.0.0.1:9/0")
    assert res.returncode == 2
    assert "IMAGEPIPE_BROKER" in res.stderr and "hunter2" not in res.stderr
