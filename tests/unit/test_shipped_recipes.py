"""The shipped internet recipes (not built in tests) load and validate, and their answer files
follow the template rules (DHCP, locked root, cloud-init, power-off at the end)."""

from __future__ import annotations

from pathlib import Path

from imagepipe.recipe.load import load_recipe
from tests.conftest import REPO

RECIPES = REPO / "recipes"


def test_centos7_iso_recipe() -> None:
    r = load_recipe(RECIPES / "centos7-httpd-iso.yaml")
    iso = r.source.iso
    assert iso is not None and iso.url.endswith("CentOS-7-x86_64-Minimal-2009.iso")
    assert iso.checksum == ("sha256:07b94e6b1a0b0260b94c83d6bb76b26bf7a310dc78d7a9c7432809fb9bc"
                            "6194a")
    assert iso.install.kickstart is not None
    ks = Path(iso.install.kickstart).read_text()
    for line in ("poweroff", "rootpw --lock", "--bootproto=dhcp", "cloud-init", "httpd",
                 "console=ttyS0"):
        assert line in ks, line
    assert r.test.boot is not None and r.test.boot.http[0].status == 200


def test_rocky9_image_recipe_uses_the_fixed_seed_cloud_config() -> None:
    r = load_recipe(RECIPES / "rocky9-httpd.yaml")
    img = r.source.image
    assert img is not None and img.url.endswith("GenericCloud-Base.latest.x86_64.qcow2")
    assert img.checksum_url == img.url + ".CHECKSUM"
    assert r.cloud_init is not None and r.cloud_init.user_data is not None
    ud = Path(r.cloud_init.user_data).read_text()
    assert "runcmd:" in ud and "firewall-offline-cmd, --add-service=http" in ud
    assert "--permanent" not in ud.split("\nruncmd:", 1)[1]
