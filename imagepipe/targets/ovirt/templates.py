"""Templates: upload the disk, build a temporary VM around it, make the template, clean up.

Why this shape (the ovirt.ovirt image_template role, minus its leftovers): the temporary VM and
the uploaded disk are registered for removal the moment they exist, so they are gone in every
outcome, Ctrl-C included (the template owns its own disk copies). The image's imageio checksum
is recorded in the template's comment, which makes publishing idempotent: the same image is
never uploaded twice. Publishing with a version name makes each image a new *version* of one
base template (see `versions`); names stamped with `${date}` plus `keep` remain for one
template per image.
"""

from __future__ import annotations

import datetime
import re
import secrets
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from imagepipe import ui
from imagepipe.errors import InputError
from imagepipe.recipe.model import TemplateOptions
from imagepipe.targets.ovirt import engine as eng
from imagepipe.targets.ovirt.connection import EngineConfig, EngineError, engine_errors
from imagepipe.targets.ovirt.transfer import image_info, local_checksum
from imagepipe.targets.ovirt.upload import DEFAULT_OPTIONS, UploadOptions, upload_disk

DIGEST_TAG = "imagepipe-image-digest:"
DATE_VAR = "${date}"
BLANK = "00000000-0000-0000-0000-000000000000"


@dataclass(frozen=True, kw_only=True)
class TemplateSpec(TemplateOptions):
    """One template to make: its name and place, plus the VM (TemplateOptions, whose defaults
    are the recipe's)."""

    name: str
    description: str
    cluster: str
    storage_domain: str
    comment: str = ""
    user_data: str | None = None
    # Publish as a new version of the template `name` (the first publish creates it as the
    # base template); None = one template per name (`${date}` names).
    version_name: str | None = None
    # The engine's bios.type (q35_sea_bios | q35_ovmf | q35_secure_boot); None: the cluster's
    # default.
    bios_type: str | None = None


@dataclass
class TemplateResult:
    template_id: str
    template_name: str
    checksum: str
    reused: bool
    disk_id: str | None = None
    template_disk_ids: list[str] = field(default_factory=list)
    removed_versions: list[str] = field(default_factory=list)
    seconds: float = 0.0
    base_template_id: str | None = None
    version_number: int | None = None
    version_name: str | None = None
    kept_versions: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def expand_name(name: str, now: datetime.datetime | None = None) -> tuple[str, str | None]:
    """(concrete name, base prefix of its versions or None when the name is not versioned).

    `${date}` is the UTC date as YYYYMMDD, exactly as in recipes, so `httpd-${date}` names the
    same template on the command line and in `publish.ovirt`. A second, different image on
    the same day gets a serial (`httpd-20261201.2`, see `_free_name`)."""
    if DATE_VAR not in name:
        return name, None
    now = now or datetime.datetime.now(datetime.UTC)
    return name.replace(DATE_VAR, now.strftime("%Y%m%d")), name.split(DATE_VAR)[0]


def _free_name(name: str, taken: set[str]) -> str:
    """`name`, or `name.N` with the smallest free serial N >= 2."""
    serial = 2
    candidate = name
    while candidate in taken:
        candidate, serial = f"{name}.{serial}", serial + 1
    return candidate


def _age(template_name: str) -> tuple[int, ...]:
    """Sort key of a version name: its digits as numbers (date, then same-day serial)."""
    return tuple(int(d) for d in re.findall(r"\d+", template_name))


def _versions(con: Any, base: str, pattern: str) -> list[Any]:
    regex = re.compile("^" + re.escape(pattern).replace(re.escape(DATE_VAR),
                                                        r"\d{8,14}(\.\d+)?") + "$")
    with engine_errors("listing templates"):
        found = con.system_service().templates_service().list(search=f"name={base}*")
    return [t for t in found if regex.match(t.name or "")]


def make_template(con: Any, cfg: EngineConfig, image: Path, spec: TemplateSpec,
                  options: UploadOptions = DEFAULT_OPTIONS) -> TemplateResult:
    import time

    start = time.monotonic()
    if not spec.description.strip():
        raise InputError("a template needs a description (--description)")
    if not image.is_file():
        raise InputError(f"{image}: no such image file")
    image_info(image)  # refuse unsafe images before anything reads them
    name, base = expand_name(spec.name)
    if spec.version_name is not None:
        return _make_version(con, cfg, image, spec, options, start)
    if spec.keep is not None and base is None:
        ui.warn(f"--keep {spec.keep} ignored: {spec.name!r} is not a versioned name "
                "(add ${date}, e.g. NAME-${date})")
    cluster, profile, local, digest = _lookups_and_checksum(con, spec, image)
    family = _versions(con, base, spec.name) if base is not None else []
    same = eng.search_one(con.system_service().templates_service(), "template", name)
    for tpl in family + ([same] if same else []):
        if f"{DIGEST_TAG} {digest}" in (tpl.comment or ""):
            ui.info(f"template {tpl.name} ({tpl.id}) was already built from this image; "
                    "nothing uploaded")
            return TemplateResult(tpl.id, tpl.name, digest, reused=True)
    if same is not None and base is not None:  # same day, another image: next serial
        name = _free_name(name, {t.name for t in family})
        same = eng.search_one(con.system_service().templates_service(), "template", name)
    if same is not None:
        raise EngineError(f"Cannot add Template. The Template name {name!r} is already in use "
                          "by a template built from a different image",
                          "choose another --name or use a versioned name like NAME-${date}")
    result = _build(con, cfg, image, spec, name, cluster, profile, local, options)
    if spec.keep is not None and base is not None:
        result.removed_versions = _retain(con, base, spec.name, spec.keep)
    result.seconds = round(time.monotonic() - start, 3)
    return result


def _lookups_and_checksum(con: Any, spec: TemplateSpec,
                          image: Path) -> tuple[Any, Any, dict[str, Any], str]:
    """Cluster, vNIC profile and storage domain checked on the engine (bad names fail before
    any upload), then the image's checksum: what both publish paths need first."""
    cluster = _find_cluster(con, spec.cluster)
    profile = _find_profile(con, cluster, spec.network)
    eng.find_storage_domain(con, spec.storage_domain)
    ui.info(f"computing the checksum of {image.name}")
    local = local_checksum(image)
    return cluster, profile, local, f"{local['algorithm']}:{local['checksum']}"


def _make_version(con: Any, cfg: EngineConfig, image: Path, spec: TemplateSpec,
                  options: UploadOptions, start: float) -> TemplateResult:
    """A new version of template `spec.name` (the base template if there is none yet)."""
    import time

    from imagepipe.targets.ovirt import versions

    if DATE_VAR in spec.name:
        raise InputError(f"template name {spec.name!r}: a versioned template keeps one name",
                         "put the date into the version name instead (it is the default)")
    version_name = spec.version_name or \
        datetime.datetime.now(datetime.UTC).strftime("%Y%m%d-%H%M%S")
    cluster, profile, local, digest = _lookups_and_checksum(con, spec, image)
    family = versions.family(con, spec.name)
    base = versions.find_base(family)
    for tpl in family:
        if f"{DIGEST_TAG} {digest}" in (tpl.comment or ""):
            ui.info(f"{versions.label(tpl)} ({tpl.id}) was already built from this image; "
                    "nothing uploaded")
            return _version_result(TemplateResult(tpl.id, tpl.name, digest, reused=True), tpl)
    what = f"version {version_name} of {spec.name}" if base else f"base template {spec.name}"
    ui.info(f"publishing {what}")
    result = _build(con, cfg, image, spec, spec.name, cluster, profile, local, options,
                    version=versions.new_version(base, version_name))
    with engine_errors(f"reading template {result.template_id}"):
        tpl = con.system_service().templates_service().template_service(
            result.template_id).get()
    _version_result(result, tpl)
    if spec.keep is not None:
        result.removed_versions, result.kept_versions = versions.retain(
            con, spec.name, result.base_template_id or tpl.id, spec.keep)
    result.seconds = round(time.monotonic() - start, 3)
    return result


def _version_result(result: TemplateResult, tpl: Any) -> TemplateResult:
    from imagepipe.targets.ovirt import versions

    result.base_template_id = versions.base_id(tpl)
    result.version_number = versions.version_number(tpl)
    result.version_name = getattr(tpl.version, "version_name", None) if tpl.version else None
    return result


def _build(con: Any, cfg: EngineConfig, image: Path, spec: TemplateSpec, name: str,
           cluster: Any, profile: Any, local: dict[str, Any],
           options: UploadOptions, version: Any = None) -> TemplateResult:
    from ovirtsdk4 import types

    system = con.system_service()
    with ExitStack() as stack:
        up = upload_disk(con, cfg, image, storage_domain=spec.storage_domain,
                         name=f"{name}-disk", fmt=spec.disk_format, sparse=True,
                         description=f"imagepipe: disk of template {name}",
                         options=options, checksum=local)
        # The template gets its own copies; the uploaded disk goes in every outcome.
        stack.callback(eng.cleanup_remove, system.disks_service().disk_service(up.disk_id),
                       f"disk {up.disk_id}", 600)
        vm = _temporary_vm(con, spec, name, cluster, stack)
        vm_service = system.vms_service().vm_service(vm.id)
        with engine_errors(f"attaching disk {up.disk_id} to the temporary VM"):
            vm_service.disk_attachments_service().add(types.DiskAttachment(
                disk=types.Disk(id=up.disk_id), interface=types.DiskInterface.VIRTIO_SCSI,
                bootable=True, active=True))
            vm_service.nics_service().add(types.Nic(
                name="nic1", interface=types.NicInterface.VIRTIO,
                vnic_profile=types.VnicProfile(id=profile.id)))
        tpl = _create_template(con, spec, name, vm.id, up.checksum or "", stack, version)
        with engine_errors(f"reading the disks of template {name}"):
            atts = system.templates_service().template_service(tpl.id) \
                .disk_attachments_service().list()
        ui.info(f"template {name} ({tpl.id}) is ok; removing the temporary VM")
        return TemplateResult(tpl.id, name, up.checksum or "", reused=False,
                              disk_id=up.disk_id, template_disk_ids=[a.id for a in atts])


def _temporary_vm(con: Any, spec: TemplateSpec, name: str, cluster: Any,
                  stack: ExitStack) -> Any:
    from ovirtsdk4 import types

    vms = con.system_service().vms_service()
    vm_name = re.sub(r"[^A-Za-z0-9_.-]", "-", f"imagepipe-tmp-{name}")[:50]
    vm_name += "-" + secrets.token_hex(3)
    with engine_errors(f"creating the temporary VM {vm_name}"):
        vm = vms.add(types.Vm(
            name=vm_name, cluster=types.Cluster(id=cluster.id),
            template=types.Template(id=BLANK), type=types.VmType.SERVER,
            memory=spec.memory,
            memory_policy=types.MemoryPolicy(
                ballooning=spec.ballooning, max=spec.memory,
                guaranteed=spec.memory // 2 if spec.ballooning else spec.memory),
            cpu=types.Cpu(topology=types.CpuTopology(cores=spec.cpus, sockets=1, threads=1)),
            os=types.OperatingSystem(type=spec.os_type,
                                     boot=types.Boot(devices=[types.BootDevice.HD])),
            bios=_bios(spec),
            description=f"imagepipe: temporary VM for template {name}"))
    stack.callback(eng.cleanup_remove, vms.vm_service(vm.id), f"temporary VM {vm_name}", 600)
    return vm


def _bios(spec: TemplateSpec) -> Any:
    """The VM/template firmware: VMs made from the template boot the way the image was built
    and tested to boot."""
    from ovirtsdk4 import types

    if spec.bios_type is None:
        return None
    return types.Bios(type=types.BiosType(spec.bios_type))


def _create_template(con: Any, spec: TemplateSpec, name: str, vm_id: str, digest: str,
                     stack: ExitStack, version: Any = None) -> Any:
    from ovirtsdk4 import types

    service = con.system_service().templates_service()
    comment = "\n".join(p for p in (spec.comment.strip(), f"{DIGEST_TAG} {digest}") if p)
    init = types.Initialization(
        custom_script=spec.user_data,
        nic_configurations=[types.NicConfiguration(
            name="eth0", boot_protocol=types.BootProtocol.DHCP, on_boot=True)])
    with engine_errors(f"creating template {name}"):
        tpl = service.add(types.Template(
            name=name, description=spec.description, comment=comment,
            vm=types.Vm(id=vm_id), os=types.OperatingSystem(type=spec.os_type),
            bios=_bios(spec), initialization=init, version=version), seal=spec.seal)
    done = {"ok": False}
    tpl_service = service.template_service(tpl.id)

    def remove_unless_done() -> None:
        if not done["ok"]:
            eng.cleanup_remove(tpl_service, f"template {name}", 600)

    stack.callback(remove_unless_done)

    def get() -> Any:
        t = tpl_service.get()
        if t.status == types.TemplateStatus.ILLEGAL:
            raise EngineError(f"template {name} became illegal: the engine could not copy the "
                              "disk; it will be removed")
        return t

    with engine_errors(f"waiting for template {name}"):
        tpl = eng.poll(f"template {name} to become ok", get,
                       lambda t: t.status == types.TemplateStatus.OK, 3600)
    done["ok"] = True
    return tpl


def _retain(con: Any, base: str, pattern: str, keep: int) -> list[str]:
    """Remove all but the newest `keep` versions of this versioned template name."""
    versions = sorted(_versions(con, base, pattern), key=lambda t: _age(t.name), reverse=True)
    removed = []
    for tpl in versions[keep:]:
        service = con.system_service().templates_service().template_service(tpl.id)
        try:
            eng.remove_entity(service, f"old template {tpl.name}", 120)
        except EngineError as exc:
            ui.warn(f"keeping {tpl.name}: {exc}")
            continue
        removed.append(tpl.name)
        ui.info(f"removed old version {tpl.name}")
    return removed


def _find_cluster(con: Any, name: str) -> Any:
    cluster = eng.search_one(con.system_service().clusters_service(), "cluster", name)
    if cluster is None:
        raise EngineError(f"cluster {name!r} not found on the engine")
    return cluster


def _find_profile(con: Any, cluster: Any, network: str) -> Any:
    """The vNIC profile named like the network, on a network of the cluster (as ovirt_vm)."""
    system = con.system_service()
    with engine_errors(f"looking up network {network!r}"):
        nets = system.clusters_service().cluster_service(cluster.id).networks_service().list()
        profiles = system.vnic_profiles_service().list()
    net_ids = {n.id for n in nets if n.name == network}
    for p in profiles:
        if p.name == network and p.network is not None and p.network.id in net_ids:
            return p
    raise EngineError(f"no vNIC profile {network!r} on a network of cluster {cluster.name!r}",
                      f"networks there: {', '.join(sorted(n.name for n in nets)) or 'none'}")


def list_templates(con: Any, name_prefix: str | None = None) -> list[dict[str, Any]]:
    service = con.system_service().templates_service()
    with engine_errors("listing templates"):
        found = service.list(search=f"name={name_prefix}*") if name_prefix else service.list()
    return [{"id": t.id, "name": t.name, "status": str(t.status.value) if t.status else None,
             "description": t.description, "comment": t.comment,
             "version_number": t.version.version_number if t.version else None,
             "version_name": t.version.version_name if t.version else None,
             "base_template_id": t.version.base_template.id
             if t.version and t.version.base_template else None,
             "created": t.creation_time.isoformat() if t.creation_time else None}
            for t in found]
