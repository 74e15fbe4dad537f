"""Template versions: every publish of an image becomes a new version of one base template.

Why versions and not name-stamped templates: oVirt VMs and pools can be set to use the
*latest* version of a template, so a nightly publish reaches them without anyone editing a
pool. The engine's rules (AddVmTemplateCommand, RemoveVmTemplateCommand) shape this module:
the first publish creates the base template; later ones POST a template whose
`<version><base_template id/><version_name/></version>` names the base (the engine numbers
them and gives them the base's name); a version that a VM was made from cannot be removed, and
the base cannot be removed while any other version exists. So `keep: N` keeps the newest N,
and of the older ones removes those no VM uses, saying for every kept one why.
"""

from __future__ import annotations

from typing import Any

from imagepipe import ui
from imagepipe.targets.ovirt import engine as eng
from imagepipe.targets.ovirt.connection import describe_sdk_error, engine_errors


def version_number(tpl: Any) -> int:
    v = getattr(tpl, "version", None)
    return int(getattr(v, "version_number", None) or 1)


def base_id(tpl: Any) -> str:
    v = getattr(tpl, "version", None)
    base = getattr(v, "base_template", None) if v is not None else None
    return str(getattr(base, "id", None) or tpl.id)


def label(tpl: Any) -> str:
    name = getattr(getattr(tpl, "version", None), "version_name", None) or "?"
    return f"{tpl.name} v{version_number(tpl)} ({name})"


def family(con: Any, name: str) -> list[Any]:
    """Every template named `name` (a base and its versions share the name), newest first."""
    with engine_errors(f"listing the versions of template {name!r}"):
        found = con.system_service().templates_service().list(search=f"name={eng._quote(name)}")
    return sorted((t for t in found if t.name == name), key=version_number, reverse=True)


def find_base(templates: list[Any]) -> Any | None:
    return next((t for t in templates if base_id(t) == t.id), None)


def new_version(base: Any | None, version_name: str) -> Any:
    """The `<version>` element of the template to add: only a name for the first (base)
    template, the base's id plus the name for every later one."""
    from ovirtsdk4 import types

    if base is None:
        return types.TemplateVersion(version_name=version_name)
    return types.TemplateVersion(base_template=types.Template(id=base.id),
                                 version_name=version_name)


def _users(con: Any) -> dict[str, list[str]]:
    """template id -> names of the VMs whose `<template id>` is that version."""
    with engine_errors("listing VMs to see which template versions are in use"):
        vms = con.system_service().vms_service().list()
    users: dict[str, list[str]] = {}
    for vm in vms:
        if vm.template is not None and vm.template.id:
            users.setdefault(vm.template.id, []).append(vm.name)
    return users


def retain(con: Any, name: str, base: str, keep: int) -> tuple[list[str], list[dict[str, Any]]]:
    """Remove the versions of base `base` older than the newest `keep` that no VM uses.
    Returns (removed labels, kept [{id, version, label, reason}])."""
    versions = [t for t in family(con, name) if base_id(t) == base]
    users = _users(con)
    removed: list[str] = []
    kept: list[dict[str, Any]] = []

    def keep_it(tpl: Any, reason: str) -> None:
        kept.append({"id": tpl.id, "version_number": version_number(tpl),
                     "version_name": getattr(tpl.version, "version_name", None),
                     "label": label(tpl), "reason": reason})
        ui.info(f"keeping {label(tpl)}: {reason}")

    for i, tpl in enumerate(versions):
        if i < keep:
            keep_it(tpl, f"one of the newest {keep}")
        elif tpl.id == base:
            keep_it(tpl, "the base template: the engine removes it only after all its "
                         "other versions")
        elif users.get(tpl.id):
            keep_it(tpl, f"used by VM {', '.join(sorted(users[tpl.id]))}")
        else:
            refusal = _remove(con, tpl)
            if refusal:
                keep_it(tpl, f"the engine refused to remove it: {refusal}")
            else:
                removed.append(label(tpl))
                ui.info(f"removed old version {label(tpl)}")
    return removed, kept


def _remove(con: Any, tpl: Any) -> str | None:
    """Remove one version; the engine's refusal text if it says no (in use), None if gone.
    A 409 "locked" is retried by remove_entity; any other 409 is an answer, not a wait."""
    import ovirtsdk4 as sdk

    service = con.system_service().templates_service().template_service(tpl.id)
    try:
        service.remove()
    except sdk.NotFoundError:
        return None
    except sdk.Error as exc:
        text = describe_sdk_error(exc)
        if getattr(exc, "code", None) != 409 or "locked" in text.lower():
            eng.remove_entity(service, f"old version {label(tpl)}", 120)
            return None
        return text
    eng.remove_entity(service, f"old version {label(tpl)}", 120)  # waits until it is gone
    return None
