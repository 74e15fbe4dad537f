"""`imagepipe convert` and `imagepipe info` run as a user runs them: bad input exits 2 and
writes nothing; good input prints sizes and sha256; --json gives one result event."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.integration.convert_helpers import identical, listing, make_raw, to_format


@pytest.fixture
def work(tmp_path: Path) -> Path:
    make_raw(tmp_path / "disk.raw")
    to_format(tmp_path / "disk.raw", "qcow2", tmp_path / "disk.qcow2")
    return tmp_path


def _flat_vmdk(work: Path) -> Path:
    """A monolithicFlat vmdk: a text descriptor plus its `-flat` extent next to it."""
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "vmdk", "-o",
                    "subformat=monolithicFlat", str(work / "disk.raw"), str(work / "flat.vmdk")],
                   check=True)
    return work / "flat.vmdk"


@pytest.mark.qemu
def test_flat_vmdk_with_its_own_extent_is_accepted(work: Path) -> None:
    res = run_cli("convert", str(_flat_vmdk(work)), str(work / "out.qcow2"))
    assert res.returncode == 0, res.stderr
    assert identical(work / "disk.raw", "raw", work / "out.qcow2", "qcow2")


def _setup_bad(work: Path, case: str) -> list[str]:
    """Prepare the directory for one bad-input case and return the CLI arguments."""
    src, q = str(work / "disk.raw"), str(work / "disk.qcow2")
    if case == "dst-exists":
        return ["convert", src, q]
    if case == "same-file":
        return ["convert", "--force", q, q]
    if case == "same-file-other-name":
        (work / "link.qcow2").hardlink_to(work / "disk.qcow2")
        return ["convert", "--force", q, str(work / "link.qcow2")]
    if case == "raw-named-qcow2":
        shutil.copy(work / "disk.raw", work / "fake.qcow2")
        return ["convert", str(work / "fake.qcow2"), str(work / "out.vmdk")]
    if case == "qcow2-named-vmdk":
        shutil.copy(work / "disk.qcow2", work / "fake.vmdk")
        return ["convert", str(work / "fake.vmdk"), str(work / "out.raw")]
    if case == "backing-file":
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", "/etc/shadow", "-F",
                        "raw", str(work / "evil.qcow2")], check=True)
        return ["convert", str(work / "evil.qcow2"), str(work / "out.raw")]
    if case == "vmdk-extent-elsewhere":
        _flat_vmdk(work)
        (work / "shadow-flat.vmdk").symlink_to("/etc/shadow")
        text = (work / "flat.vmdk").read_text().replace('"flat-flat.vmdk"', '"shadow-flat.vmdk"')
        (work / "evil.vmdk").write_text(text)
        return ["convert", str(work / "evil.vmdk"), str(work / "out.raw")]
    if case == "unknown-extension":
        return ["convert", src, str(work / "out.bin")]
    if case == "extension-vs-to":
        return ["convert", src, str(work / "out.qcow2"), "--to", "vmdk"]
    if case == "missing-src":
        return ["convert", str(work / "nope.raw"), str(work / "out.qcow2")]
    if case == "src-is-directory":
        (work / "dir.raw").mkdir()
        return ["convert", str(work / "dir.raw"), str(work / "out.qcow2")]
    if case == "missing-dst-dir":
        return ["convert", src, str(work / "no" / "out.qcow2")]
    if case == "bad-option-key":
        return ["convert", src, str(work / "out.qcow2"), "--options", "backing_file=/etc/passwd"]
    if case == "bad-option-syntax":
        return ["convert", src, str(work / "out.qcow2"), "--options", "cluster_size"]
    if case == "bad-option-value":
        return ["convert", src, str(work / "out.qcow2"), "--options", "cluster_size=banana"]
    if case == "unknown-preset":
        return ["convert", src, str(work / "out.qcow2"), "--preset", "nope"]
    if case == "preset-vs-to":
        return ["convert", src, str(work / "out.vmdk"), "--preset", "vsphere", "--to", "qcow2"]
    if case == "unknown-format":
        return ["convert", src, str(work / "out.qed"), "--to", "qed"]
    if case == "compress-raw":
        return ["convert", q, str(work / "out.raw"), "--compress"]
    if case == "azure-odd-size":
        make_raw(work / "odd.raw", size=(4 << 20) + 512, pattern=[(100, b"x")])
        return ["convert", str(work / "odd.raw"), str(work / "out.vhd"), "--preset", "azure"]
    if case == "no-args":
        return ["convert", src]
    raise AssertionError(case)


BAD = ["dst-exists", "same-file", "same-file-other-name", "raw-named-qcow2", "qcow2-named-vmdk",
       "backing-file", "vmdk-extent-elsewhere", "unknown-extension", "extension-vs-to",
       "missing-src", "src-is-directory",
       "missing-dst-dir", "bad-option-key", "bad-option-syntax", "bad-option-value",
       "unknown-preset", "preset-vs-to", "unknown-format", "compress-raw", "azure-odd-size",
       "no-args"]

EXPECT_IN_MESSAGE = {
    "dst-exists": "already exists", "same-file": "same file", "same-file-other-name": "same file",
    "raw-named-qcow2": "says qcow2 but the content is raw",
    "qcow2-named-vmdk": "says vmdk but the content is qcow2",
    "backing-file": "/etc/shadow", "vmdk-extent-elsewhere": "(resolves to /etc/shadow)",
    "unknown-extension": "--to", "missing-src": "no such file",
    "bad-option-key": "backing_file", "azure-odd-size": "--resize",
    "bad-option-value": "cluster_size",
}


@pytest.mark.qemu
@pytest.mark.parametrize("case", BAD)
def test_bad_input_exits_2_and_writes_nothing(work: Path, case: str) -> None:
    args = _setup_bad(work, case)
    before = listing(work)
    digests = {n: hashlib.sha256((work / n).read_bytes()).hexdigest()
               for n in before if (work / n).is_file()}
    res = run_cli(*args)
    assert res.returncode == 2, (case, res.stdout, res.stderr)
    assert EXPECT_IN_MESSAGE.get(case, "") in res.stderr, res.stderr
    assert "Traceback" not in res.stderr
    assert listing(work) == before
    for n, d in digests.items():
        assert hashlib.sha256((work / n).read_bytes()).hexdigest() == d, n


@pytest.mark.qemu
def test_allow_backing_and_force(work: Path) -> None:
    base = work / "disk.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(base), "-F", "qcow2",
                    str(work / "top.qcow2")], check=True)
    res = run_cli("convert", str(work / "top.qcow2"), str(work / "flat.raw"), "--allow-backing")
    assert res.returncode == 0, res.stderr
    assert identical(work / "disk.raw", "raw", work / "flat.raw", "raw")
    res = run_cli("convert", str(work / "disk.raw"), str(work / "disk.qcow2"), "--force",
                  "--preset", "kvm")
    assert res.returncode == 0, res.stderr
    assert sorted(listing(work)) == ["disk.qcow2", "disk.raw", "flat.raw", "top.qcow2"]


@pytest.mark.qemu
def test_human_output(work: Path) -> None:
    res = run_cli("convert", str(work / "disk.qcow2"), str(work / "out.vmdk"))
    assert res.returncode == 0, res.stderr
    out = res.stdout
    digest = hashlib.sha256((work / "out.vmdk").read_bytes()).hexdigest()
    for want in ("virtual size:    4 MiB (4194304 bytes)", "file size:", "allocated size:",
                 f"sha256:          {digest}", "format:          vmdk (monolithicSparse)"):
        assert want in out, out
    assert "converting" in res.stderr


@pytest.mark.qemu
def test_json_result_event(work: Path) -> None:
    res = run_cli("--json", "convert", str(work / "disk.raw"), str(work / "out.vhdx"),
                  "--no-verify")
    assert res.returncode == 0, res.stderr
    events = [json.loads(line) for line in res.stdout.splitlines()]
    result = [e for e in events if e["event"] == "result"]
    assert len(result) == 1
    r = result[0]
    assert r["format"] == "vhdx" and r["virtual_size"] == 4 << 20 and r["verified"] is False
    assert r["sha256"] is None  # a separate full read: only with verification or --checksum
    assert r["file_size"] == (work / "out.vhdx").stat().st_size
    assert {"stage"} <= {e["event"] for e in events}
    res = run_cli("convert", "--json", str(work / "disk.raw"), str(work / "c.vdi"),
                  "--no-verify", "--checksum")
    r = [json.loads(x) for x in res.stdout.splitlines() if '"result"' in x][0]
    assert r["sha256"] == hashlib.sha256((work / "c.vdi").read_bytes()).hexdigest()


@pytest.mark.qemu
def test_json_error_event(work: Path) -> None:
    res = run_cli("--json", "convert", str(work / "disk.raw"), str(work / "disk.qcow2"))
    assert res.returncode == 2
    err = [json.loads(x) for x in res.stdout.splitlines()][-1]
    assert err["event"] == "error" and err["exit_code"] == 2 and "already exists" in err["message"]


def test_list_presets() -> None:
    res = run_cli("convert", "--list-presets")
    assert res.returncode == 0, res.stderr
    for name in ("kvm", "ovirt", "compressed", "vsphere", "workstation", "azure", "hyperv",
                 "virtualbox"):
        assert name in res.stdout
    assert "subformat=streamOptimized,adapter_type=lsilogic" in res.stdout
    res = run_cli("--json", "convert", "--list-presets")
    presets = json.loads(res.stdout)["presets"]
    assert {p["name"]: p["format"] for p in presets}["azure"] == "vhd"


@pytest.mark.qemu
def test_info_text_json_and_checksum(work: Path) -> None:
    q = work / "disk.qcow2"
    res = run_cli("info", str(q))
    assert res.returncode == 0, res.stderr
    assert "format:          qcow2 (compat 1.1)" in res.stdout
    assert "virtual size:    4 MiB (4194304 bytes)" in res.stdout
    assert "backing chain:   none" in res.stdout and "corrupt:         no" in res.stdout
    for args in (["info", "--json", "--checksum", str(q)],
                 ["--json", "info", "--checksum", str(q)]):
        res = run_cli(*args)
        d = json.loads(res.stdout)
        assert d["event"] == "result" and d["format"] == "qcow2"
        assert d["sha256"] == hashlib.sha256(q.read_bytes()).hexdigest()
        assert d["file_size"] == q.stat().st_size
        assert d["allocated_size"] == q.stat().st_blocks * 512
        assert d["corrupt"] is False and d["dirty"] is False and d["backing_chain"] == []


@pytest.mark.qemu
def test_info_backing_chain_and_warnings(work: Path) -> None:
    mid = work / "mid.qcow2"
    top = work / "top.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(work / "disk.qcow2"),
                    "-F", "qcow2", str(mid)], check=True)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(mid), "-F", "qcow2",
                    str(top)], check=True)
    d = json.loads(run_cli("--json", "info", str(top)).stdout.splitlines()[-1])
    assert [b["path"] for b in d["backing_chain"]] == [str(mid), str(work / "disk.qcow2")]
    assert all(b["opened"] for b in d["backing_chain"])
    shutil.copy(work / "disk.raw", work / "fake.vhd")
    res = run_cli("info", str(work / "fake.vhd"))
    assert res.returncode == 0
    assert "says vhd but the content is raw" in res.stderr


@pytest.mark.qemu
def test_info_bad_input(work: Path) -> None:
    res = run_cli("info", str(work / "missing.qcow2"))
    assert res.returncode == 2 and "no such file" in res.stderr


@pytest.mark.qemu
def test_ova_destination_dispatches_to_the_ova_writer(work: Path) -> None:
    import tarfile

    res = run_cli("convert", str(work / "disk.qcow2"), str(work / "vm.ova"))
    assert res.returncode == 0, res.stderr
    with tarfile.open(work / "vm.ova") as tar:
        names = tar.getnames()
    assert names[0] == "vm.ovf" and any(n.endswith(".vmdk") for n in names)
    assert "wrote" in res.stdout and "ova" in res.stdout
    # Input safety applies before the OVA writer runs.
    shutil.copy(work / "disk.raw", work / "fake.qcow2")
    res = run_cli("convert", str(work / "fake.qcow2"), str(work / "x.ova"))
    assert res.returncode == 2 and not (work / "x.ova").exists()
