"""Boot firmware for test VMs: SeaBIOS, OVMF (UEFI) and OVMF with Secure Boot enforced.

Why this shape:
- The firmware images come from Debian's `ovmf` package. OVMF keeps its variables (boot
  entries, Secure Boot keys) in a second flash chip: every VM gets a private copy of the
  variable template, so one boot never changes another's firmware state, and the template
  stays read-only.
- Secure Boot: the `secboot` build of OVMF (its variable store is only writable from SMM, so
  the guest cannot switch Secure Boot off) with the `ms` variable template, which has
  Microsoft's keys enrolled and Secure Boot on: the same trust a Hyper-V Gen2, Azure or
  vSphere VM with Secure Boot has. That needs `-machine q35,smm=on` and the pflash `secure`
  property (SMM runs fine under TCG).
- Proof, not assumption: each firmware has a console signature the boot test checks. Under
  UEFI the kernel logs `efi: EFI v...`; with Secure Boot it logs `Secure boot enabled` (it
  reads the SecureBoot variable the firmware set); under SeaBIOS neither appears.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from imagepipe.errors import InputError

FIRMWARES = ("bios", "uefi", "secureboot")
OVMF_DIR = Path("/usr/share/OVMF")


@dataclass(frozen=True)
class Ovmf:
    code: str
    vars_template: str
    secure: bool


OVMF = {
    "uefi": Ovmf("OVMF_CODE_4M.fd", "OVMF_VARS_4M.fd", secure=False),
    "secureboot": Ovmf("OVMF_CODE_4M.secboot.fd", "OVMF_VARS_4M.ms.fd", secure=True),
}

# (check name, console pattern that proves the firmware path, pattern that disproves it)
KERNEL_SEEN = re.compile(r"Linux version \d")
UEFI_SEEN = re.compile(r"efi: EFI v\d")
SECURE_SEEN = re.compile(r"[Ss]ecure boot enabled")
SECURE_OFF = re.compile(r"[Ss]ecure boot (disabled|could not be determined)")


def check_firmware(name: str) -> str:
    if name not in FIRMWARES:
        raise InputError(f"unknown firmware {name!r}", f"use one of: {', '.join(FIRMWARES)}")
    return name


def ovmf_files(firmware: str, ovmf_dir: Path = OVMF_DIR) -> tuple[Path, Path]:
    """(code, vars template) for `firmware`, checked to exist."""
    spec = OVMF[check_firmware(firmware)]
    code, template = ovmf_dir / spec.code, ovmf_dir / spec.vars_template
    for f in (code, template):
        if not f.is_file():
            raise InputError(f"firmware {firmware!r} needs {f}, which is missing",
                             "install Debian's ovmf package: apt-get install ovmf")
    return code, template


def qemu_firmware_args(firmware: str, vars_copy: Path | None = None,
                       ovmf_dir: Path = OVMF_DIR) -> list[str]:
    """The qemu arguments for `firmware` (pure: `vars_copy` is only named here). SeaBIOS is
    qemu's default and needs none."""
    if check_firmware(firmware) == "bios":
        return []
    assert vars_copy is not None
    code, _ = ovmf_files(firmware, ovmf_dir)
    spec = OVMF[firmware]
    args: list[str] = []
    if spec.secure:
        args += ["-machine", "smm=on",
                 "-global", "driver=cfi.pflash01,property=secure,value=on"]
    args += ["-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={_esc(code)}",
             "-drive", f"if=pflash,format=raw,unit=1,file={_esc(vars_copy)}"]
    return args


def prepare(firmware: str, workdir: Path, ovmf_dir: Path = OVMF_DIR) -> list[str]:
    """Copy the variable template into `workdir` (private to this VM); the qemu arguments."""
    if check_firmware(firmware) == "bios":
        return []
    _, template = ovmf_files(firmware, ovmf_dir)
    workdir.mkdir(parents=True, exist_ok=True)
    vars_copy = workdir / f"ovmf-vars-{firmware}.fd"
    shutil.copyfile(template, vars_copy)
    return qemu_firmware_args(firmware, vars_copy, ovmf_dir)


def verdict(firmware: str, console: str) -> tuple[bool, str]:
    """Did the guest really boot through `firmware`? From its kernel's console messages."""
    if not KERNEL_SEEN.search(console):
        return False, "no kernel started (no 'Linux version' on the console)"
    uefi = bool(UEFI_SEEN.search(console))
    if firmware == "bios":
        return (not uefi, "booted by SeaBIOS (no EFI)" if not uefi
                else "the kernel reports EFI firmware, not BIOS")
    if not uefi:
        return False, "the kernel did not report EFI firmware (efi: EFI v...)"
    if firmware == "uefi":
        return True, "booted by OVMF (UEFI)"
    if SECURE_SEEN.search(console):
        return True, "booted by OVMF with Secure Boot enforced (kernel: Secure boot enabled)"
    off = SECURE_OFF.search(console)
    return False, (f"the kernel says {off.group(0)!r}" if off
                   else "the kernel never said 'Secure boot enabled'")


def _esc(path: Path | str) -> str:
    return str(path).replace(",", ",,")
