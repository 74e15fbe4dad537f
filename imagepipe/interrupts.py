"""One signal model for the whole process: the first SIGINT/SIGTERM starts the clean-up, and
the clean-up always finishes.

Why: raising KeyboardInterrupt on *every* signal let a second Ctrl-C (or `kill -TERM` twice,
as service managers do) escape from the middle of a clean-up: the thread pool of parallel
converts was abandoned while its qemu-img children ran on and even committed, and the process
could hang joining those threads. Now:
- the first signal sets tools.run.CANCEL (worker threads stop, no new tool starts) and raises
  KeyboardInterrupt in the main thread, so every ExitStack clean-up runs;
- later signals are noted on stderr and otherwise ignored;
- the exit code says which signal it was: 130 for SIGINT, 143 for SIGTERM (128 + signal).
Children started by tools.run live in their own process groups (stopped group-wise) and get
SIGKILL from the kernel if imagepipe itself is killed with -9 (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import signal
import sys
from typing import Any

from imagepipe.errors import EXIT_INTERRUPTED

EXIT_TERMINATED = 143  # 128 + SIGTERM

_first: int | None = None
_more = 0


def _handler(signum: int, frame: Any) -> None:
    global _first, _more
    from imagepipe.tools.run import CANCEL

    if _first is not None:
        _more += 1
        try:
            sys.stderr.write(f"imagepipe: {signal.Signals(signum).name} again: still cleaning "
                             "up, exiting as soon as that is done\n")
        except (OSError, ValueError):
            pass
        return
    _first = signum
    CANCEL.set()
    raise KeyboardInterrupt


def install() -> None:
    """Route SIGINT and SIGTERM through the handler (main thread only, at start-up). An
    inherited "ignore" (nohup, a shell's background job) is kept, as every tool does."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(sig) is not signal.SIG_IGN:
            signal.signal(sig, _handler)


def received() -> int | None:
    """The first signal received (None: none yet)."""
    return _first


def exit_code() -> int:
    """143 if the first signal was SIGTERM, else 130 (Ctrl-C, or an interrupt without one)."""
    return EXIT_TERMINATED if _first == signal.SIGTERM else EXIT_INTERRUPTED


def exiting() -> None:
    """The clean-up is done and the process is about to exit with exit_code(): ignore further
    signals. Why: at interpreter shutdown Python puts SIGINT back to its default action, so a
    second Ctrl-C landing in those last milliseconds would kill the process by the signal
    (exit -2) instead of the documented 130. SIG_IGN survives the shutdown."""
    if _first is None:
        return
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            signal.signal(sig, signal.SIG_IGN)
        except (OSError, ValueError):
            pass


def reset() -> None:
    """Forget a handled signal (tests that run several commands in one process)."""
    global _first, _more
    from imagepipe.tools.run import CANCEL

    _first, _more = None, 0
    CANCEL.clear()
