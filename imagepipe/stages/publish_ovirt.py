"""Stage `publish.ovirt`: the built image becomes an oVirt template (thin wrapper).

Why a record artifact: publishing has an outside effect (a template on an engine) and produces
no file; the manifest records what was made (disk id, template id and name, the verified
checksum) so a later build can be traced to the template it published. Not cacheable: the
engine's state is not ours, so the stage runs every build (and is idempotent by checksum).
The password file's *path* is an option, never its content or hash.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imagepipe.artifact import Artifact
from imagepipe.errors import InputError
from imagepipe.recipe.model import Recipe, TemplateOptions, template_fields
from imagepipe.stages.base import Stage, StageContext


@dataclass(frozen=True)
class _PublishTarget:
    """The stage options before the template's VM (this order is the manifest's)."""

    storage_domain: str
    cluster: str
    template_name: str
    description: str
    comment: str = ""
    user_data: Path | None = None
    engine_url: str | None = None
    username: str | None = None
    password_file: str | None = None
    ca_file: str | None = None
    insecure: bool = False
    profile: str | None = None


@dataclass(frozen=True)
class OvirtPublishOptions(TemplateOptions, _PublishTarget):
    """The target, the template's VM (TemplateOptions, the recipe's), the version."""

    version_name: str | None = None  # None: one template per name; "": a UTC time stamp
    bios_type: str | None = None


def ovirt_bios_type(recipe: Recipe) -> str | None:
    """oVirt's bios.type for the image's firmware: q35_sea_bios for a bios disk; for a uefi or
    hybrid disk q35_ovmf, or q35_secure_boot when the build proves Secure Boot
    (test.boot.firmware lists secureboot). Images and installers: the cluster default."""
    if recipe.source.bootstrap is None:
        return None
    if recipe.disk.firmware == "bios":
        return "q35_sea_bios"
    boot = recipe.test.boot
    if boot is not None and "secureboot" in (boot.firmware or ()):
        return "q35_secure_boot"
    return "q35_ovmf"


class OvirtPublishStage(Stage):
    name = "publish.ovirt"
    version = 3  # 2: each publish is a new version of one base template; 3: bios.type
    Options = OvirtPublishOptions
    inputs = ("image",)
    cacheable = False

    @classmethod
    def options_from_recipe(cls, recipe: Recipe) -> OvirtPublishOptions | None:
        o = recipe.publish.ovirt
        if o is None:
            return None
        if not o.storage_domain:
            raise InputError(f"{recipe.path}: publish.ovirt.storage_domain is required")
        name = o.template_name or recipe.name
        # A `${date}` name asks for one template per image (the old way); otherwise every
        # publish is a new version of template NAME, named by the image version.
        version_name = None if "${date}" in name else recipe.image_version
        # The recipe's top-level os_type stands in for the template default.
        vm = template_fields(o)
        if o.os_type == TemplateOptions.os_type and recipe.os_type:
            vm["os_type"] = recipe.os_type
        return OvirtPublishOptions(
            storage_domain=o.storage_domain, cluster=o.cluster,
            template_name=name, version_name=version_name,
            description=recipe.description, comment=recipe.comment,
            user_data=recipe.cloud_init.user_data if recipe.cloud_init else None,
            engine_url=o.engine_url, username=o.username,
            password_file=str(o.password_file) if o.password_file else None,
            ca_file=str(o.ca_file) if o.ca_file else None, insecure=o.insecure,
            profile=o.profile, bios_type=ovirt_bios_type(recipe), **vm)

    def run(self, ctx: StageContext, inputs: Mapping[str, Artifact]) -> Artifact:
        from imagepipe.targets.ovirt import TemplateSpec, connect, make_template, resolve_config

        o: OvirtPublishOptions = self.options
        image = inputs["image"]
        if image.path is None:
            raise InputError("publish.ovirt needs an image input")
        cfg = resolve_config(url=o.engine_url, username=o.username,
                             password_file=Path(o.password_file) if o.password_file else None,
                             ca_file=Path(o.ca_file) if o.ca_file else None,
                             insecure=o.insecure, profile=o.profile)
        spec = TemplateSpec(name=o.template_name, description=o.description, comment=o.comment,
                            cluster=o.cluster, storage_domain=o.storage_domain,
                            user_data=o.user_data.read_text() if o.user_data else None,
                            version_name=o.version_name, bios_type=o.bios_type,
                            **template_fields(o))
        agent = _guest_agent_warning(image)
        ctx.log.info("publishing %s to %s as template %s", image.path, cfg.url, o.template_name)
        with connect(cfg) as con:
            r = make_template(con, cfg, image.path, spec)
        ctx.log.info("template %s (%s), checksum %s, reused=%s", r.template_name,
                     r.template_id, r.checksum, r.reused)
        return Artifact(path=None, kind="record", metadata={
            "engine": cfg.base_url, "storage_domain": o.storage_domain, "cluster": o.cluster,
            "disk_id": r.disk_id, "template_id": r.template_id,
            "template_name": r.template_name, "checksum": r.checksum, "reused": r.reused,
            "template_disk_ids": r.template_disk_ids, "removed_versions": r.removed_versions,
            "base_template_id": r.base_template_id, "version_number": r.version_number,
            "version_name": r.version_name, "kept_versions": r.kept_versions,
            "bios_type": o.bios_type, "guest_agent": agent,
            **({} if r.reused else _changes_since_last_publish(ctx))})


def _changes_since_last_publish(ctx: StageContext) -> dict[str, Any]:
    """Package changes against the newest earlier successful build of this recipe that
    published to oVirt (the engine keeps no package lists; the build directories do)."""
    import json

    from imagepipe.inventory.diff import package_changes

    builds = [d for d in ctx.build_dir.parent.iterdir()
              if d.is_dir() and d != ctx.build_dir and (d / "manifest.json").is_file()]
    for d in sorted(builds, key=lambda d: d.stat().st_mtime, reverse=True):
        try:
            m = json.loads((d / "manifest.json").read_text())
        except (OSError, ValueError):
            continue
        if m.get("result") == "ok" and (m.get("publish") or {}).get("ovirt"):
            return {"previous_build": d.name, "changes": package_changes(
                m.get("packages"), ctx.manifest.get("packages"))}
    return {"previous_build": None}


def _guest_agent_warning(image: Artifact) -> str | None:
    """Warn when the guest stage found no qemu guest agent: the engine then shows no IPs or
    FQDN for VMs made from the template (add `qemu-guest-agent` to the recipe's packages)."""
    if "guest_agent" not in image.metadata:
        return None  # no guest stage ran: nothing was checked
    agent = image.metadata["guest_agent"]
    if not agent:
        from imagepipe import ui

        ui.warn("the image has no qemu guest agent: oVirt will not show the IP addresses and "
                "FQDN of VMs made from this template (add qemu-guest-agent to the recipe's "
                "packages)")
    return str(agent) if agent else None
