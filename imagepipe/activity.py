"""What a long stage is doing right now, shown while it runs (never silent for more than 10 s).

Why: a cold build spends minutes in three stages (mmdebstrap, the guest appliance, the boot
test) that used to print nothing until they ended, so a user could not tell a slow build from
a hung one. Each running stage is an *activity* with a *phase* (mmdebstrap's own phase line,
the guest operation, the boot milestone) that code deep inside the stage sets with
`imagepipe.ui.phase(text)`; the activity belongs to the thread that started it, so stages
running in parallel each keep their own phase.

How it is shown (chosen by the output settings in imagepipe.events, like everything else):
- on a terminal: one status line on stderr, redrawn every second in place ("guest 42s:
  seal: ssh-hostkeys (3s) | test.boot 40s: boot: kernel (12s)"), cleared before any other
  line is printed;
- `--json`: a `phase` event at every change and a `heartbeat` event every 10 s listing every
  running stage with its phase and elapsed seconds;
- otherwise (a log file): a plain line at every phase change and one every 60 s.
"""

from __future__ import annotations

import shutil
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from imagepipe import events

HEARTBEAT_S = 10.0  # --json heartbeat; also the longest a terminal may stay unchanged
PLAIN_REPEAT_S = 60.0  # logs: a "still running" line at most this often
TICK_S = 1.0  # how often the terminal's status line is redrawn


@dataclass
class _Activity:
    name: str
    started: float = field(default_factory=time.monotonic)
    phase: str = "starting"
    phase_started: float = field(default_factory=time.monotonic)

    def describe(self, now: float) -> dict[str, object]:
        return {"stage": self.name, "phase": self.phase,
                "elapsed": round(now - self.started, 1),
                "phase_elapsed": round(now - self.phase_started, 1)}

    def line(self, now: float) -> str:
        return (f"{self.name} {now - self.started:.0f}s: {self.phase} "
                f"({now - self.phase_started:.0f}s)")


class _Board:
    """The running activities and the one ticker thread that shows them."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.active: list[_Activity] = []
        self.local = threading.local()
        self.ticker: threading.Thread | None = None
        self.wake = threading.Event()
        self.shown = 0  # characters of the status line now on the terminal
        self.paused = 0  # > 0 while a progress bar owns the terminal
        self.last_plain = 0.0

    # -- what the stages say -----------------------------------------------------------------
    def start(self, name: str) -> _Activity:
        act = _Activity(name)
        with self.lock:
            self.active.append(act)
            self.local.current = act
            self.wake.clear()
            if self.ticker is None:  # the ticker clears this, under the lock, when it ends
                self.ticker = threading.Thread(target=self._tick, name="activity",
                                               daemon=True)
                self.ticker.start()
        return act

    def finish(self, act: _Activity) -> None:
        with self.lock:
            if act in self.active:
                self.active.remove(act)
            if getattr(self.local, "current", None) is act:
                self.local.current = None
            if not self.active:
                self.clear()
                self.wake.set()

    def current(self) -> _Activity | None:
        act = getattr(self.local, "current", None)
        if act is None and len(self.active) == 1:
            act = self.active[0]  # a helper thread of the only running stage
        return act

    def set_phase(self, text: str, act: _Activity | None = None) -> None:
        with self.lock:
            act = act or self.current()
            if act is None or text == act.phase:
                return
            act.phase, act.phase_started = text, time.monotonic()
            events.emit("phase", **act.describe(act.phase_started))
            if not events.settings.json and not _tty():
                self._plain(f"  {act.name}: {text}")

    # -- showing it --------------------------------------------------------------------------
    def _tick(self) -> None:
        while True:
            self.wake.wait(TICK_S)  # set when the last activity ends: stop at once
            now = time.monotonic()
            with self.lock:
                if not self.active:
                    self.ticker = None
                    return
                if events.settings.json:
                    # due a tick early, so no two events are ever more than HEARTBEAT_S apart
                    if now - events.settings.last_emit >= HEARTBEAT_S - TICK_S:
                        events.emit("heartbeat", active=[a.describe(now) for a in self.active])
                elif _tty():
                    self._draw(" | ".join(a.line(now) for a in self.active))
                elif now - self.last_plain >= PLAIN_REPEAT_S:
                    self._plain("  still running: " + "; ".join(a.line(now)
                                                                for a in self.active))

    def _draw(self, text: str) -> None:
        if self.paused:
            return
        width = shutil.get_terminal_size((100, 20)).columns - 1
        text = text if len(text) <= width else text[: width - 1] + "…"
        sys.stderr.write("\r" + text.ljust(self.shown) + "\r")
        sys.stderr.flush()
        self.shown = len(text)

    def _plain(self, text: str) -> None:
        self.last_plain = time.monotonic()
        print(text, file=sys.stderr, flush=True)

    def clear(self) -> None:
        """Erase the status line (before any other output; it is redrawn within a second)."""
        with self.lock:
            if self.shown:
                sys.stderr.write("\r" + " " * self.shown + "\r")
                sys.stderr.flush()
                self.shown = 0


def _tty() -> bool:
    return sys.stderr.isatty()


BOARD = _Board()


@contextmanager
def activity(name: str) -> Iterator[None]:
    """Show `name` as running (with its phase) until the block ends."""
    act = BOARD.start(name)
    try:
        yield
    finally:
        BOARD.finish(act)


@contextmanager
def paused() -> Iterator[None]:
    """Keep the status line off the terminal while a progress bar draws there."""
    with BOARD.lock:
        BOARD.clear()
        BOARD.paused += 1
    try:
        yield
    finally:
        with BOARD.lock:
            BOARD.paused -= 1
