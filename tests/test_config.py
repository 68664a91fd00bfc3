"""Configuration: discovery (closest file wins), validation errors (exit 2 naming key/code and file), globs
relative to the configuration file, and rule selection layered like ruff's."""
from __future__ import annotations

import os

import pytest

from looplint import config
from looplint.config import ConfigError, Pattern, Resolver, Selection

from conftest import BROKEN_PROGRAM, CLEAN_PROGRAM, relative

CODES = ["LL000", "LL101", "LL102", "LL109", "LL201"]


@pytest.fixture
def synthetic_codes(monkeypatch):
    """Pretend these rule codes are registered, so selection can be tested before the rules land."""
    monkeypatch.setattr(config, "known_codes", lambda: list(CODES))


def enabled(*layers: Selection):
    codes = set(CODES)
    for layer in layers:
        codes = layer.apply(codes, CODES)
    return sorted(codes)


# ---------------------------------------------------------------------------------------------- selection


def test_default_selects_everything():
    assert enabled() == CODES


def test_select_prefix_and_more_specific_ignore():
    assert enabled(Selection(select=("LL1",))) == ["LL000", "LL101", "LL102", "LL109"]
    assert enabled(Selection(select=("LL1",), ignore=("LL10",))) == ["LL000"]
    assert enabled(Selection(select=("LL1",), ignore=("LL101",))) == ["LL000", "LL102", "LL109"]


def test_more_specific_select_beats_broader_ignore_and_ties_go_to_ignore():
    assert enabled(Selection(select=("LL101",), ignore=("LL1",))) == ["LL000", "LL101"]
    assert enabled(Selection(select=("LL1",), ignore=("LL1",))) == ["LL000"]
    assert enabled(Selection(select=("ALL",), ignore=("LL",))) == ["LL000"]


def test_command_line_layer_select_starts_afresh_and_extend_select_keeps_config():
    cfg = Selection(select=("LL1",), ignore=("LL102",))
    assert enabled(cfg, Selection(select=("LL102",))) == ["LL000", "LL102"]  # ruff: --select replaces all
    assert enabled(cfg, Selection(extend_select=("LL2",))) == ["LL000", "LL101", "LL109", "LL201"]
    assert enabled(cfg, Selection(ignore=("LL101",))) == ["LL000", "LL109"]


def test_ll000_is_kept_unless_ignored_by_its_exact_code():
    assert "LL000" in enabled(Selection(select=("LL2",)))
    assert "LL000" in enabled(Selection(ignore=("LL", "LL0")))
    assert "LL000" not in enabled(Selection(ignore=("LL000",)))
    # a later --select brings it back, like every other code a configured ignore removed
    assert "LL000" in enabled(Selection(ignore=("LL000",)), Selection(select=("LL1",)))


def test_selectors_are_validated_and_normalised(synthetic_codes):
    assert config.normalize_selectors(["ll1", " LL101 ", "ALL", "LL", ""], "--select") == ["LL1", "LL101", "ALL", "LL"]
    for bad in ("LL999", "LL3", "E501", "LL1011"):
        with pytest.raises(ConfigError, match=bad):
            config.normalize_selectors([bad], "--select")


# ---------------------------------------------------------------------------------------------- globs


def test_patterns_match_basename_or_path_relative_to_root(tmp_path):
    root = str(tmp_path)
    assert Pattern.parse("gen_*.py", root).matches(os.path.join(root, "a", "gen_x.py"))
    assert Pattern.parse("src/legacy", root).matches(os.path.join(root, "src", "legacy"))
    assert not Pattern.parse("src/legacy", root).matches(os.path.join(root, "other", "src", "legacy"))
    assert Pattern.parse("src/*.py", root).matches(os.path.join(root, "src", "deep", "m.py"))  # * crosses /, like ruff
    assert Pattern.parse("legacy/", root).matches(os.path.join(root, "legacy"))
    negated = Pattern.parse("!tests/*", root)
    assert negated.matches(os.path.join(root, "src", "m.py"))
    assert not negated.matches(os.path.join(root, "tests", "m.py"))


# ---------------------------------------------------------------------------------------------- discovery


def test_closest_configuration_wins_without_merging(project, run):
    project({
        "pyproject.toml": '[tool.looplint]\nextend-exclude = ["gen_*.py"]\n',
        "gen_top.py": BROKEN_PROGRAM,
        "sub/looplint.toml": "# no excludes here: the root file's are not merged in\n",
        "sub/gen_sub.py": BROKEN_PROGRAM,
    })
    result = run(".")
    assert relative("sub/gen_sub.py") in result.out
    assert "gen_top.py" not in result.out


def test_pyproject_without_looplint_table_is_skipped(project, run):
    project({
        "pyproject.toml": '[tool.looplint]\nper-file-ignores = {"*.py" = ["LL000"]}\n',
        "pkg/pyproject.toml": '[project]\nname = "pkg"\n',
        "pkg/broken.py": BROKEN_PROGRAM,
    })
    assert run("pkg").code == 0  # the root configuration governs pkg/


def test_looplint_toml_beats_pyproject_in_the_same_folder(project, run):
    project({
        "pyproject.toml": '[tool.looplint]\nper-file-ignores = {"*.py" = ["LL000"]}\n',
        "looplint.toml": "extend-exclude = []\n",
        "broken.py": BROKEN_PROGRAM,
    })
    assert run(".").code == 1


def test_globs_resolve_relative_to_the_configuration_file(project, run, tmp_path, monkeypatch):
    project({
        "pyproject.toml": '[tool.looplint]\nextend-exclude = ["src/gen"]\nper-file-ignores = {"src/old/*.py" = ["LL000"]}\n',
        "src/gen/a.py": BROKEN_PROGRAM,
        "src/old/b.py": BROKEN_PROGRAM,
        "src/new/c.py": BROKEN_PROGRAM,
    })
    monkeypatch.chdir(tmp_path / "src")
    result = run(".")
    assert result.out.splitlines()[:-1] == [
        line for line in result.out.splitlines() if line.startswith(relative("new/c.py"))
    ]
    assert result.code == 1


def test_exclude_replaces_the_defaults_and_extend_exclude_adds(project, run):
    project({
        "looplint.toml": 'exclude = ["skipped"]\n',
        "build/a.py": BROKEN_PROGRAM,
        "skipped/b.py": BROKEN_PROGRAM,
    })
    out = run(".").out
    assert relative("build/a.py") in out and "skipped" not in out


def test_config_option_forces_one_file_for_every_path(project, run):
    project({
        "configs/strict.toml": 'per-file-ignores = {"*.py" = ["LL000"]}\n',
        "pyproject.toml": '[tool.looplint]\nselect = ["LL"]\n',
        "pkg/looplint.toml": 'exclude = []\n',
        "pkg/broken.py": BROKEN_PROGRAM,
    })
    assert run(".").code == 1
    assert run("--config", relative("configs/strict.toml"), ".").code == 0


def test_isolated_ignores_every_configuration_file(project, run):
    project({"pyproject.toml": "[tool.looplint\nbroken toml", "broken.py": BROKEN_PROGRAM})
    assert run(".").code == 2
    result = run("--isolated", ".")
    assert result.code == 1 and "broken.py" in result.out


def test_command_line_overrides_configuration(project, run):
    project({"looplint.toml": 'ignore = ["LL000"]\n', "broken.py": BROKEN_PROGRAM})
    assert run(".").code == 0
    assert run("--extend-select", "LL", ".").code == 0  # extends: the configured ignore stays
    assert run("--select", "ALL", ".").code == 1  # --select replaces the configured selection


def test_per_file_ignores_apply_by_glob(project, run):
    project({
        "pyproject.toml": '[tool.looplint.per-file-ignores]\n"legacy/*" = ["LL000"]\n',
        "legacy/a.py": BROKEN_PROGRAM,
        "new/b.py": BROKEN_PROGRAM,
    })
    out = run(".").out
    assert relative("new/b.py") in out and "legacy" not in out


# ---------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize("text, names", [
    ('[tool.looplint]\nselct = ["LL"]\n', ["`selct`", "did you mean `select`"]),
    ('[tool.looplint]\nselect = "LL1"\n', ["`select`", "list of strings"]),
    ('[tool.looplint]\nignore = [1]\n', ["`ignore`", "list of strings"]),
    ('[tool.looplint]\nper-file-ignores = ["a"]\n', ["`per-file-ignores`"]),
    ('[tool.looplint]\nper-file-ignores = {"a.py" = "LL000"}\n', ["per-file-ignores", "a.py"]),
    ('[tool.looplint]\nexclude = "build"\n', ["`exclude`"]),
    ('[tool.looplint]\nextend-select = ["LL999"]\n', ["LL999", "extend-select"]),
    ('[tool.looplint]\nper-file-ignores = {"x.py" = ["XY1"]}\n', ["XY1"]),
    ("[tool]\nlooplint = 3\n", ["tool.looplint", "table"]),
    ("[tool.looplint\n", ["cannot parse"]),
    (b"[tool.looplint]\nselect = ['\xff']\n", ["cannot parse"]),
    # tomllib raises RecursionError / ValueError for these, not TOMLDecodeError: once an "internal error"
    ("[tool.looplint]\nselect = " + "[" * 5000 + "]" * 5000 + "\n", ["cannot parse", "nested too deeply"]),
    ("[tool.looplint]\nx = " + "1" * 5000 + "\n", ["cannot parse", "number too long"]),
])
def test_configuration_errors_exit_2_naming_the_problem_and_the_file(project, run, tmp_path, text, names):
    project({"clean.py": CLEAN_PROGRAM})
    target = tmp_path / "pyproject.toml"
    target.write_bytes(text if isinstance(text, bytes) else text.encode())
    result = run("clean.py")
    assert result.code == 2, result
    assert str(target) in result.err
    for name in names:
        assert name in result.err
    assert "Traceback" not in result.err and result.out == ""


def test_unknown_key_in_looplint_toml_is_an_error(project, run, tmp_path):
    project({"looplint.toml": "line-length = 88\n", "clean.py": CLEAN_PROGRAM})
    result = run(".")
    assert result.code == 2 and "`line-length`" in result.err and "looplint.toml" in result.err


def test_missing_config_file_exits_2(project, run):
    project({"clean.py": CLEAN_PROGRAM})
    result = run("--config", "nope.toml", "clean.py")
    assert result.code == 2 and "nope.toml" in result.err


def test_known_codes_in_configuration_parse(synthetic_codes, tmp_path):
    path = tmp_path / "looplint.toml"
    path.write_text(
        'select = ["LL1", "ll2"]\nignore = ["LL109"]\nextend-select = ["LL000"]\n'
        'per-file-ignores = {"tests/*" = ["LL101"]}\nextend-exclude = ["gen"]\n'
    )
    settings = config.load_file(str(path))
    assert settings.selection == Selection(("LL1", "LL2"), ("LL000",), ("LL109",))
    assert settings.enabled_codes(str(tmp_path / "src" / "m.py")) == ["LL000", "LL101", "LL102", "LL201"]
    assert settings.enabled_codes(str(tmp_path / "tests" / "t.py")) == ["LL000", "LL102", "LL201"]
    assert settings.is_excluded(str(tmp_path / "gen"))
    assert settings.enabled_codes(str(tmp_path / "m.py"), Selection(select=("LL101",))) == ["LL000", "LL101"]


def test_resolver_caches_and_finds_closest(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "looplint.toml").write_text("extend-exclude = ['x']\n")
    (tmp_path / "a" / "b" / "pyproject.toml").write_text("[tool.looplint]\nextend-exclude = ['y']\n")
    resolver = Resolver()
    assert resolver.for_path(str(tmp_path / "a" / "m.py")).path == str(tmp_path / "looplint.toml")
    assert resolver.for_path(str(tmp_path / "a" / "b" / "m.py")).path == str(tmp_path / "a" / "b" / "pyproject.toml")
    assert Resolver(isolated=True).for_path(str(tmp_path / "a" / "m.py")).path is None
