"""The clean-up paths inside convert_image, with faults injected at exact points: a failed
verification and Ctrl-C during verification (while the sha256 thread runs) leave nothing."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from imagepipe import ui
from imagepipe.convert import VerificationError, convert_image, rules
from imagepipe.convert import image as engine
from imagepipe.tools import qemu_img
from tests.integration.convert_helpers import listing, make_raw

MiB = 1 << 20


@pytest.fixture
def src(tmp_path: Path) -> Path:
    d = tmp_path / "src"
    d.mkdir()
    return make_raw(d / "disk.raw", size=64 * MiB,
                    pattern=[(i * 8 * MiB, b"\x5a" * MiB) for i in range(8)])


@pytest.mark.qemu
def test_failed_preset_rule_leaves_nothing(src: Path, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(rules.FORMAT_RULES, "qcow2", lambda p: ["injected problem"])
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(VerificationError, match="injected problem"):
        convert_image(src, out / "d.qcow2", preset="kvm")
    assert listing(out) == []


@pytest.mark.qemu
def test_interrupt_during_verification_stops_hashing_and_cleans_up(
        src: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    out.mkdir()

    def interrupted_compare(*a: object, **kw: object) -> bool:
        raise KeyboardInterrupt

    monkeypatch.setattr(qemu_img, "compare", interrupted_compare)
    before = {t.name for t in threading.enumerate()}
    with pytest.raises(KeyboardInterrupt):
        convert_image(src, out / "d.raw")
    assert listing(out) == []
    assert "sha256" not in {t.name for t in threading.enumerate()} - before


def test_lazy_progress_emits_json_events(monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """Conversions longer than the delay report progress (here: delay 0, --json mode)."""
    from contextlib import ExitStack

    monkeypatch.setattr(ui.settings, "json", True)
    with ExitStack() as stack:
        p = engine._LazyProgress(stack, "convert to qcow2", 1000, delay=0)
        for pct in (0.0, 5.0, 12.5, 50.0, 100.0):
            p(pct)
    events = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [e["percent"] for e in events] == [0, 12, 50, 100]
    assert events[-1]["done"] == 1000
