"""GuestSession: one libguestfs appliance launch for all guest work on an image.

Why one session: a launch costs ~15 s under TCG (measured); virt-customize followed by
virt-sysprep pays it twice plus inspection twice. Customize, inject, seal, lints and the
read-back verification all run on one handle. The image is opened as given; callers hand in a
copy or overlay (see `working_copy`) so the input is never modified unless the user asked for
`--in-place`. The handle is always closed (umount, shutdown, close) in a `finally`.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imagepipe.errors import ImageError, ImagepipeError


@dataclass(frozen=True)
class GuestInfo:
    """What inspection found; seal operations and customize are guarded by it."""

    root: str
    type: str  # linux, windows, ...
    distro: str  # debian, ubuntu, fedora, rhel, centos, ...
    major: int
    minor: int
    package_format: str  # deb, rpm, ...
    package_management: str  # apt, dnf, yum, ...
    arch: str
    hostname: str

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


class GuestCommandError(ImagepipeError):
    """A command run inside the guest failed: the command, exit code and its last lines."""

    def __init__(self, command: str, returncode: int, output: str) -> None:
        tail = "\n".join(output.rstrip().splitlines()[-15:])
        msg = f"guest command failed with exit code {returncode}: {command}"
        if tail:
            msg += "\n" + "\n".join("  " + line for line in tail.splitlines())
        super().__init__(msg, "fix the command in customize.run, or test it in a VM first")
        self.command = command
        self.returncode = returncode
        self.output = output


def new_handle(accel: str | None = None) -> Any:
    """A libguestfs handle with the accel decision's backend (direct; force_tcg when KVM is
    unusable). Why the handle's own setters and not os.environ: nothing leaks into other
    threads, and every caller (GuestSession, the blank-disk writer in rootfs_disk) gets the
    same settings from one place."""
    import guestfs

    from imagepipe.tools.accel import guestfs_env

    env = guestfs_env(accel)
    g = guestfs.GuestFS(python_return_dict=True)
    try:
        g.set_backend(env.get("LIBGUESTFS_BACKEND", "direct"))
        settings = env.get("LIBGUESTFS_BACKEND_SETTINGS", "")
        g.set_backend_settings(settings.split(":") if settings else [])
        g.set_tmpdir(str(guestfs_tmpdir()))  # swept by the next build if we are killed
    except BaseException:
        g.close()
        raise
    return g


GUESTFS_TMP_PREFIX = "guestfs."


def guestfs_tmpdir() -> Path:
    """STORE/tmp/guestfs.PID: libguestfs's temp files for this process, under the store so
    that `Store.clean_stale` (run by every build) removes the ones of a process that died
    (kill -9 skips libguestfs's own clean-up, which used to leave /tmp/libguestfsXXXXXX)."""
    import os

    from imagepipe.cache_root import default_root

    path = default_root() / "tmp" / f"{GUESTFS_TMP_PREFIX}{os.getpid()}"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def probed_format(image: Path, fmt: str | None, *, allow_backing: bool = False) -> str:
    """The image's format after the same safety probe `convert` uses (imagepipe.convert.
    probe): an image with a backing file, an external data file or a vmdk extent outside it
    is refused (exit 2) before the appliance opens it; a format the caller named must agree
    with the content. libguestfs then always gets this explicit format (never its own
    probing, which would follow the image's metadata)."""
    from imagepipe import formats
    from imagepipe.tools.probe import BACKING_HINT, inspect_image

    info, refs = inspect_image(image)
    if refs and not allow_backing:
        kind, target = refs[0]
        raise ImageError(f"{image}: refusing an image with a {kind}: {target}", BACKING_HINT)
    driver = str(info["format"])
    if fmt is not None:
        named = formats.by_driver(fmt) or formats.FORMATS.get(fmt)
        if named is not None and named.driver != driver:
            raise ImageError(f"{image}: said to be {fmt} but the content is {driver}")
    return driver


def interruptible_launch(g: Any) -> None:
    """`g.launch()` in a helper thread while this thread waits in short steps.

    Why: launch is one C call of up to minutes under TCG; Python runs a signal handler only
    between bytecodes, so Ctrl-C/SIGTERM in the main thread (or CANCEL for a worker) would wait
    for the whole launch. Waiting here instead, the interrupt arrives at once; the appliance's
    qemu is then killed, so launch fails fast and the helper thread ends."""
    import threading

    from imagepipe.tools.run import CANCEL

    errors: list[BaseException] = []

    def work() -> None:
        try:
            g.launch()
        except BaseException as exc:  # noqa: B036 - re-raised in the waiting thread
            errors.append(exc)

    helper = threading.Thread(target=work, name="guestfs-launch", daemon=True)
    helper.start()
    try:
        while helper.is_alive():
            helper.join(0.2)
            if CANCEL.is_set() and threading.current_thread() is not threading.main_thread():
                raise KeyboardInterrupt
    except BaseException:
        _kill_appliances()
        helper.join(30)
        raise
    if errors:
        raise errors[0]


def _kill_appliances() -> None:
    """SIGKILL this process's libguestfs appliance qemu(s), found by their temp or socket dir
    (only on an interrupt, when every session of this process is being abandoned)."""
    import os
    import signal

    marker = str(guestfs_tmpdir()).encode()
    me = str(os.getpid())
    proc = Path("/proc")
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = (entry / "stat").read_text().rsplit(")", 1)[1].split()[1]
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, IndexError):
            continue
        if ppid == me and b"qemu" in cmdline and (marker in cmdline
                                                  or b"guestfsd.sock" in cmdline):
            try:
                os.kill(int(entry.name), signal.SIGKILL)
            except ProcessLookupError:
                pass


class GuestSession:
    """Context manager: launch, inspect, mount by inspection; close on exit no matter what."""

    def __init__(self, image: Path, *, fmt: str | None = None, readonly: bool = False,
                 network: bool = False, accel: str | None = None,
                 allow_backing: bool = False) -> None:
        """`allow_backing`: only for overlays imagepipe made itself on an image it probed."""
        self.image = Path(image)
        self.allow_backing = allow_backing
        self.fmt = fmt
        self.readonly = readonly
        self.network = network
        self.accel = accel
        self.g: Any = None
        self.info: GuestInfo | None = None

    # -- lifecycle ------------------------------------------------------------------------
    def __enter__(self) -> GuestSession:
        # before any appliance sees the image
        fmt = probed_format(self.image, self.fmt, allow_backing=self.allow_backing)
        self.g = new_handle(self.accel)
        launched = False
        try:
            opts: dict[str, Any] = {"readonly": self.readonly, "format": fmt}
            if not self.readonly:  # lets fstrim punch the freed blocks out of a qcow2/raw file
                opts["discard"] = "besteffort"
            self.g.add_drive_opts(str(self.image), **opts)
            self.g.set_network(self.network)
            interruptible_launch(self.g)
            launched = True
            self._inspect_and_mount()
        except BaseException:
            self._close(flush=launched)  # an interrupted launch has no appliance to sync
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._close(flush=exc[0] is None)

    def _close(self, flush: bool = True) -> None:
        g, self.g = self.g, None
        if g is None:
            return
        try:
            if flush and not self.readonly:
                g.umount_all()
                g.shutdown()  # waits for the appliance to sync the disk
        finally:
            g.close()

    def _inspect_and_mount(self) -> None:
        g = self.g
        roots = g.inspect_os()
        if not roots:
            raise ImageError(f"{self.image}: no operating system found in the image",
                             "is this a disk image with an installed OS?")
        if len(roots) > 1:
            raise ImageError(f"{self.image}: more than one operating system found ({roots})")
        root = roots[0]

        def get(fn: str, default: Any) -> Any:
            try:
                return getattr(g, fn)(root)
            except RuntimeError:
                return default

        self.info = GuestInfo(
            root=root, type=get("inspect_get_type", "unknown"),
            distro=get("inspect_get_distro", "unknown"),
            major=get("inspect_get_major_version", 0), minor=get("inspect_get_minor_version", 0),
            package_format=get("inspect_get_package_format", "unknown"),
            package_management=get("inspect_get_package_management", "unknown"),
            arch=get("inspect_get_arch", "unknown"), hostname=get("inspect_get_hostname", ""))
        mps = g.inspect_get_mountpoints(root)
        for mp in sorted(mps, key=len):
            try:
                if self.readonly:
                    g.mount_ro(mps[mp], mp)
                else:
                    g.mount(mps[mp], mp)
            except RuntimeError as e:
                if mp == "/":
                    msg = f"{self.image}: cannot mount the root filesystem: {e}"
                    raise ImageError(msg) from None

    # -- file helpers (paths are guest paths) ---------------------------------------------
    def exists(self, path: str) -> bool:
        return bool(self.g.exists(path))

    def is_file(self, path: str) -> bool:
        return bool(self.g.is_file(path, followsymlinks=False))

    def is_dir(self, path: str) -> bool:
        return bool(self.g.is_dir(path, followsymlinks=False))

    def is_symlink(self, path: str) -> bool:
        return bool(self.g.is_symlink(path))

    def read(self, path: str) -> bytes:
        return bytes(self.g.read_file(path))

    def read_text(self, path: str) -> str:
        return self.read(path).decode("utf-8", "replace")

    def write(self, path: str, content: bytes | str, mode: int | None = None) -> None:
        data = content.encode() if isinstance(content, str) else content
        self.mkdir_p(posixpath.dirname(path))
        self.g.write(path, data)
        if mode is not None:
            self.g.chmod(mode, path)

    def mkdir_p(self, path: str) -> None:
        if path and not self.g.is_dir(path):
            self.g.mkdir_p(path)

    def glob(self, pattern: str) -> list[str]:
        """Guest paths matching a glob, without following into a missing directory."""
        return sorted(p.rstrip("/") for p in self.g.glob_expand(pattern))

    def files_under(self, directory: str) -> list[str]:
        """Regular files and symlinks under `directory` (recursive), as guest paths."""
        if not self.is_dir(directory):
            return []
        out = []
        for rel in self.g.find(directory):
            p = directory.rstrip("/") + "/" + rel.lstrip("/")  # find() answers "/name"
            if self.g.is_file(p, followsymlinks=False) or self.g.is_symlink(p):
                out.append(p)
        return sorted(out)

    def sh(self, command: str) -> str:
        """Run `command` with the guest's /bin/sh; raise GuestCommandError with its tail."""
        log = "/tmp/.imagepipe-cmd.log"
        self.mkdir_p("/tmp")
        wrapped = f"( {command}\n) >{log} 2>&1 </dev/null; echo \"imagepipe-rc=$?\""
        try:
            out = self.g.sh(wrapped)
        except RuntimeError as e:
            raise GuestCommandError(command, -1, str(e)) from None
        output = self.read_text(log) if self.exists(log) else ""
        if self.exists(log):
            self.g.rm(log)
        rc = int(out.strip().rsplit("imagepipe-rc=", 1)[-1] or -1)
        if rc != 0:
            raise GuestCommandError(command, rc, output)
        return output
