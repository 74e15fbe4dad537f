"""The required package list is a floor: the recipe's own kernel replaces the default one,
`source.bootstrap.kernel` picks a flavour, and two kernels are a located validate error."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagepipe.bases import bootstrap as bs
from imagepipe.convert import hardware
from imagepipe.convert.presets import PRESETS
from imagepipe.errors import RecipeError
from imagepipe.recipe.load import load_recipe
from imagepipe.recipe.model import BootstrapSource


def _kernels(src: BootstrapSource) -> list[str]:
    return [p for p in bs.package_list(src) if p.startswith("linux-image-")]


def test_default_kernel_is_the_generic_flavour() -> None:
    assert _kernels(BootstrapSource(packages=("apache2",))) == ["linux-image-amd64"]
    assert _kernels(BootstrapSource(distro="ubuntu", suite="jammy")) == ["linux-image-virtual"]


def test_the_recipes_kernel_replaces_the_default_in_place() -> None:
    src = BootstrapSource(packages=("linux-image-cloud-amd64", "apache2"))
    pkgs = bs.package_list(src)
    assert _kernels(src) == ["linux-image-cloud-amd64"]
    assert pkgs.index("linux-image-cloud-amd64") == 0  # where the default kernel was
    assert set(pkgs) - {"linux-image-cloud-amd64"} == set(
        bs.package_list(BootstrapSource(packages=("apache2",)))) - {"linux-image-amd64"}


@pytest.mark.parametrize(("distro", "kernel", "package"), [
    ("debian", "cloud", "linux-image-cloud-amd64"), ("debian", "generic", "linux-image-amd64"),
    ("ubuntu", "generic", "linux-image-generic"), ("ubuntu", "virtual", "linux-image-virtual")])
def test_kernel_flavour_picks_the_package(distro: str, kernel: str, package: str) -> None:
    assert _kernels(BootstrapSource(distro=distro, kernel=kernel)) == [package]


def test_the_same_kernel_twice_is_fine_two_different_are_not() -> None:
    same = BootstrapSource(kernel="cloud", packages=("linux-image-cloud-amd64",))
    assert bs.kernel_conflict(same) is None and _kernels(same) == ["linux-image-cloud-amd64"]
    assert "two kernels" in str(bs.kernel_conflict(
        BootstrapSource(packages=("linux-image-amd64", "linux-image-cloud-amd64"))))
    assert "kernel: cloud" in str(bs.kernel_conflict(
        BootstrapSource(kernel="cloud", packages=("linux-image-amd64",))))


def _recipe(tmp_path: Path, bootstrap: str, outputs: str = "") -> Path:
    f = tmp_path / "r.yaml"
    f.write_text("description: d\nsource:\n  bootstrap:\n" + bootstrap + outputs)
    return f


def test_two_kernels_is_a_located_error(tmp_path: Path) -> None:
    f = _recipe(tmp_path, "    packages: [apache2,\n"
                "               linux-image-amd64, linux-image-cloud-amd64]\n")
    (p,) = pytest.raises(RecipeError, load_recipe, f).value.problems
    assert (p.line, p.path) == (5, "source.bootstrap.packages[2]")
    assert "two kernels" in p.message and "source.bootstrap.kernel" in str(p.hint)


def test_kernel_flavour_of_another_distro_and_unknown_hardware(tmp_path: Path) -> None:
    f = _recipe(tmp_path, "    distro: ubuntu\n    suite: jammy\n    kernel: cloud\n",
                "outputs:\n  - {preset: virtualbox, hardware: pvscsi+vmxnet3}\n")
    problems = {p.path: p for p in pytest.raises(RecipeError, load_recipe, f).value.problems}
    assert "not a ubuntu kernel flavour" in problems["source.bootstrap.kernel"].message
    assert problems["outputs[0].hardware"].line == 8
    assert "ahci+e1000" in str(problems["outputs[0].hardware"].hint)


def test_every_preset_names_its_hardware_and_each_profile_is_known() -> None:
    for p in PRESETS.values():
        assert p.hardware, p.name
        for profile in p.hardware:
            disk, nic = hardware.split(profile)
            assert (disk.kind, nic.kind) == ("disk", "nic")
    assert PRESETS["virtualbox"].hardware[0] == "ahci+e1000"
    assert hardware.chosen("vsphere", None) == "lsilogic+e1000"
    assert hardware.chosen("vsphere", "vsphere") == "pvscsi+vmxnet3"


def test_missing_names_the_config_options() -> None:
    cloud = {"VIRTIO_PCI": "y", "VIRTIO_BLK": "m", "VIRTIO_NET": "m", "VMXNET3": "m",
             "VMWARE_PVSCSI": "m"}
    assert hardware.missing("ahci+e1000", cloud) == ["CONFIG_SATA_AHCI", "CONFIG_E1000"]
    assert hardware.missing("virtio-blk+virtio-net", cloud) == []
    assert hardware.missing("pvscsi+vmxnet3", cloud) == []
