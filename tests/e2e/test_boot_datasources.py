"""The published httpd template booted the ways platforms start VMs from it (issue: per-VM
data wins). One shared httpd build (tests/e2e/conftest.py), then the real `imagepipe
boot-test` CLI on its published qcow2:

- `configdrive`: an oVirt-style config drive (label config-2, the payload the engine
  simulator gives a VM made from the template): its hostname and user_data win over the
  seed baked into the image;
- `nocloud`: a `cidata` ISO: its hostname and user-data win;
- `none`: no drive: the recipe's own cloud-config (the baked seed) runs and httpd answers.

Each case also proves a new machine-id and new SSH host keys. One TCG boot each (~70-120 s).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli

pytestmark = [pytest.mark.slow, pytest.mark.network, pytest.mark.qemu, pytest.mark.guestfs]

CASES = [  # datasource, per-VM hostname, what cloud-init must say it used
    ("configdrive", "tplvm-1", "DataSourceConfigDrive"),
    ("nocloud", "cidata-vm-2", "DataSourceNoCloud"),
    ("none", None, "DataSourceNoCloud [seed=/var/lib/cloud/seed/nocloud]"),
]


def _qcow2(manifest: dict[str, Any]) -> Path:
    return next(Path(o["path"]) for o in manifest["outputs"] if o["format"] == "qcow2")


@pytest.mark.parametrize("datasource,hostname,used", CASES, ids=[c[0] for c in CASES])
def test_published_template_takes_its_data_from_the_platform(
        httpd_build: dict[str, Any], httpd_recipe_dir: Path, tmp_path: Path,
        datasource: str, hostname: str | None, used: str) -> None:
    # The recipe's runcmd writes "imagepipe httpd on $(hostname)": with the per-VM hostname
    # in the page, the recipe's cloud-config ran after the platform's hostname applied.
    page = f"imagepipe httpd on {hostname or ''}"
    args = ["--json", "boot-test", str(_qcow2(httpd_build["manifest"])), "--datasource",
            datasource, "--http", f"80:/:200:{page}", "--keep-log", str(tmp_path / "log"),
            "--timeout", "900"]
    if hostname:  # the platform's data carries the recipe's user-data plus the marker
        args += ["--hostname", hostname, "--user-data",
                 str(httpd_recipe_dir / "httpd" / "user-data.yaml")]
    res = run_cli(*args, timeout=1200)
    events = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    report = next(e for e in events if e.get("event") == "result")
    checks = {c["name"]: c for c in report["checks"]}
    assert res.returncode == 0, (checks, res.stderr[-2000:])
    assert report["datasource_used"].startswith(used), report["datasource_used"]
    assert checks["http:80/=200"]["passed"] and checks["new-identity"]["passed"], checks
    if hostname:
        assert checks["hostname"]["passed"] and checks["hostname"]["detail"] == repr(hostname)
        assert checks["marker"]["passed"], checks["marker"]
    else:
        assert "hostname" not in checks and "marker" not in checks
    console = Path(report["console_log"]).read_text(errors="replace")
    assert used in console
