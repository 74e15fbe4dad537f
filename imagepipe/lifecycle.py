"""`Started`: the base of objects used as `with X(...) as x:` that start several things.

Why one base: a VM or the engine simulator starts a chain of things (temp dirs, daemons,
processes, threads), each of which registers its own undo on `self._stack` as soon as it
exists. A start that fails half way must undo what it had already done (nothing may leak when
`__enter__` raises, since `__exit__` is then never called), and leaving the block undoes
everything in reverse order. Written once, the two users cannot drift apart.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import Self


class Started:
    """Subclasses implement `_start()`, registering every clean-up on `self._stack`."""

    def __init__(self) -> None:
        self._stack = ExitStack()

    def _start(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        try:
            self._start()
        except BaseException:  # Ctrl-C during start-up too: undo what was started
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()
