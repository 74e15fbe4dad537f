"""How imagepipe talks to people and to CI.

Three channels, chosen once by the CLI:
- human messages on stderr (`info`, `warn`), quiet unless -v for details;
- `--json`: one JSON object per line on stdout (`stage`, `progress`, `result`, `error`,
  `warning`, `info`), so CI can follow a build without scraping text;
- progress bars (rich) only when stderr is a TTY and --json is off; plain lines otherwise.

Everything that reports goes through `emit()` (imagepipe.events, with the settings) or the
functions here; nothing prints directly.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from imagepipe.events import emit, settings

__all__ = ["Progress", "configure", "detail", "emit", "info", "phase", "phase_setter",
           "result", "settings", "stage", "warn"]


def configure(*, json_mode: bool = False, verbose: int = 0, debug: bool = False) -> None:
    settings.json = json_mode
    settings.verbose = verbose
    settings.debug = debug
    level = logging.DEBUG if (debug or verbose >= 2) else logging.INFO if verbose else logging.WARN
    logging.basicConfig(level=level, format="%(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger().setLevel(level)


def _clear_status() -> None:
    """Erase the running stages' status line (imagepipe.activity) before printing a line."""
    from imagepipe.activity import BOARD

    if BOARD.shown:
        BOARD.clear()


def info(message: str, **data: Any) -> None:
    """A line for the human (stderr) and an `info` event."""
    if settings.json:
        emit("info", message=message, **data)
    else:
        from imagepipe import redact

        _clear_status()
        print(redact.urls(message), file=sys.stderr, flush=True)


def detail(message: str) -> None:
    """Only shown with -v."""
    if settings.verbose and not settings.json:
        _clear_status()
        print(message, file=sys.stderr, flush=True)
    elif settings.json and settings.verbose:
        emit("info", message=message)


def warn(message: str) -> None:
    if settings.json:
        emit("warning", message=message)
    else:
        from imagepipe import redact

        _clear_status()
        print(f"warning: {redact.urls(message)}", file=sys.stderr, flush=True)


def result(message: str | None = None, **data: Any) -> None:
    """The final answer of a command: printed for humans on stdout, or a `result` event."""
    if settings.json:
        emit("result", **data)
    elif message is not None:
        _clear_status()
        print(message, flush=True)


class Progress:
    """A progress reporter with a `size` and `update(n)`, the interface ovirt_imageio expects.

    On a TTY it draws a rich bar; otherwise it prints a plain line at most every 10% (or emits
    `progress` events in --json mode), so logs stay readable.
    """

    def __init__(self, label: str, size: int | None = None, unit: str | None = None) -> None:
        self.label = label
        self.size = size
        self.unit = unit  # "B": sizes are bytes; plain lines and events then show rate + ETA
        self.done = 0
        self._last_pct = -10
        self._bar: Any = None
        self._task: Any = None
        self._start = time.monotonic()

    def __enter__(self) -> Progress:
        if not settings.json and sys.stderr.isatty():
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )
            from rich.progress import Progress as RichProgress

            from imagepipe.activity import paused

            self._bar = RichProgress(TextColumn("{task.description}"), BarColumn(),
                                     DownloadColumn(), TransferSpeedColumn(),
                                     TimeRemainingColumn(), transient=True)
            self._paused = paused()
            self._paused.__enter__()
            self._bar.start()
            self._task = self._bar.add_task(self.label, total=self.size)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._paused.__exit__(None, None, None)

    def update(self, n: int) -> None:
        self.done += n
        self._show()

    def set(self, done: int, size: int | None = None) -> None:
        if size is not None:
            self.size = size
        self.done = done
        self._show()

    def __call__(self, n: int) -> None:
        self.update(n)

    def _show(self) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done, total=self.size)
            return
        if not self.size:
            return
        pct = int(self.done * 100 / self.size)
        if pct >= self._last_pct + 10 or (pct == 100 and self._last_pct != 100):
            _clear_status()
            self._last_pct = pct
            rate, eta = self._rate()
            if settings.json:
                extra = {"rate": round(rate), "eta": round(eta, 1)} if self.unit == "B" else {}
                emit("progress", label=self.label, done=self.done, size=self.size, percent=pct,
                     **extra)
            else:
                tail = (f" {rate / 1048576:.1f} MiB/s, ETA {eta:.0f}s" if self.unit == "B"
                        else "")
                print(f"{self.label}: {pct}%{tail}", file=sys.stderr, flush=True)

    def _rate(self) -> tuple[float, float]:
        """(bytes per second since start, seconds left at that rate)."""
        elapsed = max(time.monotonic() - self._start, 1e-6)
        rate = self.done / elapsed
        left = (self.size or 0) - self.done
        return rate, (left / rate if rate > 0 else 0.0)


def phase(text: str) -> None:
    """What the running stage (of this thread) is doing now: shown on a terminal with the
    elapsed time and sent as a `phase` event (see imagepipe.activity)."""
    from imagepipe.activity import BOARD

    BOARD.set_phase(text)


def phase_setter() -> Callable[[str], None]:
    """`phase` bound to this thread's running stage, for a helper thread to call (a
    subprocess's output reader)."""
    from imagepipe.activity import BOARD

    act = BOARD.current()
    return lambda text: BOARD.set_phase(text, act)


@contextmanager
def stage(name: str, **data: Any) -> Iterator[None]:
    """Bracket a unit of work with `stage` start/end events and its duration. The outermost
    stage of a thread is shown as running with its phase; a stage inside it is a phase."""
    from imagepipe.activity import BOARD, activity

    start = time.monotonic()
    emit("stage", name=name, status="start", **data)
    with ExitStack() as shown:
        current = getattr(BOARD.local, "current", None)
        if current is None:
            shown.enter_context(activity(name))
        elif current.name != name:
            phase(name)
        try:
            yield
        except BaseException:
            emit("stage", name=name, status="failed",
                 seconds=round(time.monotonic() - start, 3))
            raise
    emit("stage", name=name, status="done", seconds=round(time.monotonic() - start, 3))
