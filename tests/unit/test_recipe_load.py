"""The loader's behaviour on good recipes: extends merging, variables, paths, sizes, digest."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from imagepipe.errors import RecipeError
from imagepipe.recipe import model as m
from imagepipe.recipe.load import load_recipe, recipe_digest
from imagepipe.recipe.validate import parse_size
from tests.conftest import REPO

HEX = "ab" * 32


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_httpd_recipe_builds_the_model() -> None:
    r = load_recipe(REPO / "recipes" / "httpd.yaml", variables={"date": "20250102"})
    assert r.name == "httpd" and r.description and r.comment
    assert r.image_version == "20250102"
    assert r.source.kind == "bootstrap" and r.source.bootstrap is not None
    assert r.source.bootstrap.suite == "bookworm"
    assert {"apache2", "cloud-init", "openssh-server"} <= set(r.source.bootstrap.packages)
    assert r.source.bootstrap.kernel == "generic"  # linux-image-amd64, chosen by kernel:
    assert r.source.bootstrap.mirror is None  # the host's mirror: works offline
    assert 3 * 1024**3 <= (r.disk.size or 0) <= 4 * 1024**3
    assert [(o.format, o.preset) for o in r.outputs] == [
        ("qcow2", "kvm"), ("vmdk", "vsphere"), ("vhd", "azure"), ("vhdx", "hyperv"),
        ("vdi", "virtualbox")]
    assert r.cloud_init is not None and r.cloud_init.user_data == (
        REPO / "recipes" / "httpd" / "user-data.yaml")
    assert r.seal == m.Seal()  # defaults: no password, no static IP
    assert r.test.boot is not None
    assert r.test.boot.http[0] == m.HttpCheck(port=80, path="/", status=200,
                                              contains="imagepipe httpd")
    assert r.publish.local is not None and r.publish.local.dir == Path("templates")
    assert r.path == REPO / "recipes" / "httpd.yaml"
    assert "extends" not in r.data and r.data["image_version"] == "20250102"


def test_httpd_user_data_opens_the_firewall_only_if_present_and_names_the_host() -> None:
    import yaml

    text = (REPO / "recipes" / "httpd" / "user-data.yaml").read_text()
    assert text.startswith("#cloud-config\n")
    commands = [" ".join(c) for c in yaml.safe_load(text)["runcmd"]]
    assert any("$(hostname)" in c and "/var/www/html/index.html" in c for c in commands)
    assert any("command -v firewall-offline-cmd" in c for c in commands)
    assert "systemctl start apache2" in commands and "systemctl enable apache2" in commands
    assert not any("yum" in c for c in commands)  # Debian: apache2 is in the image already


def test_extends_deep_merges_mappings_and_replaces_lists(tmp_path: Path) -> None:
    write(tmp_path / "base" / "root.yaml", f"""
description: root
source: {{image: {{url: "http://h/x.qcow2", checksum: "sha256:{HEX}"}}}}
disk: {{size: 2G}}
outputs: [{{format: qcow2}}, {{format: vdi}}]
test: {{boot: {{timeout: 100, cpus: 1}}}}
""")
    write(tmp_path / "base" / "mid.yaml", "extends: root.yaml\ncomment: mid\n"
          "test: {boot: {timeout: 200}}\n")
    top = write(tmp_path / "top.yaml", "extends: base/mid.yaml\nname: top\n"
                "outputs: [{preset: vsphere}]\ndisk: {size: 512M}\n")
    r = load_recipe(top)
    assert r.description == "root" and r.comment == "mid" and r.name == "top"
    assert r.disk.size == 512 * 1024**2
    assert r.outputs == (m.Output(format="vmdk", preset="vsphere"),)  # list replaced
    assert r.test.boot == m.BootTest(timeout=200, cpus=1)  # mapping merged across the chain


def test_paths_resolve_against_the_file_that_wrote_them(tmp_path: Path) -> None:
    write(tmp_path / "base" / "ud.yaml", "#cloud-config\nruncmd:\n  - [echo, hi]\n")
    write(tmp_path / "base" / "b.yaml", "description: b\nsource: {bootstrap: {}}\n"
          "cloud_init: {user_data: ud.yaml}\n")
    write(tmp_path / "files" / "motd", "hello\n")
    top = write(tmp_path / "t.yaml", "extends: base/b.yaml\ncustomize:\n  files:\n"
                "    - {src: files/motd, dest: /etc/motd, mode: '0644'}\n"
                "publish: {local: {dir: out}}\n")
    r = load_recipe(top)
    assert r.cloud_init is not None and r.cloud_init.user_data == tmp_path / "base" / "ud.yaml"
    assert r.customize.files[0].src == tmp_path / "files" / "motd"
    assert r.publish.local is not None and r.publish.local.dir == tmp_path / "out"


def test_allow_absolute_paths(tmp_path: Path) -> None:
    outside = write(tmp_path / "elsewhere" / "f.txt", "x")
    top = write(tmp_path / "r" / "r.yaml", "description: d\nsource: {bootstrap: {}}\n"
                f"customize:\n  allow_absolute_paths: true\n  files:\n"
                f"    - {{src: {outside}, dest: /f}}\n"
                "    - {src: ../elsewhere/f.txt, dest: /g}\n")
    r = load_recipe(top)
    assert [f.src for f in r.customize.files] == [outside, outside]


def test_variables_date_env_version_escape(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGEPIPE_TEST_SITE", "lab")
    top = write(tmp_path / "v.yaml", """
description: "built ${date} for ${env:IMAGEPIPE_TEST_SITE}"
image_version: "2.${date}"
comment: "v${version}, literal $${date}"
source: {bootstrap: {}}
publish: {ovirt: {storage_domain: data, template_name: "httpd-${version}"}}
""")
    r = load_recipe(top)
    today = time.strftime("%Y%m%d", time.gmtime())
    assert r.description == f"built {today} for lab"
    assert r.image_version == f"2.{today}"
    assert r.comment == f"v2.{today}, literal ${{date}}"
    assert r.publish.ovirt is not None and r.publish.ovirt.template_name == f"httpd-2.{today}"
    r2 = load_recipe(top, variables={"date": "20000101"})
    assert r2.image_version == "2.20000101"


def test_variable_errors(tmp_path: Path) -> None:
    top = write(tmp_path / "v.yaml", 'description: "${nope} ${date"\n'
                'image_version: "${version}"\nsource: {bootstrap: {}}\n')
    msgs = [str(p) for p in pytest.raises(RecipeError, load_recipe, top).value.problems]
    assert any(":1:14: description: unknown variable ${nope}" in x for x in msgs), msgs
    assert any("unterminated ${date" in x for x in msgs), msgs
    assert any(":2:16: image_version: image_version cannot use ${version}" in x for x in msgs)


@pytest.mark.parametrize("text,expected", [
    ("8G", 8 * 1024**3), ("512M", 512 * 1024**2), ("1.5G", 3 * 1024**3 // 2), ("4096", 4096),
    ("2GiB", 2 * 1024**3), ("10k", 10 * 1024), ("3 G", 3 * 1024**3), ("1T", 1024**4),
    ("8Q", None), ("-1G", None), ("G", None), ("", None),
])
def test_parse_size(text: str, expected: int | None) -> None:
    assert parse_size(text) == expected


def test_output_format_comes_from_its_preset(tmp_path: Path) -> None:
    top = write(tmp_path / "o.yaml", "description: d\nsource: {bootstrap: {}}\noutputs:\n"
                "  - {preset: azure}\n  - {format: qcow2, options: {cluster_size: 65536, "
                "lazy_refcounts: on}, name: small}\n")
    r = load_recipe(top)
    assert r.outputs[0] == m.Output(format="vhd", preset="azure")
    assert r.outputs[1].options == (("cluster_size", "65536"), ("lazy_refcounts", "on"))


def test_name_defaults_to_the_file_name_and_nulls(tmp_path: Path) -> None:
    top = write(tmp_path / "web-01.yaml", "description: d\nsource: {bootstrap: {}}\n"
                "publish: {local: null}\ncloud_init: null\n")
    r = load_recipe(top)
    assert r.name == "web-01" and r.publish.local is None and r.cloud_init is None


def test_digest_covers_merged_recipe_and_referenced_files(tmp_path: Path) -> None:
    ud = write(tmp_path / "ud.yaml", "#cloud-config\nruncmd:\n  - [echo, hi]\n")
    base = write(tmp_path / "base.yaml", "source: {bootstrap: {}}\ndisk: {size: 2G}\n")
    top = write(tmp_path / "t.yaml", "extends: base.yaml\ndescription: d\n"
                "cloud_init: {user_data: ud.yaml}\n")
    d1 = recipe_digest(load_recipe(top))
    assert d1 == recipe_digest(load_recipe(top)) and len(d1) == 64
    ud.write_text("#cloud-config\nruncmd:\n  - [echo, bye]\n")
    d2 = recipe_digest(load_recipe(top))
    assert d2 != d1
    base.write_text("source: {bootstrap: {}}\ndisk: {size: 3G}\n")
    assert recipe_digest(load_recipe(top)) not in (d1, d2)
    # comments and formatting do not change it: only meaning does
    base.write_text("# a comment\nsource:\n  bootstrap: {}\ndisk:\n  size: 3G\n")
    d3 = recipe_digest(load_recipe(top))
    base.write_text("source: {bootstrap: {}}\ndisk: {size: 3G}  # again\n")
    assert recipe_digest(load_recipe(top)) == d3


def _walk(value: object, path: str = "recipe") -> None:
    """The model holds tuples, Paths and dataclasses only: never YAML's lists or dicts."""
    import dataclasses

    assert not isinstance(value, list | dict), f"{path} is a {type(value).__name__}"
    if dataclasses.is_dataclass(value):
        for f in dataclasses.fields(value):
            if f.name != "data":
                _walk(getattr(value, f.name), f"{path}.{f.name}")
    elif isinstance(value, tuple):
        for i, v in enumerate(value):
            _walk(v, f"{path}[{i}]")
    elif isinstance(value, Path):
        assert value.is_absolute() or path.endswith("local.dir"), path


@pytest.mark.parametrize("name", ["httpd.yaml", "rocky9-httpd.yaml", "centos7-httpd-iso.yaml"])
def test_shipped_recipes_load_into_frozen_model(name: str) -> None:
    r = load_recipe(REPO / "recipes" / name)
    _walk(r)
    assert hash(r.outputs) and hash(r.source)  # frozen and hashable


def test_symlink_out_of_the_recipe_dir_is_an_escape(tmp_path: Path) -> None:
    secret = write(tmp_path / "secret.txt", "x")
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "link.txt").symlink_to(secret)
    top = write(tmp_path / "r" / "r.yaml", "description: d\nsource: {bootstrap: {}}\n"
                "customize:\n  files: [{src: link.txt, dest: /x}]\n")
    (p,) = pytest.raises(RecipeError, load_recipe, top).value.problems
    assert p.path == "customize.files[0].src" and "escapes the recipe directory" in p.message


def test_meta_data_and_network_config_are_checked(tmp_path: Path) -> None:
    write(tmp_path / "md", "instance-id: x\nlocal-hostname: [a\n")
    write(tmp_path / "nc", "- just a list\n")
    top = write(tmp_path / "r.yaml", "description: d\nsource: {bootstrap: {}}\n"
                "cloud_init: {meta_data: md, network_config: nc}\n")
    problems = pytest.raises(RecipeError, load_recipe, top).value.problems
    by_file = {Path(p.file).name: p for p in problems}
    assert by_file["md"].line is not None and "YAML syntax error" in by_file["md"].message
    assert "network-config must be a YAML mapping" in by_file["nc"].message
    write(tmp_path / "md", "instance-id: x\n")
    write(tmp_path / "nc", "version: 2\nethernets: {}\n")
    assert load_recipe(top).cloud_init is not None
