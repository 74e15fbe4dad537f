"""KVM or TCG: decided once per host boot, by actually running a guest CPU for a moment.

Why a real probe: on nested hosts /dev/kvm exists and opens fine, yet qemu aborts in
KVM_RUN set-up (`failed to set MSR 0x10a`) or hangs forever. Only entering the guest shows it.
The probe boots SeaBIOS with no boot device, `-boot reboot-timeout=0 -no-reboot`: the BIOS
gives up at once and qemu exits 0 (well under a second with working KVM). An abort, any other
exit, or no exit within a few seconds (the hang) means TCG. The answer is cached keyed on
/proc/sys/kernel/random/boot_id, because a broken KVM stays broken until the host reboots, and
a probe that may hang must not run on every command.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from imagepipe import ui
from imagepipe.errors import InputError, TimeoutExpired, ToolError

MODES = ("auto", "kvm", "tcg")
ENV_VAR = "IMAGEPIPE_ACCEL"
PROBE_TIMEOUT = float(os.environ.get("IMAGEPIPE_ACCEL_PROBE_TIMEOUT", "6"))

_requested: str | None = None  # set by --accel; wins over the environment
_decided: str | None = None  # per process
_warned = False


def set_requested(mode: str | None) -> None:
    """Record a `--accel` choice (CLI) for the rest of the process."""
    global _requested, _decided
    if mode is not None and mode not in MODES:
        raise InputError(f"--accel must be one of {', '.join(MODES)}, not {mode!r}")
    _requested = mode
    _decided = None


def requested_mode() -> str:
    mode = _requested or os.environ.get(ENV_VAR, "").strip().lower() or "auto"
    if mode not in MODES:
        raise InputError(f"{ENV_VAR}={mode!r} is not one of {', '.join(MODES)}")
    return mode


def cache_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "imagepipe" / "accel.json"


def boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


def qemu_binary() -> str:
    return os.environ.get("IMAGEPIPE_QEMU", "qemu-system-x86_64")


def probe_kvm(qemu: str | None = None, timeout: float | None = None) -> tuple[bool, str]:
    """(works, reason). Runs qemu with KVM for at most `timeout` seconds, killed on expiry."""
    from imagepipe.tools.run import run

    qemu = qemu or qemu_binary()
    if not os.access("/dev/kvm", os.R_OK | os.W_OK) and not os.environ.get(
            "IMAGEPIPE_ACCEL_PROBE_IGNORE_DEVKVM"):
        return False, "/dev/kvm is missing or not accessible"
    if shutil.which(qemu) is None:
        return False, f"{qemu} not found"
    argv = [qemu, "-accel", "kvm", "-cpu", "host", "-machine", "q35", "-nodefaults",
            "-display", "none", "-no-reboot", "-boot", "reboot-timeout=0", "-m", "64",
            "-monitor", "none", "-serial", "none", "-parallel", "none"]
    start = time.monotonic()
    try:
        res = run(argv, check=False, timeout=timeout or PROBE_TIMEOUT)
    except TimeoutExpired:
        return False, f"qemu with KVM did not finish a {timeout or PROBE_TIMEOUT:.0f}s probe (hang)"
    except ToolError as e:  # cannot start at all
        return False, str(e)
    if res.returncode != 0:
        tail = (res.stderr.strip().splitlines() or [f"exit code {res.returncode}"])[0]
        return False, f"qemu with KVM failed: {tail}"
    return True, f"KVM probe passed in {time.monotonic() - start:.2f}s"


def _load_cache() -> dict[str, str] | None:
    try:
        data = json.loads(cache_path().read_text())
    except (OSError, ValueError):
        return None
    if data.get("boot_id") != boot_id() or data.get("qemu") != qemu_binary():
        return None
    if data.get("accel") not in ("kvm", "tcg"):
        return None
    return dict(data)


def _save_cache(accel: str, reason: str) -> None:
    path = cache_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"boot_id": boot_id(), "qemu": qemu_binary(),
                                   "accel": accel, "reason": reason}))
        tmp.replace(path)
    except OSError:
        pass  # a cache we cannot write only costs another probe


def _warn_fallback(reason: str) -> None:
    global _warned
    if not _warned:
        _warned = True
        ui.warn(f"KVM unusable ({reason}); using TCG software emulation (slower). "
                f"Set {ENV_VAR}=tcg to skip the probe.")


def decide_accel() -> str:
    """"kvm" or "tcg". `--accel`/IMAGEPIPE_ACCEL kvm|tcg are obeyed without probing."""
    global _decided
    mode = requested_mode()
    if mode != "auto":
        return mode
    if _decided is not None:
        return _decided
    cached = _load_cache()
    if cached is not None:
        accel, reason = cached["accel"], cached.get("reason", "")
        if accel == "tcg":  # warned when probed; a cached answer only shows with -v
            ui.detail(f"accel: TCG (cached for this host boot: {reason})")
    else:
        works, reason = probe_kvm()
        accel = "kvm" if works else "tcg"
        _save_cache(accel, reason)
        if accel == "tcg":
            _warn_fallback(reason)
    _decided = accel
    return accel


def qemu_accel_args(accel: str | None = None) -> list[str]:
    """qemu-system arguments for the decision: KVM with the host CPU, or TCG with `max`."""
    accel = accel or decide_accel()
    if accel == "kvm":
        return ["-accel", "kvm", "-cpu", "host"]
    return ["-accel", "tcg", "-cpu", "max"]


def guestfs_env(accel: str | None = None) -> dict[str, str]:
    """Environment for libguestfs: the direct backend, forced to TCG when KVM is unusable."""
    accel = accel or decide_accel()
    env = {"LIBGUESTFS_BACKEND": "direct"}
    if accel == "tcg":
        env["LIBGUESTFS_BACKEND_SETTINGS"] = "force_tcg"
    else:
        env["LIBGUESTFS_BACKEND_SETTINGS"] = ""
    return env
