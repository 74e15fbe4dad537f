"""A tiny but real installer ISO for the base-image tests, built from the host's own parts.

The ISO boots like a real installer (El Torito + isolinux from Debian's `isolinux` package, the
host's Debian kernel, an initramfs): its init (busybox-static) loads the CD-ROM and virtio
drivers, mounts the CD, reads the kickstart the remaster added, writes a known record (marker,
kernel command line, kickstart) to the first virtio disk and powers off. A kickstart containing
`HANG` makes it wait forever instead (the timeout case). Without the remaster the menu waits
60 s, logs nothing on the serial port and finds no kickstart, so the tests prove the remaster.
"""

from __future__ import annotations

import glob
import io
import os
import shutil
from pathlib import Path

MARKER = b"IMAGEPIPE-INSTALL-OK"
MODULES = ("virtio_pci", "virtio_blk", "ahci", "sr_mod", "isofs")

INIT = r"""#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /mnt /tmp /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /modules.order); do insmod /lib/modules/$m 2>/dev/null; done
echo "installer: started; cmdline: $(cat /proc/cmdline)"
for i in $(seq 1 50); do
  [ -b /dev/sr0 ] && [ -b /dev/vda ] && mount -t iso9660 -o ro /dev/sr0 /mnt 2>/dev/null && break
  sleep 0.2
done
if [ ! -f /mnt/ks.cfg ]; then
  echo "installer: no kickstart on the CD"; poweroff -f
fi
if grep -q HANG /mnt/ks.cfg; then
  echo "installer: waiting forever"
  while true; do sleep 60; done
fi
{ echo IMAGEPIPE-INSTALL-OK; cat /proc/cmdline; cat /mnt/ks.cfg; } > /tmp/record
dd if=/tmp/record of=/dev/vda conv=fsync 2>/dev/null
echo "installer: wrote $(wc -c < /tmp/record) bytes; powering off"
sync
poweroff -f
"""

ISOLINUX_CFG = """\
prompt 1
timeout 600
default install
label install
  menu label Install
  kernel vmlinuz
  append initrd=initrd.img quiet
label rescue
  kernel vmlinuz
  append initrd=initrd.img rescue
"""


def host_kernel() -> tuple[Path, Path]:
    """The host's Debian kernel and its module directory."""
    for k in sorted(glob.glob("/boot/vmlinuz-*"), reverse=True):
        version = k.split("vmlinuz-", 1)[1]
        mods = Path("/lib/modules") / version
        if (mods / "modules.dep").exists():
            return Path(k), mods
    raise FileNotFoundError("no /boot/vmlinuz-* with modules (apt-get install linux-image-amd64)")


def _module_order(mods: Path) -> list[str]:
    deps: dict[str, list[str]] = {}
    by_name: dict[str, str] = {}
    for line in (mods / "modules.dep").read_text().splitlines():
        mod, _, rest = line.partition(":")
        deps[mod] = rest.split()
        by_name[Path(mod).name.split(".ko")[0].replace("-", "_")] = mod
    order: list[str] = []

    def visit(mod: str) -> None:
        for d in reversed(deps.get(mod, [])):
            visit(d)
        if mod not in order:
            order.append(mod)

    for name in MODULES:
        visit(by_name[name])
    return order


def _cpio_newc(entries: list[tuple[str, int, bytes]]) -> bytes:
    """A `newc` cpio archive (the initramfs format) of (name, mode, data) entries."""
    out = io.BytesIO()

    def pad(n: int) -> None:
        out.write(b"\0" * (-n % 4))

    for ino, (name, mode, data) in enumerate([*entries, ("TRAILER!!!", 0, b"")], start=1):
        nb = name.encode() + b"\0"
        fields = [ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(nb), 0]
        header = b"070701" + b"".join(b"%08X" % f for f in fields)
        out.write(header + nb)
        pad(len(header) + len(nb))
        out.write(data)
        pad(len(data))
    return out.getvalue()


def make_initramfs() -> bytes:
    _, mods = host_kernel()
    order = _module_order(mods)
    entries: list[tuple[str, int, bytes]] = [
        ("bin", 0o040755, b""), ("lib", 0o040755, b""), ("lib/modules", 0o040755, b""),
        ("bin/busybox", 0o100755, Path("/bin/busybox").read_bytes()),
        ("init", 0o100755, INIT.encode()),
        ("modules.order", 0o100644, "\n".join(Path(m).name for m in order).encode() + b"\n"),
    ]
    entries += [(f"lib/modules/{Path(m).name}", 0o100644, (mods / m).read_bytes())
                for m in order]
    return _cpio_newc(entries)


def make_installer_iso(out: Path) -> Path:
    """Write the test installer ISO (isolinux, Rock Ridge + Joliet, like CentOS's)."""
    import pycdlib

    if shutil.which("busybox") is None and not Path("/bin/busybox").exists():
        raise FileNotFoundError("/bin/busybox (apt-get install busybox-static)")
    kernel, _ = host_kernel()
    files = {
        "/isolinux/isolinux.bin": Path("/usr/lib/ISOLINUX/isolinux.bin").read_bytes(),
        "/isolinux/ldlinux.c32": Path("/usr/lib/syslinux/modules/bios/ldlinux.c32").read_bytes(),
        "/isolinux/isolinux.cfg": ISOLINUX_CFG.encode(),
        "/isolinux/vmlinuz": kernel.read_bytes(),
        "/isolinux/initrd.img": make_initramfs(),
    }
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, rock_ridge="1.09", joliet=3, vol_ident="TESTINST")
    iso.add_directory("/ISOLINUX", rr_name="isolinux", joliet_path="/isolinux")
    for path, data in files.items():
        name = path.rsplit("/", 1)[1]
        iso.add_fp(io.BytesIO(data), len(data), iso_path=f"/ISOLINUX/{name.upper()};1",
                   rr_name=name, joliet_path=path)
    iso.add_eltorito("/ISOLINUX/ISOLINUX.BIN;1", bootcatfile="/ISOLINUX/BOOT.CAT;1",
                     rr_bootcatname="boot.cat", joliet_bootcatfile="/isolinux/boot.cat",
                     boot_load_size=4, boot_info_table=True)
    tmp = out.with_name(out.name + ".tmp")
    iso.write(str(tmp))
    iso.close()
    os.replace(tmp, out)
    return out


def read_record(disk: Path, fmt: str) -> bytes:
    """The first 64 KiB the test installer wrote to the disk (read back via qemu-img)."""
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        raw = Path(d) / "head.raw"
        subprocess.run(["qemu-img", "dd", "-f", fmt, "-O", "raw", "bs=65536", "count=1",
                        f"if={disk}", f"of={raw}"], check=True, capture_output=True)
        return raw.read_bytes()



def qemu_pids_using(path: Path) -> list[int]:
    """PIDs of qemu-system processes whose command line mentions `path` (leak checks)."""
    pids = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                cmd = (p / "cmdline").read_bytes()
            except OSError:
                continue
            if b"qemu-system" in cmd and str(path).encode() in cmd:
                pids.append(int(p.name))
    return pids
