"""The local imageio checksum: the cancellable private path (tested imageio) and the public
fallback (any other imageio, with one warning) give the same result, read through a real
qemu-nbd; resuming refuses an untested imageio with a clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagepipe.targets.ovirt import imageio_private as private
from imagepipe.targets.ovirt.transfer import ALGORITHM, BLOCK_SIZE, local_checksum
from tests.integration.ovirt_helpers import MiB, make_image

pytestmark = [pytest.mark.ovirt, pytest.mark.qemu]


def test_private_path_and_public_fallback_agree(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    from ovirt_imageio import client

    image = make_image(tmp_path / "disk.qcow2", size=16 * MiB, chunks=((1, 1), (9, 2)))
    public = client.checksum(str(image), block_size=BLOCK_SIZE, algorithm=ALGORITHM)
    assert local_checksum(image) == public  # the private, cancellable operation
    assert "outside the tested range" not in capsys.readouterr().err

    monkeypatch.setattr(private, "installed_version", lambda: "2.9.0")
    private._warn_untested.cache_clear()
    assert local_checksum(image) == public
    assert local_checksum(image) == public
    err = capsys.readouterr().err
    assert err.count("ovirt-imageio 2.9.0 is outside the tested range 2.5.x") == 1, err


def test_resume_refuses_untested_imageio(tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from imagepipe.targets.ovirt.connection import EngineConfig
    from imagepipe.targets.ovirt.resume import resend_differing

    monkeypatch.setattr(private, "installed_version", lambda: "2.9.0")
    image = make_image(tmp_path / "disk.qcow2", size=4 * MiB, chunks=((1, 1),))
    cfg = EngineConfig.__new__(EngineConfig)  # never used: refused before any connection
    with pytest.raises(private.UntestedImageio, match="resuming an upload needs"):
        resend_differing(image, "https://127.0.0.1:1/images/x", cfg)
