"""The seal registry refuses badly named or summarized operations (like virt-sysprep's build
checks) and runs only the read-back checks of operations that ran."""

from __future__ import annotations

from typing import Any

import pytest

from imagepipe.errors import ImagepipeError
from imagepipe.guest.seal import NAME_RE, REGISTRY, SUMMARY_MAX, operations, register
from imagepipe.guest.seal.run import verify


def _noop(ctx: Any) -> None:
    return None


@pytest.mark.parametrize(
    ("name", "summary", "message"),
    [
        ("Machine-Id", "Remove it", "lowercase words"),
        ("machine_id", "Remove it", "lowercase words"),
        ("-machine", "Remove it", "lowercase words"),
        ("machine-", "Remove it", "lowercase words"),
        ("", "Remove it", "lowercase words"),
        ("defaults", "Remove it", "selection keyword"),
        ("x-op", "", "one non-empty line"),
        ("x-op", "Remove\nit", "one non-empty line"),
        ("x-op", " Remove it", "one non-empty line"),
        ("x-op", "remove it", "capital"),
        ("x-op", "Remove it.", "final period"),
        ("x-op", "R" * (SUMMARY_MAX + 1), "longer than"),
    ],
)
def test_register_rejects_bad_names_and_summaries(name: str, summary: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        register(name, default=False, summary=summary)
    assert name not in REGISTRY


def test_every_registered_operation_passes_the_checks() -> None:
    ops = operations()
    for name, op in ops.items():
        assert NAME_RE.fullmatch(name), name
        assert op.summary[0].isupper() and not op.summary.endswith("."), name
    # the operations whose outcome a clone depends on read themselves back
    assert {n for n, op in ops.items() if op.verify} >= {
        "ssh-hostkeys", "machine-id", "cloud-init-state", "udev-persistent-net"}


def test_register_twice_is_refused() -> None:
    operations()
    with pytest.raises(ValueError, match="registered twice"):
        register("machine-id", default=True, summary="Again")(_noop)


class _Guest:
    """Just enough of a GuestSession for the read-back checks: a set of existing paths."""

    def __init__(self, files: dict[str, str]) -> None:
        self.files = files

    def glob(self, pattern: str) -> list[str]:
        import fnmatch

        return sorted(p for p in self.files if fnmatch.fnmatch(p, pattern))

    def exists(self, path: str) -> bool:
        return path in self.files

    is_file = exists

    def is_symlink(self, path: str) -> bool:
        return False

    def read_text(self, path: str) -> str:
        return self.files[path]


def test_verify_checks_only_the_operations_that_ran() -> None:
    guest: Any = _Guest({"/etc/ssh/ssh_host_rsa_key": "k", "/etc/machine-id": "\n"})
    # the key is there, but ssh-hostkeys did not run: nothing to check, nothing reported
    assert verify(guest, ["machine-id", "bash-history"]).to_json() == {
        "verified": True, "checks": ["machine-id"]}
    with pytest.raises(ImagepipeError, match="SSH host key still present"):
        verify(guest, ["machine-id", "ssh-hostkeys"])
    guest.files["/etc/machine-id"] = "0123abcd\n"
    with pytest.raises(ImagepipeError, match=r"machine-id still holds an id \(0123abcd\)"):
        verify(guest, ["machine-id"])
