"""imagepipe.lifecycle.Started: a start that fails half way undoes what it had started;
leaving the block undoes everything, last started first."""

from __future__ import annotations

import pytest

from imagepipe.lifecycle import Started


class _Chain(Started):
    def __init__(self, fail_at: int | None = None) -> None:
        super().__init__()
        self.fail_at = fail_at
        self.undone: list[int] = []

    def _start(self) -> None:
        for i in range(3):
            if i == self.fail_at:
                raise KeyboardInterrupt  # a Ctrl-C during start-up counts too
            self._stack.callback(self.undone.append, i)


def test_leaving_the_block_undoes_everything_in_reverse() -> None:
    with _Chain() as c:
        assert c.undone == []
    assert c.undone == [2, 1, 0]


def test_a_failed_start_undoes_what_it_had_started() -> None:
    c = _Chain(fail_at=2)
    with pytest.raises(KeyboardInterrupt):
        with c:
            raise AssertionError("the block must not run")
    assert c.undone == [1, 0]
