"""ovirt-imageio's private API is used only inside a tested version range, and the installed
imageio is inside it (upgrading imageio fails here first: re-test, then widen the range)."""

from __future__ import annotations

import pytest

from imagepipe.targets.ovirt import imageio_private as private


@pytest.mark.parametrize(("version", "tested"), [
    ("2.5.0", True), ("2.5.1", True), ("2.5.12rc1", True), ("2.5.1+local", True),
    ("2.4.9", False), ("2.6.0", False), ("3.0", False), ("1.6.4", False),
])
def test_range(version: str, tested: bool) -> None:
    assert private.is_tested(version) is tested


def test_installed_imageio_is_tested() -> None:
    assert private.is_tested(private.installed_version()), private.installed_version()


def test_outside_the_range_is_refused_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(private, "installed_version", lambda: "2.9.0")
    with pytest.raises(private.UntestedImageio) as err:
        private.require_tested("resuming an upload")
    text = str(err.value) + " " + str(err.value.hint)
    assert "resuming an upload" in text and "2.9.0" in text and private.TESTED_TEXT in text
    assert "pip install" in text
