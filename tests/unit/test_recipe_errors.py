"""One bad recipe per error kind: each must be reported as FILE:LINE:COL: PATH: message (hint).

The fixtures are real files in tests/unit/recipe_fixtures/, loaded through the public loader,
so the marks, the extends chain and the referenced-file checks all run for real.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from imagepipe.errors import RecipeError
from imagepipe.recipe.load import load_recipe

FIXTURES = Path(__file__).with_name("recipe_fixtures")

# fixture, expected "file:line" (file relative to FIXTURES), field path, message part, hint part
CASES = [
    ("unknown_key", "unknown_key.yaml:7", "outputs[0].presett", "unknown key 'presett'",
     "did you mean 'preset'?"),
    ("wrong_type", "wrong_type.yaml:7", "test.boot.timeout",
     "expected a whole number, got a string ('ten')", None),
    ("duplicate_key", "duplicate_key.yaml:4", "name", "duplicate key 'name'",
     "first defined at line 2"),
    ("alias_bomb", "alias_bomb.yaml:", "", "alias bomb", "write the values out"),
    ("missing_description", "missing_description.yaml:1", "description",
     "missing required key 'description'", None),
    ("empty_description", "empty_description.yaml:3", "description", "must not be empty", None),
    ("two_sources", "two_sources.yaml:6", "source.bootstrap",
     "source has both image and bootstrap", "exactly one source"),
    ("bad_size", "bad_size.yaml:6", "disk.size", "is not a size", "e.g. 8G"),
    ("bad_checksum", "bad_checksum.yaml:7", "source.image.checksum",
     "a sha256 checksum is 64 hex digits, got 63", None),
    ("bad_checksum_algo", "bad_checksum_algo.yaml:5", "source.image.checksum",
     "unknown checksum algorithm 'md5'", "sha256:HEX"),
    ("no_checksum", "no_checksum.yaml:5", "source.image", "no checksum",
     "insecure_no_checksum"),
    ("missing_file", "missing_file.yaml:7", "cloud_init.user_data",
     "file not found: nothere/user-data.yaml", "relative to the recipe"),
    ("escaping_src", "escaping_src.yaml:8", "customize.files[0].src",
     "escapes the recipe directory", "allow_absolute_paths"),
    ("absolute_src", "absolute_src.yaml:8", "customize.files[0].src", "absolute path",
     "allow_absolute_paths: true"),
    ("extends_missing", "extends_missing.yaml:1", "extends",
     "base recipe not found: base/nothere.yaml", None),
    ("extends_cycle_a", "extends_cycle_b.yaml:1", "extends",
     "extends cycle: extends_cycle_a.yaml -> extends_cycle_b.yaml -> extends_cycle_a.yaml",
     None),
    ("missing_env", "missing_env.yaml:6", "image_version",
     "environment variable IMAGEPIPE_TEST_SURELY_UNSET is not set", "export"),
    ("bad_format", "bad_format.yaml:7", "outputs[0].format", "unknown value 'qcow3'",
     "did you mean 'qcow2'?"),
    ("bad_preset", "bad_preset.yaml:7", "outputs[0].preset", "unknown value 'vsfere'",
     "did you mean 'vsphere'?"),
    ("preset_mismatch", "preset_mismatch.yaml:7", "outputs[0].preset",
     "preset 'kvm' writes qcow2, not vmdk", None),
    ("bad_ranges", "bad_ranges.yaml:8", "test.boot.http[0].port", "70000 is out of range",
     "1..65535"),
    # The referenced user-data's own mistake is reported with ITS file name and line.
    ("broken_user_data", "seed-broken-user-data.yaml:2", "", "runcmd", "colon"),
]


def _problems(name: str) -> list:
    with pytest.raises(RecipeError) as info:
        load_recipe(FIXTURES / f"{name}.yaml")
    assert info.value.exit_code == 2
    return info.value.problems


@pytest.mark.parametrize("name,where,path,message,hint", CASES, ids=[c[0] for c in CASES])
def test_bad_fixture(name: str, where: str, path: str, message: str, hint: str | None) -> None:
    assert "IMAGEPIPE_TEST_SURELY_UNSET" not in os.environ
    problems = _problems(name)
    texts = [str(p) for p in problems]
    file_part, _, line_part = where.partition(":")
    hits = [p for p in problems if p.file.endswith(file_part) and message in str(p)]
    assert hits, f"no problem with {message!r} in {file_part}:\n" + "\n".join(texts)
    p = hits[0]
    if line_part:
        assert p.line == int(line_part), texts
        assert str(p).startswith(f"{p.file}:{line_part}:{p.col}: ")
    assert p.col is not None and p.col >= 1
    if path:
        assert p.path == path
        assert f": {path}: " in str(p)
    if hint:
        assert p.hint and hint in p.hint, p


def test_seed_script_is_located_on_its_line() -> None:
    """The seed's script (`runcmd` without a colon) is reported once, on line 2, not 50 times."""
    problems = _problems("broken_user_data")
    ud = [p for p in problems if p.file.endswith("seed-broken-user-data.yaml")]
    assert len(ud) == 1 and ud[0].line == 2 and "colon" in str(ud[0])


def test_every_error_is_reported_at_once() -> None:
    problems = _problems("many_errors")
    paths = {p.path for p in problems}
    assert {"description", "descripton", "source.image.checksum", "disk.size",
            "outputs[0].format"} <= paths, [str(p) for p in problems]
    assert all(p.file.endswith("many_errors.yaml") and p.line for p in problems)
    # sorted by line, so the list reads top to bottom like the file
    lines = [p.line for p in problems]
    assert lines == sorted(lines)


def test_alias_bomb_is_refused_quickly_without_expanding() -> None:
    problems = _problems("alias_bomb")
    assert len(problems) == 1 and problems[0].line is not None


def test_recursive_alias_and_merge_keys(tmp_path: Path) -> None:
    f = tmp_path / "r.yaml"
    f.write_text("description: d\nbase: &b {x: 1}\nother:\n  <<: *b\n"
                 "comment: &c [1, *c]\n")
    problems = [str(p) for p in pytest.raises(RecipeError, load_recipe, f).value.problems]
    assert any("r.yaml:4:3" in p and "merge keys" in p for p in problems), problems
    assert any("r.yaml:5:10: comment[1]: recursive YAML alias" in p for p in problems), problems


def test_yaml_syntax_error_is_located(tmp_path: Path) -> None:
    f = tmp_path / "s.yaml"
    f.write_text("description: d\nsource:\n  image: {url: x\n")
    (p,) = pytest.raises(RecipeError, load_recipe, f).value.problems
    assert p.file == str(f) and p.line is not None and "YAML syntax error" in p.message


def test_quoting_hints_for_yaml_1_1_traps(tmp_path: Path) -> None:
    """`mode: 0644` is the integer 420 in YAML; say to quote it instead of 'wrong type'."""
    (tmp_path / "f.txt").write_text("x")
    f = tmp_path / "q.yaml"
    f.write_text("description: d\nsource: {bootstrap: {}}\ncustomize:\n  files:\n"
                 "    - {src: f.txt, dest: /f, mode: 0644}\n")
    (p,) = pytest.raises(RecipeError, load_recipe, f).value.problems
    assert p.path == "customize.files[0].mode" and p.line == 5 and "quote it" in str(p.hint)


def test_problems_in_a_base_point_into_the_base(tmp_path: Path) -> None:
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "b.yaml").write_text("source: {bootstrap: {suite: bookworm}}\n"
                                              "disk: {size: big}\n")
    top = tmp_path / "top.yaml"
    top.write_text("extends: base/b.yaml\ndescription: d\n")
    (p,) = pytest.raises(RecipeError, load_recipe, top).value.problems
    assert p.file.endswith("base/b.yaml") and p.line == 2 and p.path == "disk.size"


def test_unknown_seal_operation_and_output_option(tmp_path: Path) -> None:
    f = tmp_path / "o.yaml"
    f.write_text("description: d\nsource: {bootstrap: {}}\n"
                 "seal: {operations: 'defaults,-ssh-hostkey'}\n"
                 "outputs:\n  - {format: qcow2, options: {cluster_sise: '65536'}}\n"
                 "  - {format: vdi, compress: true}\n")
    problems = pytest.raises(RecipeError, load_recipe, f).value.problems
    by_path = {p.path: p for p in problems}
    assert "ssh-hostkeys" in str(by_path["seal.operations"].hint)
    assert "cluster_size" in str(by_path["outputs[0].options.cluster_sise"].hint)
    assert by_path["outputs[1].compress"].line == 6
