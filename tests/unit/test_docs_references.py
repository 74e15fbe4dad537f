"""Code that explains itself by pointing at docs/ points at pages that exist, and the simulator
modules' section references match the sections of docs/ovirt-simulator.md."""

from __future__ import annotations

import re

from tests.conftest import REPO

DOC_REF = re.compile(r"docs/([A-Za-z0-9_.-]+\.(?:md|json))")
SIM_SECTION = re.compile(r"docs/ovirt-simulator\.md\s+section\s+(\d+)")


def _sources() -> list[tuple[str, str]]:
    files = [*sorted((REPO / "imagepipe").rglob("*.py")),
             *sorted((REPO / "benchmarks").glob("*.py"))]
    return [(str(p.relative_to(REPO)), p.read_text()) for p in files]


def test_every_docs_page_named_in_code_exists() -> None:
    named = {(path, m) for path, text in _sources() for m in DOC_REF.findall(text)}
    assert named, "the scan found no references at all: the pattern is wrong"
    missing = sorted((path, m) for path, m in named if not (REPO / "docs" / m).is_file())
    assert not missing, missing


def test_simulator_section_references_exist() -> None:
    page = (REPO / "docs" / "ovirt-simulator.md").read_text()
    sections = set(re.findall(r"^## (\d+)\. ", page, re.M))
    cited = {(path, n) for path, text in _sources() for n in SIM_SECTION.findall(text)}
    assert len(cited) >= 5, cited  # the five simulator modules cite one section each
    assert not [c for c in cited if c[1] not in sections], (cited, sections)
