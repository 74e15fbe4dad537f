"""The typed results (seal, lints, customize, guest work, boot test) serialize to exactly the
manifest/--json records the dict-returning code wrote: same keys, same order, absent steps
left out."""

from __future__ import annotations

from imagepipe.boot.run import BootReport, CheckResult
from imagepipe.guest.customize import CustomizeResult
from imagepipe.guest.seal.lints import LintReport
from imagepipe.guest.seal.run import SealCheck, SealReport, Verification
from imagepipe.guest.work import GuestWork


def _sealed() -> SealCheck:
    report = SealReport(["machine-id"], ["x"], 1, {"machine-id": ["/a"]}, {}, False)
    return SealCheck(report, LintReport(["eth0"], []), Verification(["machine-id"]))


def test_seal_records() -> None:
    sealed = _sealed()
    assert list(sealed.seal.to_json()) == ["operations", "skipped", "files_removed", "removed",
                                           "edited", "dry_run"]
    assert sealed.to_json() == {
        "seal": {"operations": ["machine-id"], "skipped": ["x"], "files_removed": 1},
        "lints": {"passed": True, "static_ip_allowed": ["eth0"], "password_allowed": []},
        "verification": {"verified": True, "checks": ["machine-id"]},
    }
    assert list(sealed.to_json()["seal"]) == ["operations", "skipped", "files_removed"]


def test_lint_record_gets_cloud_config_last() -> None:
    lints = LintReport()
    lints.cloud_config = {"user_data": []}
    assert list(lints.to_json()) == ["passed", "static_ip_allowed", "password_allowed",
                                     "cloud_config"]


def test_customize_record_leaves_out_what_did_not_run() -> None:
    assert CustomizeResult().to_json() == {}
    rec = CustomizeResult(warnings=[], packages=["nginx"], commands=2).to_json()
    assert rec == {"warnings": [], "packages": ["nginx"], "commands": 2}


def test_guest_work_record_order() -> None:
    work = GuestWork({"distro": "debian"}, CustomizeResult(packages=["a"]), None, _sealed(),
                     None, {"format": "deb"}, {"trimmed": True})
    assert list(work.to_json()) == ["guest", "customize", "seal", "lints", "verification",
                                    "guest_agent", "inventory", "lean"]
    work.cloud_init = {"instance_id": "iid-1"}
    assert list(work.to_json())[:3] == ["guest", "customize", "cloud_init"]


def test_boot_report_record() -> None:
    report = BootReport(False, [CheckResult("login", detail="not seen within 20s")], None, None,
                        21.5, False, "/logs/console.log", "iid-2", {}, "nocloud", "vm-1", "",
                        "bios", "virtio")
    rec = report.to_json()
    assert list(rec) == ["passed", "checks", "time_to_login", "time_to_cloud_init_final",
                         "seconds", "clean_shutdown", "console_log", "instance_id",
                         "guest_identity", "datasource", "hostname", "datasource_used",
                         "firmware", "hardware"]
    assert rec["checks"] == [{"name": "login", "passed": False, "seconds": None,
                              "detail": "not seen within 20s"}]
