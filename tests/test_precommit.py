"""The pre-commit hook, met the way a user meets it.

* The manifest ``.pre-commit-hooks.yaml`` passes ``pre-commit validate-manifest`` and declares the hook
  the README promises.
* Slow but essential (about 30 s): ``pre-commit try-repo`` installs looplint from a snapshot of this
  working tree into pre-commit's own virtualenv (pip, from the package index) and runs the hook in a
  temporary git repository: a file with a finding fails the hook with the finding printed, a clean file
  passes. A ``.pre-commit-config.yaml`` like the README's is run too. When pre-commit cannot build its
  environment because the package index cannot be reached, the test is skipped and says so.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import BAD_PROGRAM, BAD_ROW, BAD_COLUMN, CLEAN_PROGRAM, requires_ll101

pytest.importorskip("pre_commit", reason="pre-commit is not installed (it is in the `test` extra)")

REPO = Path(__file__).resolve().parents[1]
MANIFEST = REPO / ".pre-commit-hooks.yaml"
# What the package needs to build and run: the files a commit of this working tree would hold.
PACKAGE_PATHS = ("pyproject.toml", "README.md", "LICENSE", ".pre-commit-hooks.yaml", "looplint", "rules")
# pip's ways of saying that it could not reach the package index (then the machine, not looplint, failed).
NETWORK_ERRORS = re.compile(
    r"NewConnectionError|Temporary failure in name resolution|Network is unreachable|Connection refused|"
    r"ConnectTimeout|ReadTimeout|ProxyError|No matching distribution found|Could not find a version that satisfies",
)
PRE_COMMIT_UNEXPECTED_ERROR = 3


def notebook(*sources: str) -> str:
    cells = [
        {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None, "source": s.splitlines(True)}
        for s in sources
    ]
    return json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5})


def pre_commit(*args: str, cwd: Path, home: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PRE_COMMIT_HOME=str(home), PRE_COMMIT_COLOR="never", GIT_TERMINAL_PROMPT="0")
    env.pop("PRE_COMMIT", None)
    return subprocess.run(
        [sys.executable, "-m", "pre_commit", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def git(*args: str, cwd: Path) -> str:
    env = dict(
        os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com", GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@example.com", GIT_CONFIG_NOSYSTEM="1",
    )
    proc = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"git {' '.join(args)}: {proc.stderr}"
    return proc.stdout


def skip_if_environment_cannot_be_built(proc: subprocess.CompletedProcess, home: Path) -> None:
    """pre-commit exits 3 when installing the hook's environment fails; skip only when pip could not
    reach the index, and fail (with pre-commit's log) for anything else."""
    if proc.returncode != PRE_COMMIT_UNEXPECTED_ERROR:
        return
    log_path = home / "pre-commit.log"
    log = log_path.read_text(encoding="utf-8", errors="replace") if log_path.exists() else ""
    if NETWORK_ERRORS.search(log + proc.stdout + proc.stderr):
        pytest.skip("pre-commit could not build the hook's environment: the package index is not reachable")
    pytest.fail(f"pre-commit failed unexpectedly:\n{proc.stdout}\n{proc.stderr}\n{log[-4000:]}")


def test_manifest_is_valid():
    proc = subprocess.run(
        [sys.executable, "-m", "pre_commit", "validate-manifest", str(MANIFEST)], capture_output=True, text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_manifest_declares_the_looplint_hook():
    yaml = pytest.importorskip("yaml")
    [hook] = yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))
    assert hook["id"] == "looplint"
    assert hook["language"] == "python"
    assert hook["entry"].split()[0] == "looplint"
    assert hook["types_or"] == ["python", "pyi", "jupyter"]
    assert hook["require_serial"] is False


def test_manifest_with_an_unknown_field_type_is_rejected(tmp_path):
    """The validation above can fail: a manifest with a wrong type is refused."""
    broken = tmp_path / ".pre-commit-hooks.yaml"
    broken.write_text(MANIFEST.read_text(encoding="utf-8").replace("require_serial: false", "require_serial: 7"))
    proc = subprocess.run(
        [sys.executable, "-m", "pre_commit", "validate-manifest", str(broken)], capture_output=True, text=True,
        timeout=120,
    )
    assert proc.returncode != 0


def snapshot_of_working_tree(dest: Path) -> str:
    """A git repository holding this working tree's package files (tracked and new), committed; its sha."""
    listed = git("ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", *PACKAGE_PATHS, cwd=REPO)
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    git("init", "-q", cwd=dest)
    git("add", "-A", cwd=dest)
    git("commit", "-q", "-m", "snapshot", cwd=dest)
    return git("rev-parse", "HEAD", cwd=dest).strip()


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
@requires_ll101
def test_try_repo_fails_on_a_finding_and_passes_a_clean_file(tmp_path):
    source, user, home = tmp_path / "looplint-src", tmp_path / "project", tmp_path / "pre-commit-home"
    for folder in (source, user, home):
        folder.mkdir()
    rev = snapshot_of_working_tree(source)
    git("init", "-q", cwd=user)
    (user / "train.py").write_text(BAD_PROGRAM, encoding="utf-8")
    (user / "clean.py").write_text(CLEAN_PROGRAM, encoding="utf-8")
    (user / "notes.txt").write_text("opt.step()\n", encoding="utf-8")  # not a Python file: not passed
    setup, loop = BAD_PROGRAM.split("for ", 1)
    (user / "train.ipynb").write_text(notebook(setup, "for " + loop), encoding="utf-8")
    git("add", ".", cwd=user)

    files = ["train.py", "clean.py", "notes.txt", "train.ipynb"]
    proc = pre_commit("try-repo", str(source), "looplint", "--files", *files, cwd=user, home=home)
    skip_if_environment_cannot_be_built(proc, home)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"train.py:{BAD_ROW}:{BAD_COLUMN}: LL101 " in proc.stdout
    assert f"train.ipynb:cell 2:{BAD_ROW - setup.count(chr(10))}:{BAD_COLUMN}: LL101 " in proc.stdout
    assert "clean.py" not in proc.stdout and "notes.txt" not in proc.stdout
    assert re.search(r"^looplint\.+Failed$", proc.stdout, re.M)

    # The user's way: a .pre-commit-config.yaml naming the repository and a revision (as in the README).
    (user / ".pre-commit-config.yaml").write_text(
        f"repos:\n  - repo: {source.as_posix()}\n    rev: {rev}\n    hooks:\n      - id: looplint\n", encoding="utf-8"
    )
    clean = pre_commit("run", "--files", "clean.py", cwd=user, home=home)
    skip_if_environment_cannot_be_built(clean, home)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert re.search(r"^looplint\.+Passed$", clean.stdout, re.M)
    bad = pre_commit("run", "--files", "train.py", cwd=user, home=home)  # the environment is reused
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert f"train.py:{BAD_ROW}:{BAD_COLUMN}: LL101 " in bad.stdout


def readme_pre_commit_configs():
    """The `.pre-commit-config.yaml` examples of the README's pre-commit section, verbatim."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## pre-commit\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```yaml\n(.*?)```", section, re.S)


def test_readme_names_no_repository_or_rev_that_does_not_exist():
    configs = readme_pre_commit_configs()
    assert len(configs) == 2
    assert "repo: local" in configs[0]
    assert "github.com" not in "".join(configs)  # no published repository to name yet


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
@requires_ll101
def test_readme_local_hook_runs_the_installed_looplint(tmp_path, monkeypatch):
    """The README's first form, verbatim: `repo: local`, `language: system` (nothing to install)."""
    user, home = tmp_path / "project", tmp_path / "pre-commit-home"
    user.mkdir()
    home.mkdir()
    git("init", "-q", cwd=user)
    (user / ".pre-commit-config.yaml").write_text(readme_pre_commit_configs()[0], encoding="utf-8")
    (user / "train.py").write_text(BAD_PROGRAM, encoding="utf-8")
    (user / "clean.py").write_text(CLEAN_PROGRAM, encoding="utf-8")
    git("add", ".", cwd=user)
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    bad = pre_commit("run", "--files", "train.py", cwd=user, home=home)
    clean = pre_commit("run", "--files", "clean.py", cwd=user, home=home)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert f"train.py:{BAD_ROW}:{BAD_COLUMN}: LL101 " in bad.stdout
    assert clean.returncode == 0, clean.stdout + clean.stderr


def test_readme_clone_form_is_a_valid_config(tmp_path):
    """The README's second form with its placeholders filled in is a configuration pre-commit accepts (it is
    run for real, from a snapshot of this tree, by the try-repo test above)."""
    config = readme_pre_commit_configs()[1]
    config = config.replace("/path/to/looplint", str(REPO)).replace("0123456789abcdef0123456789abcdef01234567", "HEAD")
    path = tmp_path / ".pre-commit-config.yaml"
    path.write_text(config, encoding="utf-8")
    proc = pre_commit("validate-config", str(path), cwd=tmp_path, home=tmp_path / "home")
    assert proc.returncode == 0, proc.stdout + proc.stderr
