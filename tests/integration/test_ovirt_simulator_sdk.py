"""The simulator held to the unmodified ovirtsdk4: SSO error paths, token expiry, strict XML
(unknown or missing fields answered with the engine's 400 faults), 404s and 409s."""

from __future__ import annotations

import ssl
import urllib.request

import pytest

pytestmark = pytest.mark.ovirt


def _con(sim, password: str | None = None, **kw):
    import ovirtsdk4 as sdk

    return sdk.Connection(url=sim.api_url, username=sim.username,
                          password=password or sim.password, ca_file=str(sim.ca_file), **kw)


def _raw(sim, method: str, path: str, body: bytes | None = None, token: str | None = None):
    ctx = ssl.create_default_context(cafile=str(sim.ca_file))
    auth = {"Authorization": f"Bearer {token}"} if token else {}
    req = urllib.request.Request(sim.api_url + path, data=body, method=method,
                                 headers={"Content-Type": "application/xml", **auth})
    try:
        with urllib.request.urlopen(req, context=ctx) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_wrong_password_is_auth_error(sim) -> None:
    import ovirtsdk4 as sdk

    con = _con(sim, password="wrong")
    with pytest.raises(sdk.AuthError, match="access_denied : Cannot authenticate user"):
        con.test(raise_exception=True)
    con.close()


def test_untrusted_ca_is_refused(sim, tmp_path) -> None:
    import ovirtsdk4 as sdk

    from imagepipe.testing.ovirt_engine.pki import make_pki

    other = make_pki(tmp_path / "other")
    con = sdk.Connection(url=sim.api_url, username=sim.username, password=sim.password,
                         ca_file=str(other.ca_file))
    with pytest.raises(sdk.Error, match="SSL certificate"):
        con.test(raise_exception=True)


def test_revoked_token_is_renewed_once(sim) -> None:
    con = _con(sim)
    sds = con.system_service().storage_domains_service()
    assert [s.name for s in sds.list(search="name=data1")] == ["data1"]
    logins = sim.state()["logins"]
    sim.set_faults(revoke_tokens=True)
    assert [s.name for s in sds.list()] == ["data1"]
    assert sim.state()["logins"] == logins + 1
    con.close()
    assert sim.state()["logouts"] >= 1


def test_no_token_is_401(sim) -> None:
    status, body = _raw(sim, "GET", "/disks")
    assert status == 401 and body == ""


def test_strict_xml_and_faults(sim) -> None:
    import ovirtsdk4 as sdk
    from ovirtsdk4 import types

    con = _con(sim)
    con.authenticate()
    token = con._sso_token  # the SDK's own token, to send hand-written XML
    status, body = _raw(sim, "POST", "/disks", b"<disk><bogus>1</bogus></disk>", token)
    assert status == 400 and "Request syntactically incorrect" in body and "bogus" in body
    status, body = _raw(sim, "POST", "/disks", b"<disk><format>cow</format></disk>", token)
    assert status == 400 and "Incomplete parameters" in body and "provisionedSize" in body
    disks = con.system_service().disks_service()
    with pytest.raises(sdk.NotFoundError):
        disks.add(types.Disk(name="x", format=types.DiskFormat.COW, provisioned_size=1 << 20,
                             storage_domains=[types.StorageDomain(name="nope")]))
    with pytest.raises(sdk.NotFoundError):
        disks.disk_service("11111111-2222-3333-4444-555555555555").get()
    with pytest.raises(sdk.Error) as err:
        con.system_service().templates_service().add(
            types.Template(name="Blank", vm=types.Vm(id="11111111-2222-3333-4444-555555555555")))
    assert err.value.code == 409 and "already in use" in str(err.value)
    api = con.system_service().get()
    assert api.special_objects.blank_template.id == "00000000-0000-0000-0000-000000000000"
    con.close()


@pytest.mark.qemu
def test_transfer_on_locked_disk_is_409(sim) -> None:
    import ovirtsdk4 as sdk
    from ovirtsdk4 import types

    con = _con(sim)
    disks = con.system_service().disks_service()
    sim.set_faults(disk_stuck_locked=2)
    disk = disks.add(types.Disk(name="locked", format=types.DiskFormat.RAW,
                                provisioned_size=1 << 20,
                                storage_domains=[types.StorageDomain(name="data1")]))
    assert disk.status == types.DiskStatus.LOCKED
    with pytest.raises(sdk.Error) as err:
        con.system_service().image_transfers_service().add(
            types.ImageTransfer(disk=types.Disk(id=disk.id), format=types.DiskFormat.RAW))
    assert err.value.code == 409 and "Disk is locked" in str(err.value)
    with pytest.raises(sdk.Error):
        disks.disk_service(disk.id).remove()
    import time

    time.sleep(2.5)
    disks.disk_service(disk.id).remove()
    con.close()


def _new_disk(con, name: str):
    from ovirtsdk4 import types

    disks = con.system_service().disks_service()
    disk = disks.add(types.Disk(name=name, format=types.DiskFormat.COW,
                                provisioned_size=8 << 20,
                                storage_domains=[types.StorageDomain(name="data1")]))
    _until(lambda: disks.disk_service(disk.id).get().status == types.DiskStatus.OK)
    return disk


def _until(cond, timeout: float = 20) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.qemu
def test_transfer_phases_pause_resume_and_inactivity(sim) -> None:
    """Phase machine: URLs only once a ticket exists; pause/resume; wrong-phase 409;
    an idle transfer with timeout_policy=cancel is cancelled by the system and its disk removed."""
    import ovirtsdk4 as sdk
    from ovirtsdk4 import types

    con = _con(sim)
    transfers = con.system_service().image_transfers_service()
    disk = _new_disk(con, "phases")
    t = transfers.add(types.ImageTransfer(disk=types.Disk(id=disk.id),
                                          format=types.DiskFormat.RAW, inactivity_timeout=1,
                                          timeout_policy=types.ImageTransferTimeoutPolicy.CANCEL))
    assert t.phase == types.ImageTransferPhase.INITIALIZING and t.transfer_url is None
    service = transfers.image_transfer_service(t.id)
    _until(lambda: service.get().phase == types.ImageTransferPhase.TRANSFERRING)
    t = service.get()
    assert t.transfer_url and t.proxy_url and t.host.id
    assert con.follow_link(t.host).name == "host1"
    ticket = t.transfer_url.rsplit("/", 1)[1]
    assert sim.daemon.get_ticket(ticket)["transfer_id"] == t.id
    with pytest.raises(sdk.Error) as err:
        service.resume()
    assert err.value.code == 409
    service.pause()
    assert service.get().phase == types.ImageTransferPhase.PAUSED_USER
    service.resume()
    _until(lambda: service.get().phase == types.ImageTransferPhase.TRANSFERRING)
    # No client activity for > inactivity_timeout: cancelled_system -> disk removed.
    _until(lambda: service.get().phase == types.ImageTransferPhase.FINISHED_FAILURE, 30)
    with pytest.raises(sdk.NotFoundError):
        con.system_service().disks_service().disk_service(disk.id).get()
    assert sim.daemon.get_ticket(ticket) is None
    con.close()
