"""KVM probe: a fake qemu that aborts (like this host's MSR 0x10a failure), hangs, or works."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from imagepipe.tools import accel

FAKE = """#!/bin/sh
echo "$@" >> "{log}"
case "{mode}" in
  abort) echo "qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69" >&2; kill -ABRT $$ ;;
  hang) exec sleep 120 ;;
  work) exit 0 ;;
esac
"""


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def make(mode: str) -> Path:
        log = tmp_path / "calls.log"
        script = tmp_path / f"qemu-{mode}"
        script.write_text(FAKE.format(log=log, mode=mode))
        script.chmod(0o755)
        monkeypatch.setenv("IMAGEPIPE_QEMU", str(script))
        return log

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("IMAGEPIPE_ACCEL_PROBE_IGNORE_DEVKVM", "1")
    monkeypatch.delenv("IMAGEPIPE_ACCEL", raising=False)
    monkeypatch.setattr(accel, "PROBE_TIMEOUT", 1.5)
    monkeypatch.setattr(accel, "_requested", None)
    monkeypatch.setattr(accel, "_decided", None)
    monkeypatch.setattr(accel, "_warned", False)
    return make


def _calls(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


def test_abort_falls_back_to_tcg_with_one_warning(fake, capsys) -> None:
    log = fake("abort")
    assert accel.decide_accel() == "tcg"
    assert accel.decide_accel() == "tcg"
    err = capsys.readouterr().err
    assert err.count("KVM unusable") == 1 and "MSR 0x10a" in err
    assert _calls(log) == 1
    assert "-accel kvm" in log.read_text()
    assert accel.guestfs_env() == {
        "LIBGUESTFS_BACKEND": "direct",
        "LIBGUESTFS_BACKEND_SETTINGS": "force_tcg",
    }
    assert accel.qemu_accel_args() == ["-accel", "tcg", "-cpu", "max"]


def test_hang_is_killed_within_the_timeout(fake) -> None:
    fake("hang")
    t = time.monotonic()
    works, reason = accel.probe_kvm()
    assert not works and "hang" in reason
    assert time.monotonic() - t < 1.5 + 6  # probe timeout + TERM grace


def test_working_kvm_is_used(fake) -> None:
    fake("work")
    assert accel.decide_accel() == "kvm"
    assert accel.qemu_accel_args() == ["-accel", "kvm", "-cpu", "host"]
    assert accel.guestfs_env()["LIBGUESTFS_BACKEND_SETTINGS"] == ""


def test_result_cached_per_boot(fake, monkeypatch: pytest.MonkeyPatch) -> None:
    log = fake("abort")
    assert accel.decide_accel() == "tcg"
    monkeypatch.setattr(accel, "_decided", None)
    assert accel.decide_accel() == "tcg"
    assert _calls(log) == 1  # second process-level decision came from the cache
    data = json.loads(accel.cache_path().read_text())
    assert data["boot_id"] == accel.boot_id() and data["accel"] == "tcg"
    # another boot of the host: probe again
    data["boot_id"] = "other-boot"
    accel.cache_path().write_text(json.dumps(data))
    monkeypatch.setattr(accel, "_decided", None)
    accel.decide_accel()
    assert _calls(log) == 2


def test_explicit_mode_skips_probe(fake, monkeypatch: pytest.MonkeyPatch) -> None:
    log = fake("abort")
    monkeypatch.setenv("IMAGEPIPE_ACCEL", "kvm")
    assert accel.decide_accel() == "kvm"
    accel.set_requested("tcg")  # --accel wins over the environment
    assert accel.decide_accel() == "tcg"
    assert _calls(log) == 0
    monkeypatch.setenv("IMAGEPIPE_ACCEL", "bogus")
    accel.set_requested(None)
    from imagepipe.errors import InputError

    with pytest.raises(InputError):
        accel.decide_accel()


@pytest.mark.qemu
def test_real_probe_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """On this host the real probe must answer (abort or hang detected) within its bound."""
    monkeypatch.delenv("IMAGEPIPE_QEMU", raising=False)
    t = time.monotonic()
    works, reason = accel.probe_kvm()
    assert time.monotonic() - t < accel.PROBE_TIMEOUT + 11
    assert reason
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        assert not works
