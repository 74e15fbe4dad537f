"""The simulator's XML rules and search language, without a server (fast, table-driven)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from imagepipe.testing.ovirt_engine.state import Core, Faults
from imagepipe.testing.ovirt_engine.xmlio import Fault, parse, render, render_list, require


def test_render_entity_shape() -> None:
    body = render("disk", {"href": "/ovirt-engine/api/disks/D", "id": "D", "name": "n",
                           "sparse": True, "provisioned_size": 5, "_path": "/secret",
                           "storage_domains": [{"href": "/ovirt-engine/api/storagedomains/S",
                                                "id": "S"}],
                           "links": [("disksnapshots", "/ovirt-engine/api/disks/D/snaps")],
                           "initial_size": None})
    assert body.startswith(b"<?xml version='1.0' encoding='utf-8'?>")
    root = ET.fromstring(body)
    assert (root.tag, root.get("href"), root.get("id")) == ("disk", "/ovirt-engine/api/disks/D",
                                                             "D")
    assert root.findtext("sparse") == "true" and root.findtext("provisioned_size") == "5"
    assert root.find("_path") is None and root.find("initial_size") is None
    sd = root.find("storage_domains/storage_domain")
    assert sd is not None and sd.get("id") == "S"
    link = root.find("link")
    assert link is not None and link.get("rel") == "disksnapshots"
    lst = ET.fromstring(render_list("vnic_profiles", [{"id": "P", "name": "ovirtmgmt"}]))
    assert [c.tag for c in lst] == ["vnic_profile"]


@pytest.mark.parametrize("root,body,expected", [
    ("disk", b"<disk><bogus>1</bogus></disk>", "unexpected element 'disk/bogus'"),
    ("disk", b"<disk><storage_domains><nope/></storage_domains></disk>",
     "storage_domains/nope"),
    ("vm", b"<vm><cpu><bogus/></cpu></vm>", "vm/cpu/bogus"),
    ("disk", b"<disk>", "Request syntactically incorrect"),
    ("disk", b"<vm/>", "expected <disk>"),
    ("disk", b"", "a <disk> body is required"),
])
def test_parse_is_strict(root: str, body: bytes, expected: str) -> None:
    with pytest.raises(Fault) as err:
        parse(body, root)
    assert err.value.status == 400
    assert expected in f"{err.value.reason} {err.value.detail}"
    assert parse(b"<template/>", "template") == {} and parse(b"", "action") == {}


def test_parse_keeps_text_and_nests() -> None:
    obj = parse(b"<template><initialization><custom_script>#cloud-config\n</custom_script>"
                b"<nic_configurations><nic_configuration><name>eth0</name>"
                b"</nic_configuration></nic_configurations></initialization>"
                b"<vm id='V'/></template>", "template")
    assert obj["initialization"]["custom_script"] == "#cloud-config\n"
    assert obj["initialization"]["nic_configurations"] == [{"name": "eth0"}]
    assert obj["vm"] == {"id": "V"}
    with pytest.raises(Fault, match="Incomplete parameters") as err:
        require({"format": "cow"}, "Disk", "add", "provisioned_size", "format")
    assert err.value.detail == "Disk [provisionedSize] required for add"


def test_search_language(tmp_path: Path) -> None:
    core = Core(tmp_path)
    names = lambda coll, q, cs=True: [i["name"] for i in core.search(coll, q, cs)]  # noqa: E731
    assert names("storagedomains", "name=data1") == ["data1"]
    assert names("storagedomains", 'name="data1"') == ["data1"]
    assert names("storagedomains", "name=DATA1") == []
    assert names("storagedomains", "name=DATA1", False) == ["data1"]
    assert names("storagedomains", "name=da*") == ["data1"]
    assert names("datacenters", "Clusters.name = Default") == ["Default"]
    assert names("datacenters", "storage.name=data1") == ["Default"]
    hw = next(iter(core.hosts.values()))["_hw_id"]
    assert names("hosts", f"hw_id={hw} and datacenter=Default and status=up") == ["host1"]
    with pytest.raises(Fault, match="Invalid search"):
        core.search("hosts", "colour=blue")
    core.faults.set({"missing_storage_domain": True})
    assert names("storagedomains", None) == []


def test_fault_counters() -> None:
    f = Faults()
    f.set({"transfer_paused_system": 2, "revoke_tokens": 3})
    assert [f.take("transfer_paused_system") for _ in range(3)] == [True, True, False]
    assert [f.countdown("revoke_tokens") for _ in range(4)] == [False, False, True, False]
    with pytest.raises(ValueError, match="unknown faults"):
        f.set({"no_such_fault": True})
