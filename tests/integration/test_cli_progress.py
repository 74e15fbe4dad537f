"""A long stage is never silent: phases and elapsed time on a terminal, `phase` and
`heartbeat` events with --json (a real build on qemu-img with a deliberately slow convert)."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from imagepipe import activity, stages, ui
from imagepipe.pipeline import BuildOptions, build
from imagepipe.stages.base import Artifact, StageContext
from imagepipe.stages.convert import ConvertStage
from tests.integration.pipeline_helpers import HttpServer, image_recipe, make_qcow2, sha256

pytestmark = pytest.mark.qemu


class SlowConvert(ConvertStage):
    """Says two phases, each followed by a quiet subprocess, then converts for real."""

    def run(self, ctx: StageContext, inputs: Mapping[str, Artifact]) -> Artifact:
        ui.phase("warming up")
        ctx.run(["sleep", "1.2"])
        ui.phase("still warming up")
        ctx.run(["sleep", "1.2"])
        return super().run(ctx, inputs)


@pytest.fixture
def slow(monkeypatch: pytest.MonkeyPatch, http_root: Path) -> tuple[str, str]:
    monkeypatch.setitem(stages.STAGES, "convert", f"{__name__}:SlowConvert")
    # the real intervals are 1 s (terminal) and 10 s (events); scaled down for the test
    monkeypatch.setattr(activity, "TICK_S", 0.1)
    monkeypatch.setattr(activity, "HEARTBEAT_S", 0.5)
    img = make_qcow2(http_root / "slow.qcow2")
    return img.name, sha256(img)


def _build(tmp: Path, server: HttpServer, slow: tuple[str, str]) -> None:
    recipe = image_recipe(tmp, f"{server.url}/{slow[0]}", slow[1])
    assert build(recipe, BuildOptions(store=tmp / "store")).ok


def test_json_events_never_pause(tmp_path: Path, server: HttpServer, slow: tuple[str, str],
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(ui.settings, "json", True)
    _build(tmp_path, server, slow)
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    phases = [(e["stage"], e["phase"]) for e in events if e["event"] == "phase"]
    assert ("convert.qcow2", "warming up") in phases
    assert ("convert.qcow2", "still warming up") in phases
    assert ("convert.qcow2", "convert") in phases  # the nested ui.stage becomes a phase
    beats = [e for e in events if e["event"] == "heartbeat"]
    assert beats and all(a["elapsed"] >= a["phase_elapsed"] for b in beats for a in b["active"])
    assert {a["stage"] for b in beats for a in b["active"]} >= {"convert.qcow2"}
    times = [e["time"] for e in events]
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert max(gaps) < 0.9, gaps  # HEARTBEAT_S (0.5 s here, 10 s for real) + scheduling slack


def test_terminal_status_line(tmp_path: Path, server: HttpServer, slow: tuple[str, str],
                              monkeypatch: pytest.MonkeyPatch) -> None:
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    monkeypatch.setattr(activity, "_tty", lambda: True)
    monkeypatch.setattr(ui.settings, "json", False)
    _build(tmp_path, server, slow)
    text = err.getvalue()
    status = [chunk for chunk in text.split("\r") if chunk.startswith("convert.qcow2 ")]
    assert any(": warming up (" in s for s in status), text
    assert any(": still warming up (" in s for s in status), text
    assert "done convert.qcow2 in" in text  # other lines still arrive, the status is cleared
    assert activity.BOARD.active == []
