"""Which files are linted, and with which settings, the way a ruff user expects: ignore files honoured
(``.gitignore`` in a repository, ``.ignore``, ``.git/info/exclude``, git's global excludes file), ruff's
``**`` in globs, and settings overridden on the command line (``--config 'key = value'``,
``--extend-exclude``, ``--per-file-ignores``); ``--show-files`` and ``--show-settings`` show the outcome."""
from __future__ import annotations

import shutil
import subprocess

import pytest

from conftest import BAD_PROGRAM, BAD_ROW, BAD_COLUMN, requires_ll101
from looplint.config import Pattern

pytestmark = requires_ll101

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


@pytest.fixture(autouse=True)
def no_user_git_config(tmp_path_factory, monkeypatch):
    """The user's own global excludes file must not decide these tests."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / "gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "xdg"))
    return home


def git_init(path) -> None:
    subprocess.run(["git", "init", "-q", str(path)], check=True, capture_output=True, timeout=60)


def shown(out: str):
    return [line for line in out.splitlines() if line]


def reported(out: str):
    return sorted({line.split(":")[0] for line in out.splitlines() if f": LL101 " in line})


# ------------------------------------------------------------------------------------------ ignore files


@needs_git
def test_gitignored_wandb_copies_are_not_reported_twice(project, run):
    root = project({"train.py": BAD_PROGRAM, "wandb/run-1/files/code/train.py": BAD_PROGRAM, ".gitignore": "wandb/\n"})
    git_init(root)
    result = run(".")
    assert result.code == 1
    assert reported(result.out) == ["train.py"]
    assert f"train.py:{BAD_ROW}:{BAD_COLUMN}: LL101" in result.out
    everything = run("--no-respect-gitignore", ".")
    assert reported(everything.out) == ["train.py", "wandb/run-1/files/code/train.py"]


@needs_git
def test_respect_gitignore_false_in_the_configuration(project, run):
    root = project({
        "a.py": BAD_PROGRAM, "gen/b.py": BAD_PROGRAM, ".gitignore": "gen/\n",
        "pyproject.toml": "[tool.looplint]\nrespect-gitignore = false\n",
    })
    git_init(root)
    assert shown(run("--show-files").out) == ["a.py", "gen/b.py"]
    assert shown(run("--show-files", "--respect-gitignore").out) == ["a.py"]  # the command line wins


def test_gitignore_outside_a_repository_is_not_read_but_dot_ignore_is(project, run):
    project({"a.py": BAD_PROGRAM, "b.py": BAD_PROGRAM, "c.py": BAD_PROGRAM, ".gitignore": "a.py\n", ".ignore": "b.py\n"})
    assert shown(run("--show-files").out) == ["a.py", "c.py"]


@needs_git
def test_negation_nested_files_and_precedence(project, run):
    root = project({
        ".gitignore": "gen_*.py\n!gen_keep.py\n",
        "gen_a.py": BAD_PROGRAM, "gen_keep.py": BAD_PROGRAM, "gen_back.py": BAD_PROGRAM,
        "sub/.gitignore": "local.py\n", "sub/local.py": BAD_PROGRAM, "local.py": BAD_PROGRAM,
        ".ignore": "!gen_back.py\n",  # any .ignore beats any .gitignore (ripgrep's order)
    })
    git_init(root)
    assert shown(run("--show-files").out) == ["gen_back.py", "gen_keep.py", "local.py"]


@needs_git
def test_parent_gitignore_applies_when_linting_a_subfolder(project, run):
    root = project({".gitignore": "pkg/generated/\n", "pkg/a.py": BAD_PROGRAM, "pkg/generated/b.py": BAD_PROGRAM})
    git_init(root)
    assert shown(run("--show-files", "pkg").out) == ["pkg/a.py"]


@needs_git
def test_info_exclude_and_global_excludes_file(project, run, no_user_git_config):
    root = project({"a.py": BAD_PROGRAM, "b.py": BAD_PROGRAM, "c.py": BAD_PROGRAM, "d.py": BAD_PROGRAM})
    git_init(root)
    (root / ".git" / "info").mkdir(exist_ok=True)
    (root / ".git" / "info" / "exclude").write_text("a.py\n")
    global_file = no_user_git_config / "global-ignore"
    global_file.write_text("b.py\n")
    (no_user_git_config / "gitconfig").write_text(f"[core]\n\texcludesFile = {global_file.as_posix()}\n")
    assert shown(run("--show-files").out) == ["c.py", "d.py"]

    (no_user_git_config / "gitconfig").write_text("")  # no core.excludesFile: $XDG_CONFIG_HOME/git/ignore
    (no_user_git_config / "xdg" / "git").mkdir(parents=True)
    (no_user_git_config / "xdg" / "git" / "ignore").write_text("d.py\n")
    assert shown(run("--show-files").out) == ["b.py", "c.py"]


@needs_git
def test_a_file_named_on_the_command_line_is_linted_even_if_ignored(project, run):
    root = project({"scratch.py": BAD_PROGRAM, ".gitignore": "scratch.py\n"})
    git_init(root)
    assert run(".").code == 0
    assert reported(run("scratch.py").out) == ["scratch.py"]


# ------------------------------------------------------------------------------------------ globs


@pytest.mark.parametrize(
    "glob, path, expected",
    [
        ("experiments/**/*.py", "experiments/a.py", True),  # ** is zero or more folders, as in ruff
        ("experiments/**/*.py", "experiments/x/y/a.py", True),
        ("experiments/**/*.py", "other/a.py", False),
        ("**/generated/*", "src/pkg/generated/m.py", True),
        ("experiments/**", "experiments/x/a.py", True),
        ("src/*.py", "src/deep/m.py", True),  # ruff's * crosses /
        ("{train,eval}.py", "sub/eval.py", True),
        ("!tests/*", "tests/a.py", False),
        ("!tests/*", "src/a.py", True),
    ],
)
def test_globs_follow_ruff(tmp_path, glob, path, expected):
    assert Pattern.parse(glob, str(tmp_path)).matches(str(tmp_path / path)) is expected


def test_glob_root_with_special_characters_is_literal(tmp_path):
    root = tmp_path / "run[1]"
    assert Pattern.parse("a/**/*.py", str(root)).matches(str(root / "a" / "m.py"))
    assert not Pattern.parse("a/*.py", str(root)).matches(str(tmp_path / "run1" / "a" / "m.py"))


def test_per_file_ignores_with_globstar_in_the_configuration(project, run):
    project({
        "train.py": BAD_PROGRAM, "experiments/a.py": BAD_PROGRAM, "experiments/x/b.py": BAD_PROGRAM,
        "pyproject.toml": '[tool.looplint.per-file-ignores]\n"experiments/**/*.py" = ["LL101"]\n',
    })
    assert reported(run(".").out) == ["train.py"]


def test_exclude_with_globstar(project, run):
    project({
        "train.py": BAD_PROGRAM, "src/generated/a.py": BAD_PROGRAM,
        "pyproject.toml": '[tool.looplint]\nextend-exclude = ["**/generated/*.py"]\n',
    })
    assert shown(run("--show-files").out) == ["train.py"]


# ------------------------------------------------------------------------------------------ command line


def test_config_fragment_overrides_the_configuration_file(project, run):
    project({"train.py": BAD_PROGRAM, "pyproject.toml": '[tool.looplint]\nselect = ["LL2"]\n'})
    assert run(".").code == 0  # LL101 is not selected by the file
    result = run("--config", 'select = ["LL1"]', ".")
    assert result.code == 1 and reported(result.out) == ["train.py"]
    assert run("--config", "tool.looplint.ignore = ['LL101']", "--config", "select = ['LL1']", ".").code == 0


def test_config_fragment_with_a_configuration_file(project, run, tmp_path):
    project({"train.py": BAD_PROGRAM, "cfg/looplint.toml": 'ignore = ["LL101"]\n'})
    assert run("--config", "cfg/looplint.toml", ".").code == 0
    assert run("--config", "cfg/looplint.toml", "--config", "ignore = []", ".").code == 1


@pytest.mark.parametrize(
    "fragment, named",
    [
        ("select = [", "select = ["),
        ("colour = 'red'", "unknown key `colour`"),
        ("ignore = 'LL101'", "`ignore` in --config"),
        ("select = ['LL999']", "LL999"),
        ("respect-gitignore = 'no'", "respect-gitignore"),
        ("missing.toml", "missing.toml"),
    ],
)
def test_invalid_config_value_exits_2_naming_it(project, run, fragment, named):
    project({"train.py": BAD_PROGRAM})
    result = run("--config", fragment, ".")
    assert result.code == 2
    assert named in result.err and "Traceback" not in result.err


def test_extend_exclude_and_per_file_ignores_on_the_command_line(project, run):
    project({
        "train.py": BAD_PROGRAM, "old/a.py": BAD_PROGRAM, "experiments/b.py": BAD_PROGRAM,
        "pyproject.toml": '[tool.looplint.per-file-ignores]\n"train.py" = ["LL101"]\n',
    })
    assert reported(run(".").out) == ["experiments/b.py", "old/a.py"]
    assert reported(run("--extend-exclude", "old,unused", ".").out) == ["experiments/b.py"]
    # --per-file-ignores replaces the configured table (train.py is reported again), like ruff's
    replaced = run("--per-file-ignores", "experiments/**/*.py:LL101", ".")
    assert reported(replaced.out) == ["old/a.py", "train.py"]
    extended = run("--extend-per-file-ignores", "old/*:LL1", ".")
    assert reported(extended.out) == ["experiments/b.py"]


@pytest.mark.parametrize("value", ["experiments", "experiments:", ":LL101", "x.py:LL999"])
def test_bad_per_file_ignores_option_exits_2(project, run, value):
    project({"train.py": BAD_PROGRAM})
    result = run("--per-file-ignores", value, ".")
    assert result.code == 2 and "--per-file-ignores" in result.err


def test_show_files_lists_what_would_be_linted_and_lints_nothing(project, run):
    project({"train.py": BAD_PROGRAM, "b/c.ipynb": "{}", "notes.txt": "x", "build/d.py": BAD_PROGRAM})
    result = run("--show-files")
    assert result.code == 0
    assert shown(result.out) == ["b/c.ipynb", "train.py"]


def test_show_settings_shows_the_resolved_settings_of_the_first_file(project, run, tmp_path):
    project({
        "src/train.py": BAD_PROGRAM,
        "pyproject.toml": '[tool.looplint]\nignore = ["LL2"]\n[tool.looplint.per-file-ignores]\n"tests/**" = ["LL101"]\n',
    })
    result = run("--show-settings", "--extend-exclude", "old", "--config", "respect-gitignore = false", "src")
    assert result.code == 0
    assert "Resolved settings for: src/train.py" in result.out
    assert f"Settings path: {tmp_path / 'pyproject.toml'}" in result.out
    assert 'ignore = ["LL2"]' in result.out
    assert '"tests/**" = ["LL101"]' in result.out
    assert 'extend-exclude = ["old"]' in result.out
    assert "respect-gitignore = false" in result.out
    enabled = next(line for line in result.out.splitlines() if line.startswith("enabled = "))
    assert "LL101" in enabled and "LL201" not in enabled
