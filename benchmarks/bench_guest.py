"""Guest work: imagepipe customize (write 2 files, run 1 command) + inject + seal in ONE
appliance launch, against `virt-customize` with the same work followed by `virt-sysprep`.

Same fixture image (a Debian-12-like disk with busybox), same accel environment for both
(imagepipe.tools.accel.guestfs_env). Each side works on its own copy; the result of each is
read back with debugfs (a fast wrong result is not a result). Prints both wall times and the
ratio imagepipe / (virt-customize + virt-sysprep), target <= 0.6.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

USER_DATA = "#cloud-config\nruncmd:\n  - [ systemctl, start, apache2 ]\n"
META = "instance-id: iid-bench-1\n"
SEED = "/var/lib/cloud/seed/nocloud"

IMAGEPIPE_SCRIPT = """
import sys
from pathlib import Path
from imagepipe.guest.work import run_guest_work
from imagepipe.recipe.model import CloudInit, Customize, FileSpec, ImageSource, Recipe, Source
d = Path(sys.argv[2])
recipe = Recipe(name="bench", description="", path=d / "recipe.yaml",
                source=Source(image=ImageSource(url="file:///dev/null")),
                customize=Customize(files=(FileSpec(dest="/etc/one", content="1"),
                                           FileSpec(dest="/etc/two", content="2")),
                                    run=("echo ran > /etc/ran",)),
                cloud_init=CloudInit(user_data=d / "user-data", instance_id="iid-bench-1"))
run_guest_work(Path(sys.argv[1]), recipe, instance_id="iid-bench-1", fmt="raw")
"""


def _read(image: Path, path: str) -> bytes | None:
    out = image.with_suffix(".out")
    dev = f"{image}?offset=1048576"
    r = subprocess.run(["debugfs", "-R", f"dump {path} {out}", dev], capture_output=True,
                       text=True)
    if not out.exists() or "not found" in r.stderr:
        return None
    data = out.read_bytes()
    out.unlink()
    return data


def _check(image: Path, who: str) -> None:
    ok = (_read(image, "/etc/ran") == b"ran\n" and _read(image, "/etc/one") == b"1"
          and _read(image, f"{SEED}/user-data") == USER_DATA.encode()
          and _read(image, "/etc/ssh/ssh_host_rsa_key") is None)
    if not ok:
        raise SystemExit(f"{who}: the image does not hold the expected result")


def _run(argv: list[str], env: dict[str, str]) -> None:
    r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise SystemExit(f"{argv[0]} failed ({r.returncode}):\n{r.stderr[-2000:]}")


def main() -> int:
    from imagepipe.testing.fixtures import make_debian_fixture
    from imagepipe.tools.accel import decide_accel, guestfs_env

    accel = decide_accel()
    env = {**os.environ, **guestfs_env(accel), "IMAGEPIPE_ACCEL": accel}
    with tempfile.TemporaryDirectory(prefix="bench-guest-") as tmp:
        d = Path(tmp)
        (d / "user-data").write_text(USER_DATA)
        (d / "meta-data").write_text(META)
        from imagepipe.cloudinit.seed import DATASOURCE_CFG

        (d / "dropin.cfg").write_text(DATASOURCE_CFG)
        base = make_debian_fixture(d / "base.img", {"etc/ssh/ssh_host_rsa_key": "K",
                                                    "etc/machine-id": "0" * 32 + "\n"},
                                   busybox=True)
        ours, theirs = d / "ours.img", d / "theirs.img"
        shutil.copy(base, ours)
        shutil.copy(base, theirs)

        start = time.monotonic()
        _run([sys.executable, "-c", IMAGEPIPE_SCRIPT, str(ours), str(d)], env)
        t_ours = time.monotonic() - start

        start = time.monotonic()
        _run(["virt-customize", "-q", "--format", "raw", "-a", str(theirs),
              "--write", "/etc/one:1", "--write", "/etc/two:2",
              "--run-command", "echo ran > /etc/ran",
              "--mkdir", SEED, "--mkdir", "/etc/cloud/cloud.cfg.d",
              "--upload", f"{d / 'user-data'}:{SEED}/user-data",
              "--upload", f"{d / 'meta-data'}:{SEED}/meta-data",
              "--upload", f"{d / 'dropin.cfg'}:/etc/cloud/cloud.cfg.d/90_ds.cfg"], env)
        _run(["virt-sysprep", "-q", "--format", "raw", "-a", str(theirs)], env)
        t_theirs = time.monotonic() - start

        _check(ours, "imagepipe")
        _check(theirs, "virt-customize + virt-sysprep")
    print(f"guest accel: {accel}")
    print(f"guest imagepipe customize+inject+seal (1 launch): {t_ours:.1f} s")
    print(f"guest virt-customize + virt-sysprep (2 launches): {t_theirs:.1f} s")
    print(f"guest ratio imagepipe/virt-tools: {t_ours / t_theirs:.2f} (target <= 0.6)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
