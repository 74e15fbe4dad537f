"""Per-VM data: the oVirt-style config drive, the datasource order baked into images, the boot
test's datasource arguments and `test.boot.datasource`."""

from __future__ import annotations

import email
import io
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from imagepipe.boot.media import check_args, make_media, make_per_vm_user_data, seen_datasource
from imagepipe.cloudinit import seed
from imagepipe.cloudinit.configdrive import Nic, eni, ovirt_payload, write_config_drive
from imagepipe.errors import InputError
from imagepipe.recipe import model as m
from tests.conftest import run_cli


def _iso_files(path: Path) -> tuple[str, dict[str, bytes], list[str]]:
    """(volume label, Rock Ridge path -> bytes, Joliet paths), read back with pycdlib."""
    import pycdlib

    iso = pycdlib.PyCdlib()
    iso.open(str(path))
    try:
        label = iso.pvd.volume_identifier.decode().strip()
        files: dict[str, bytes] = {}
        for root, _dirs, names in iso.walk(rr_path="/"):
            for name in names:
                buf = io.BytesIO()
                iso.get_file_from_iso_fp(buf, rr_path=f"{root.rstrip('/')}/{name}")
                files[f"{root.rstrip('/')}/{name}".lstrip("/")] = buf.getvalue()
        joliet = [f"{r.rstrip('/')}/{n}" for r, _d, ns in iso.walk(joliet_path="/") for n in ns]
        return label, files, sorted(joliet)
    finally:
        iso.close()


def test_config_drive_layout_as_ovirt_writes_it(tmp_path: Path) -> None:
    ud = b"#cloud-config\nruncmd:\n  - [true]\n"
    out = tmp_path / "cd.iso"
    write_config_drive(out, ovirt_payload("6c1d-uuid", "tplvm-3", ud))
    label, files, joliet = _iso_files(out)
    assert label == "config-2"
    assert sorted(files) == ["openstack/content/0000", "openstack/latest/meta_data.json",
                             "openstack/latest/user_data"]
    assert joliet == ["/openstack/content/0000", "/openstack/latest/meta_data.json",
                      "/openstack/latest/user_data"]
    meta = json.loads(files["openstack/latest/meta_data.json"])
    assert meta["uuid"] == "6c1d-uuid" and meta["hostname"] == meta["name"] == "tplvm-3"
    assert meta["launch_index"] == 0 and meta["availability_zone"] == "nova"
    assert meta["meta"]["dsmode"] == "local"
    assert meta["network_config"]["content_path"] == "/content/0000"
    assert files["openstack/latest/user_data"] == ud
    assert files["openstack/content/0000"] == b"auto eth0\niface eth0 inet dhcp\n"
    assert not list(tmp_path.glob(".*tmp"))  # written atomically, no leftovers


def test_eni_static_and_manual() -> None:
    text = eni([Nic("eth0", "static", address="192.0.2.9", netmask="255.255.255.0"),
                Nic("eth1", "none", on_boot=False)])
    assert "iface eth0 inet static\n  address 192.0.2.9\n  netmask 255.255.255.0" in text
    assert "auto eth1" not in text and "iface eth1 inet manual" in text


def test_datasource_list_puts_nocloud_last_on_one_line() -> None:
    cfg = seed.DATASOURCE_CFG
    line = next(ln for ln in cfg.splitlines() if ln.startswith("datasource_list:"))
    ds = yaml.safe_load(line)["datasource_list"]
    assert ds[-2:] == ["NoCloud", "None"] and ds.count("NoCloud") == 1
    for platform in ("ConfigDrive", "OpenStack", "Azure", "OVF", "VMware", "Ec2", "GCE"):
        assert ds.index(platform) < ds.index("NoCloud"), platform
    assert yaml.safe_load(cfg) == {"datasource_list": ds}


class FakeSession:
    def __init__(self, files: dict[str, str]) -> None:
        self.files = files

    def is_file(self, path: str) -> bool:
        return path in self.files

    def read_text(self, path: str) -> str:
        return self.files[path]


def test_image_datasources_read_from_its_ds_identify() -> None:
    text = 'X=1\nDI_DSLIST_DEFAULT="NoCloud ConfigDrive \\\nAzure Foo"\nDI_DSLIST=""\n'
    got = seed.image_datasources(FakeSession({seed.DS_IDENTIFY: text}))  # type: ignore[arg-type]
    assert got == ["NoCloud", "ConfigDrive", "Azure", "Foo"]
    assert seed.platform_first(got) == ["ConfigDrive", "Azure", "Foo", "NoCloud", "None"]
    assert seed.image_datasources(FakeSession({})) == seed.DEFAULT_DATASOURCES  # type: ignore


def test_per_vm_user_data_and_media(tmp_path: Path) -> None:
    ud = make_per_vm_user_data(b"#cloud-config\nruncmd: [[true]]\n", "n0nce", "TAG", "#!/bin/sh\n")
    parts = [p for p in email.message_from_bytes(ud).walk() if not p.is_multipart()]
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/x-shellscript",
                                                     "text/x-shellscript"]
    script = parts[1].get_payload(decode=True).decode()
    assert "n0nce > /var/lib/imagepipe-boot-test/marker" in script
    cd = make_media("configdrive", tmp_path, "abcdef123456", ud, "tplvm-1")
    assert cd.hostname == "tplvm-1" and cd.drives[0].media == "cdrom"
    _, files, _ = _iso_files(cd.drives[0].path)
    assert json.loads(files["openstack/latest/meta_data.json"])["uuid"] == cd.instance_id
    assert files["openstack/latest/user_data"] == ud
    nc = make_media("nocloud", tmp_path, "abcdef123456", ud, None)
    assert nc.hostname == "boottest-abcdef"
    label, files, _ = _iso_files(nc.drives[0].path)
    assert label == "cidata" and yaml.safe_load(files["meta-data"])["local-hostname"] == nc.hostname
    none = make_media("none", tmp_path, "abcdef123456", ud, None)
    assert none.drives == [] and none.hostname is None


def test_seen_datasource() -> None:
    line = ("Cloud-init v. 22.4.2 finished at Wed, 02 Dec 2026 00:01:02 +0000. Datasource "
            "DataSourceConfigDrive [net,ver=2][source=/dev/sr0].  Up 61.20 seconds\n")
    want = "DataSourceConfigDrive [net,ver=2][source=/dev/sr0]"
    assert seen_datasource("boot...\n" + line) == want
    assert seen_datasource("no line yet") is None


@pytest.mark.parametrize("ds,host", [("floppy", None), ("none", "web1"), ("nocloud", "bad_name")])
def test_bad_datasource_arguments(ds: str, host: str | None) -> None:
    with pytest.raises(InputError):
        check_args(ds, host)


def test_boot_test_cli_refuses_hostname_without_data(tmp_path: Path) -> None:
    img = tmp_path / "x.qcow2"
    img.write_bytes(b"")
    r = run_cli("boot-test", str(img), "--datasource", "none", "--hostname", "web1")
    assert r.returncode == 2 and "--hostname needs a datasource" in r.stderr
    r = run_cli("boot-test", str(img), "--datasource", "cd")
    assert r.returncode == 2


def _recipe(boot: m.BootTest, ovirt: bool = False) -> m.Recipe:
    src = m.Source(image=m.ImageSource(url="file:///x", checksum="sha256:" + "a" * 64))
    pub = m.Publish(ovirt=m.OvirtPublish(storage_domain="data") if ovirt else None)
    return m.Recipe(name="n", description="d", path=Path("/r.yaml"), source=src,
                    seal=m.Seal(operations="none"), outputs=(m.Output(format="qcow2"),),
                    test=m.Test(boot=boot), publish=pub)


def _boots(recipe: m.Recipe) -> dict[str, Any]:
    from imagepipe.pipeline.plan import make_plan

    return {n.id: n.stage.options.datasource for level in make_plan(recipe) for n in level
            if n.stage.name == "test.boot"}


def test_plan_one_boot_per_datasource_default_follows_publish() -> None:
    assert _boots(_recipe(m.BootTest())) == {"test.boot": "nocloud"}
    assert _boots(_recipe(m.BootTest(), ovirt=True)) == {"test.boot": "configdrive"}
    both = _boots(_recipe(m.BootTest(datasource=("configdrive", "none"))))
    assert both == {"test.boot.configdrive": "configdrive", "test.boot.none": "none"}


def test_recipe_datasource_value_or_list(tmp_path: Path) -> None:
    from imagepipe.recipe.load import load_recipe

    base = ("version: 1\nname: t\ndescription: d\nsource:\n  image: {url: 'http://127.0.0.1:1/"
            "x.qcow2', checksum: 'sha256:%s'}\ntest:\n  boot:\n    datasource: " % ("ab" * 32))
    for value, want in (("configdrive", ("configdrive",)), ("[nocloud, none]",
                                                            ("nocloud", "none"))):
        (tmp_path / "r.yaml").write_text(base + value + "\n")
        assert load_recipe(tmp_path / "r.yaml").test.boot.datasource == want
    (tmp_path / "r.yaml").write_text(base + "[nocloud, floppy]\n")
    r = run_cli("validate", "r.yaml", cwd=tmp_path)
    assert r.returncode == 2 and "r.yaml:8:27: test.boot.datasource[1]" in r.stderr, r.stderr


def test_ovirt_publish_warns_without_guest_agent(capsys: pytest.CaptureFixture[str]) -> None:
    from imagepipe.stages.base import Artifact
    from imagepipe.stages.publish_ovirt import _guest_agent_warning

    assert _guest_agent_warning(Artifact(path=Path("/x"), metadata={"guest_agent": None})) is None
    assert "no qemu guest agent" in capsys.readouterr().err
    agent = _guest_agent_warning(Artifact(path=Path("/x"),
                                          metadata={"guest_agent": "/usr/sbin/qemu-ga"}))
    assert agent == "/usr/sbin/qemu-ga" and capsys.readouterr().err == ""


def test_httpd_recipe_carries_the_guest_agent() -> None:
    from imagepipe.recipe.load import load_recipe
    from tests.conftest import REPO

    recipe = load_recipe(REPO / "recipes" / "httpd.yaml")
    assert recipe.source.bootstrap is not None
    assert "qemu-guest-agent" in recipe.source.bootstrap.packages


def test_bootstrapped_disks_name_the_first_nic_eth0() -> None:
    """oVirt's config drive configures `eth0`: the kernel must not rename it (enp0s1)."""
    from imagepipe.bases.rootfs_disk import extlinux_conf

    conf = extlinux_conf("/boot/vmlinuz", "/boot/initrd.img", "U-1")
    assert "console=ttyS0,115200n8 net.ifnames=0" in conf
