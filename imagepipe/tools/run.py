"""The one place that runs subprocesses.

Why one place (mkosi's lesson): a failed command must be printed once, ready to paste, with the
tail of its stderr; every command is logged with `shlex.join` at debug level; and no caller can
accidentally use a shell or forget a timeout.
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from imagepipe.errors import TimeoutExpired, ToolError, ToolMissingError

log = logging.getLogger("imagepipe.run")

# Debian package that provides each program we call, for the "install it" hint.
PACKAGES = {
    "qemu-img": "qemu-utils",
    "qemu-nbd": "qemu-utils",
    "qemu-system-x86_64": "qemu-system-x86",
    "mmdebstrap": "mmdebstrap",
    "virt-sysprep": "guestfs-tools",
    "virt-customize": "guestfs-tools",
    "blkid": "util-linux",
    "sfdisk": "fdisk",
    "mkfs.ext4": "e2fsprogs",
}


CANCEL = threading.Event()
"""Set when the process is being interrupted (Ctrl-C, SIGTERM). Signals reach only the main
thread, so long waits in worker threads (a boot test, an unattended install) poll this instead
of sleeping blindly until their own timeout."""


def sleep_or_cancel(seconds: float) -> None:
    """`time.sleep` that raises KeyboardInterrupt at once when CANCEL is set."""
    if CANCEL.wait(seconds):
        raise KeyboardInterrupt


@dataclass(frozen=True)
class Result:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str


def require(program: str) -> str:
    """Return the full path of `program` or raise a ToolMissingError naming its package."""
    path = shutil.which(program)
    if path is None:
        raise ToolMissingError(program, PACKAGES.get(program))
    return path


def run(
    argv: Sequence[str],
    *,
    check: bool = True,
    timeout: float | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    input: str | None = None,
    capture: bool = True,
    on_stdout_line: Callable[[str], None] | None = None,
    on_stderr_line: Callable[[str], None] | None = None,
) -> Result:
    """Run argv (a list, never a shell string) and return its output.

    `on_stdout_line` streams stdout line by line (qemu-img convert -p progress) instead of
    buffering it; `on_stderr_line` likewise for stderr (mmdebstrap's phase lines). On
    timeout the whole process group is killed, so no helper is leaked.
    """
    argv = [str(a) for a in argv]
    require(argv[0])
    if CANCEL.is_set() and threading.current_thread() is not threading.main_thread():
        raise KeyboardInterrupt  # interrupted: a worker thread starts no new tool
    log.debug("run: %s", shlex.join(argv))
    full_env = None
    if env is not None:
        full_env = dict(os.environ)
        full_env.update(env)
    streaming = on_stdout_line is not None or on_stderr_line is not None
    stdout_pipe = subprocess.PIPE if (capture or streaming) else None
    proc = subprocess.Popen(
        dies_with_parent(argv),
        stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
        stdout=stdout_pipe,
        stderr=subprocess.PIPE if (capture or on_stderr_line) else None,
        env=full_env,
        cwd=cwd,
        text=True,
        start_new_session=True,
    )
    try:
        if streaming:
            out, err = _stream(proc, on_stdout_line or (lambda _: None), timeout,
                               on_stderr_line)
        else:
            out, err = proc.communicate(input=input, timeout=timeout)
    except subprocess.TimeoutExpired:
        stop_process(proc)
        raise TimeoutExpired(
            f"command timed out after {timeout:.0f}s: {shlex.join(argv)}") from None
    except BaseException:
        stop_process(proc)
        raise
    result = Result(argv, proc.returncode, out or "", err or "")
    if check and proc.returncode != 0:
        raise ToolError(argv, proc.returncode, result.stderr or result.stdout)
    return result


def dies_with_parent(argv: Sequence[str]) -> list[str]:
    """`argv` started through util-linux's `setpriv --pdeathsig KILL`: the kernel sends the
    tool SIGKILL when imagepipe (the thread that started it) dies.

    Why: children run in their own session (so a terminal's Ctrl-C reaches only imagepipe,
    which stops them in order), which also means nothing stops them if imagepipe is killed
    with -9; a qemu-img would keep writing into the store. Why not a Python `preexec_fn`
    calling prctl: Python code between fork and exec in a multi-threaded process can deadlock
    on a lock another thread held at the fork (measured: children stuck in a futex forever,
    before exec, after their parent was killed); setpriv is an exec'd C program."""
    if shutil.which("setpriv") is None:  # util-linux is essential on Debian; elsewhere: as is
        return list(argv)
    return ["setpriv", "--pdeathsig", "KILL", "--", *argv]


def _stream(
    proc: subprocess.Popen[str], on_line: Callable[[str], None], timeout: float | None,
    on_err_line: Callable[[str], None] | None = None,
) -> tuple[str, str]:
    """Feed stdout lines to `on_line` while collecting stderr in a thread (no pipe deadlock)."""
    import threading

    err_chunks: list[str] = []

    def drain() -> None:
        assert proc.stderr is not None
        if on_err_line is None:
            err_chunks.append(proc.stderr.read())
            return
        for line in proc.stderr:
            err_chunks.append(line)
            on_err_line(line)

    t = threading.Thread(target=drain, daemon=True)
    if proc.stderr is not None:
        t.start()
    out_lines: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        out_lines.append(line)
        on_line(line)
    proc.wait(timeout=timeout)
    if proc.stderr is not None:
        t.join()
    return "".join(out_lines), "".join(err_chunks)


def stop_process(proc: subprocess.Popen[Any], *, term_wait: float = 5.0,
                 group: bool = True) -> None:
    """SIGTERM, wait up to `term_wait` s, then SIGKILL (and wait up to 5 s).

    `group` signals the child's whole process group (children started with
    start_new_session=True lead one), so no helper it forked is leaked. Also used to stop
    long-lived daemons a context manager started with Popen (qemu-nbd, ovirt-imageio).
    """
    send = os.killpg if group else os.kill
    for sig, wait in ((signal.SIGTERM, term_wait), (signal.SIGKILL, 5.0)):
        try:
            send(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def stop_pid(pid: int, alive: Callable[[int], bool], *, term_wait: float = 5.0) -> None:
    """stop_process for a process we did not start as a child (e.g. a daemonized qemu known
    only by its pidfile): SIGTERM, poll `alive` up to `term_wait` s, then SIGKILL (5 s).

    `alive(pid)` must also say whether the pid is still *ours* (pids are reused), so a stale
    pid is never signalled.
    """
    for sig, wait in ((signal.SIGTERM, term_wait), (signal.SIGKILL, 5.0)):
        if not alive(pid):
            return
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and alive(pid):
            time.sleep(0.1)
