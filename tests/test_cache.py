"""The results cache: hits give what a fresh run gives, keys change with content, rules and looplint,
entries are whole or absent, and ``looplint clean`` removes only a looplint cache."""
from __future__ import annotations

import json
import os
import shutil
import textwrap
import threading
from pathlib import Path

import pytest

from conftest import BAD_PROGRAM, CLEAN_PROGRAM
from looplint import cache as cache_module
from looplint import cli, engine
from looplint.cache import Cache, clean, is_cache_directory
from looplint.diagnostics import Diagnostic
from test_project import STEP_LOOP

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


@pytest.fixture
def cached(monkeypatch):
    """Runs with the cache on (the suite turns it off), recording the tasks that were linted, not read."""
    monkeypatch.delenv(cache_module.NO_CACHE_ENV, raising=False)
    monkeypatch.delenv(cache_module.ENV_DIR, raising=False)
    linted = []
    real = cli._run_tasks

    def recording(tasks, jobs, on_done=None, settle=None):
        linted.append([path for path, _ in tasks])
        return real(tasks, jobs, on_done, settle)

    monkeypatch.setattr(cli, "_run_tasks", recording)
    return linted


def _findings(result):
    return sorted((d["filename"], d["location"]["row"], d["location"]["column"], d["code"], d["message"])
                  for d in json.loads(result.out))


def test_cache_hits_give_what_fresh_runs_give(tmp_path, project, run, cached):
    # Enough files for worker processes (cli.PARALLEL_THRESHOLD), bad and good, and one that does not parse.
    chosen = sorted(FIXTURES.glob("*/bad_*.py"))[:14] + sorted(FIXTURES.glob("*/good_*.py"))[:5]
    for i, source in enumerate(chosen):
        shutil.copy(source, tmp_path / f"f{i:02d}_{source.name}")
    (tmp_path / "broken.py").write_text("import torch\nloss.backward(\n")
    args = ["--isolated", "--output-format", "json", "."]
    cold = run(*args)
    warm = run(*args)
    fresh = run("--no-cache", "--jobs", "1", *args)
    assert cold.code == warm.code == fresh.code == 1
    assert _findings(cold) == _findings(warm) == _findings(fresh)
    assert {f[3] for f in _findings(cold)} >= {"LL000", "LL101"}
    assert len(cached[0]) == len(chosen) + 1 and cached[1] == []  # the warm run linted nothing
    assert cached[2] == cached[0]  # --no-cache linted everything
    tag = tmp_path / ".looplint_cache" / "CACHEDIR.TAG"
    assert tag.read_text().startswith("Signature: 8a477f597d28d172789f06886806bc55")
    assert (tmp_path / ".looplint_cache" / ".gitignore").read_text().strip().endswith("*")


def test_an_edited_file_or_another_selection_is_linted_again(project, run, cached):
    root = project({"train.py": BAD_PROGRAM})
    assert run("--isolated", "-q", "train.py").code == 1
    assert run("--isolated", "-q", "--ignore", "LL101", "train.py").code == 0  # other rules: another entry
    assert run("--isolated", "-q", "train.py").code == 1
    assert cached == [["train.py"], ["train.py"], []]
    (root / "train.py").write_text(CLEAN_PROGRAM)
    assert run("--isolated", "-q", "train.py").code == 0
    assert cached[-1] == ["train.py"]


def test_the_same_content_under_another_name_is_a_hit_with_that_name(project, run, cached):
    # (a file that imports nothing: what a file's imports lead to can make it a driver of training code)
    library = "def f(x):\n    return x + 'y'  # noqa: LL999\n"
    project({"a.py": BAD_PROGRAM, "c.py": BAD_PROGRAM, "lib.py": library, "b/lib2.py": library, "b/c.py": BAD_PROGRAM})
    first = run("--isolated", "-q", "a.py", "lib.py")
    second = run("--isolated", "-q", "c.py", os.path.join("b", "lib2.py"))
    assert cached == [["a.py", "lib.py"], []]
    assert first.out.replace("a.py", "") == second.out.replace("c.py", "")
    # A file that may train resolves its imports from its folder (a torch.py there would be imported):
    # in another folder it is linted again, once.
    third = run("--isolated", "-q", os.path.join("b", "c.py"))
    assert run("--isolated", "-q", os.path.join("b", "c.py")).out == third.out
    assert cached[2:] == [[os.path.join("b", "c.py")], []]
    assert third.out.replace(os.path.join("b", "c.py"), "") == first.out.replace("a.py", "")


TRAIN = textwrap.dedent(STEP_LOOP.format(name="step"))
PRINTS = "def step(v):\n    print(float(v))\n"  # the loss is never backpropagated: LL104
BACKWARD = "def step(value):\n    value.backward()\n"


def _relint(run, cached, target, linted):
    """Lints ``target`` through the cache, checks that it was linted again (or read) as ``linted`` says and
    that the result is a fresh run's; returns it."""
    before = len(cached)
    out = run("--isolated", "-q", target).out
    assert cached[before] == ([target] if linted else [])
    assert run("--isolated", "-q", "--no-cache", target).out == out
    return out


def test_an_entry_follows_the_modules_its_file_imports(project, run, cached):
    root = project({"train.py": TRAIN, "tools.py": PRINTS})
    assert "LL104" in _relint(run, cached, "train.py", True)
    _relint(run, cached, "train.py", False)  # nothing changed
    later = os.stat(root / "tools.py").st_mtime_ns + 5_000_000_000
    os.utime(root / "tools.py", ns=(later, later))
    _relint(run, cached, "train.py", False)  # touched, the same bytes: still a hit
    _relint(run, cached, "train.py", False)  # (the entry took the new stamp)
    (root / "tools.py").write_text(BACKWARD)  # edited
    assert "LL104" not in _relint(run, cached, "train.py", True)
    os.rename(root / "tools.py", root / "renamed.py")  # renamed: the module is gone
    _relint(run, cached, "train.py", True)
    _relint(run, cached, "train.py", False)
    project({"tools/__init__.py": PRINTS})  # a module that was missing is created
    assert "LL104" in _relint(run, cached, "train.py", True)
    os.remove(root / "tools" / "__init__.py")  # deleted
    _relint(run, cached, "train.py", True)


def test_entries_made_in_worker_processes_follow_the_modules_their_files_import(project, run, cached):
    """Results from ``--jobs`` workers are stored with what their lint read as each arrives."""
    names = [f"train_{i:02d}.py" for i in range(cli.PARALLEL_THRESHOLD + 2)]
    root = project({**{name: TRAIN for name in names}, "tools.py": PRINTS})
    args = ("--isolated", "-q", "--jobs", "2", ".")
    assert run(*args).out.count("LL104") == len(names)
    assert sorted(os.path.basename(p) for p in cached[-1]) == sorted(names + ["tools.py"])
    assert run(*args).out.count("LL104") == len(names) and cached[-1] == []  # all hits
    (root / "tools.py").write_text(BACKWARD)
    assert "LL104" not in run(*args).out
    assert sorted(os.path.basename(p) for p in cached[-1]) == sorted(names + ["tools.py"])  # each knew it read tools.py
    assert run("--isolated", "-q", "--no-cache", "--jobs", "2", ".").out == run(*args).out


def test_a_run_without_a_cache_does_not_carry_what_results_depend_on():
    """The workers of a run without a cache send no dependencies: the parent would hold them all."""
    train = str(sorted((FIXTURES / "ll104").glob("bad_*.py"))[0])
    codes = ("LL104",)
    assert cli._lint_task(train, codes, False)[2] is None
    assert cli._lint_task(train, codes)[2] is not None


def test_an_entry_follows_a_reexport_and_the_packages_around_its_file(project, run, cached):
    root = project({"tools.py": "from impl import step\n", "impl.py": PRINTS, "sub/train.py": TRAIN})
    target = os.path.join("sub", "train.py")
    assert "LL104" not in _relint(run, cached, target, True)  # sub is not a package: no tools module
    _relint(run, cached, target, False)
    project({"sub/__init__.py": ""})  # now it is: the folder above is searched too, and holds tools.py
    assert "LL104" in _relint(run, cached, target, True)
    _relint(run, cached, target, False)
    (root / "impl.py").write_text(BACKWARD)  # the module tools.py re-exports from
    assert "LL104" not in _relint(run, cached, target, True)
    project({"sub/tools.py": PRINTS})  # a nearer module shadows ../tools.py
    assert "LL104" in _relint(run, cached, target, True)


def test_an_entry_depends_on_what_the_lint_read_of_the_project_only(project, run, cached):
    """A module the file imports but the model never looked into (its names are used only by code that
    cannot matter) is no part of the result: editing it is still a hit."""
    train = TRAIN.replace("import torch\n", "import torch\nfrom report import summarize\n", 1)
    train += "\n\ndef log_all(values):\n    print(summarize(values))\n"  # a definition that cannot matter
    root = project({"train.py": train, "tools.py": PRINTS, "report.py": "def summarize(v):\n    return sum(v)\n"})
    assert "LL104" in _relint(run, cached, "train.py", True)
    (root / "report.py").write_text("def summarize(v):\n    return max(v)\n")
    _relint(run, cached, "train.py", False)
    (root / "tools.py").write_text(BACKWARD)  # the module it did read
    assert "LL104" not in _relint(run, cached, "train.py", True)


def test_a_file_linted_in_the_parsers_worker_is_stored_with_what_it_read(project, run, cached, monkeypatch):
    """A source large enough to be parsed in a worker process (``engine.IN_PROCESS_CHARS``) reports what
    its lint read of the project from there: its entry is a hit, and a miss once that module changes."""
    monkeypatch.setattr(engine, "IN_PROCESS_CHARS", 100)
    root = project({"train.py": TRAIN, "tools.py": PRINTS})
    assert "LL104" in _relint(run, cached, "train.py", True)
    _relint(run, cached, "train.py", False)
    (root / "tools.py").write_text(BACKWARD)
    assert "LL104" not in _relint(run, cached, "train.py", True)


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symbolic links here")
def test_a_result_through_a_linked_module_is_not_stored(project, run, cached):
    root = project({"train.py": TRAIN, "lib/impl.py": PRINTS})
    os.symlink(root / "lib" / "impl.py", root / "tools.py")
    assert "LL104" in _relint(run, cached, "train.py", True)
    assert "LL104" in _relint(run, cached, "train.py", True)  # linted again: a link's target may change


def test_no_cache_and_cache_dir(project, run, cached, tmp_path):
    project({"train.py": BAD_PROGRAM})
    run("--isolated", "--no-cache", "train.py")
    assert not (tmp_path / ".looplint_cache").exists()
    run("--isolated", "--cache-dir", "elsewhere", "train.py")
    run("--isolated", "--cache-dir", "elsewhere", "train.py")
    assert is_cache_directory(str(tmp_path / "elsewhere")) and not (tmp_path / ".looplint_cache").exists()
    assert cached == [["train.py"], ["train.py"], []]


def test_a_truncated_or_garbled_entry_is_a_miss_and_is_rewritten(project, run, cached, tmp_path):
    project({"train.py": BAD_PROGRAM})
    expected = run("--isolated", "train.py")
    entries = [p for p in (tmp_path / ".looplint_cache").rglob("*") if p.is_file() and len(p.name) == 40]
    assert len(entries) == 2  # the content's marker and the entry of (content, folder)
    damages = (b"[[7, 5, \"LL1", b"\x00\xff", b"{\"a\": 1}", b"[[1]]", b"[null, null, [[1]]]", b"[\"/elsewhere\", {}, []]")
    for entry in entries:
        for damage in damages:
            entry.write_bytes(damage)
            again = run("--isolated", "train.py")
            assert (again.code, again.out) == (expected.code, expected.out)
    assert cached == [["train.py"]] * (1 + 2 * len(damages))
    assert run("--isolated", "train.py").out == expected.out and cached[-1] == []


def test_an_unwritable_cache_folder_does_not_fail_the_run(project, run, cached, tmp_path):
    project({"train.py": BAD_PROGRAM})
    (tmp_path / "blocked").write_text("a file where the cache folder would be")
    result = run("--isolated", "-q", "--cache-dir", "blocked/cache", "train.py")
    assert result.code == 1 and "LL101" in result.out and result.err == ""


def test_entries_are_whole_under_concurrent_writers(tmp_path):
    cache = Cache(str(tmp_path / "c"), fingerprint="f" * 32)
    key = cache.key(b"x = 1\n", ("LL101",), False)
    payloads = [[Diagnostic("p", i, 1, "LL101", "m" * (i * 5000), "n", i, 2)] * i for i in range(1, 6)]
    whole = [[(d.line, d.message) for d in p] for p in payloads]
    seen, stop = [], threading.Event()

    def write(payload):
        for _ in range(60):
            cache.put(key, payload)

    def read():
        while not stop.is_set():
            got = cache.get(key, "p")
            if got is not None:
                seen.append([(d.line, d.message) for d in got])

    reader = threading.Thread(target=read)
    reader.start()
    writers = [threading.Thread(target=write, args=(p,)) for p in payloads]
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    stop.set()
    reader.join()
    assert seen and all(s in whole for s in seen)
    assert [p.name for p in (tmp_path / "c").rglob(".tmp-*")] == []  # no temporary file left behind


def test_entries_of_another_looplint_are_not_read(tmp_path):
    one, other = Cache(str(tmp_path), fingerprint="1" * 32), Cache(str(tmp_path), fingerprint="2" * 32)
    key = one.key(b"data", ("LL101",), False)
    one.put(key, [Diagnostic("p", 1, 1, "LL101", "m")])
    assert one.get(key, "q") == [Diagnostic("q", 1, 1, "LL101", "m")]
    assert other.get(key, "q") is None
    assert one.key(b"data", ("LL101",), True) != key and one.key(b"data", ("LL102",), False) != key


def test_the_fingerprint_follows_looplint_sources(monkeypatch, tmp_path):
    import looplint

    package = tmp_path / "pkg"
    package.mkdir()
    (package / "engine.py").write_text("x = 1\n")
    monkeypatch.setattr(looplint, "__path__", [str(package)])
    before = cache_module.engine_fingerprint()
    (package / "engine.py").write_text("x = 22\n")
    assert cache_module.engine_fingerprint() != before


def test_clean(project, run, cached, tmp_path):
    project({"train.py": BAD_PROGRAM})
    run("--isolated", "train.py")
    assert (tmp_path / ".looplint_cache").is_dir()
    result = run("clean")
    assert result.code == 0 and not (tmp_path / ".looplint_cache").exists()
    assert run("clean").code == 0  # nothing to remove is fine
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "data.txt").write_text("precious")
    refused = run("clean", "--cache-dir", "mine")
    assert refused.code == 2 and "not a looplint cache" in refused.err
    assert (tmp_path / "mine" / "data.txt").read_text() == "precious"
    with pytest.raises(cache_module.CacheError):
        clean(str(tmp_path / "train.py"))


@pytest.mark.parametrize("imports_project", [False, True])
def test_the_json_fix_edits_are_read_from_the_cache(project, run, cached, monkeypatch, imports_project):
    from looplint import rewrite

    files = {"train.py": ("import helpers\n" if imports_project else "") + BAD_PROGRAM}
    if imports_project:
        files["helpers.py"] = "def helper():\n    return 1\n"
    project(files)
    args = ("--isolated", "--output-format", "json", "train.py")
    fresh = run("--no-cache", *args)
    edits = [d["fix"]["edits"] for d in json.loads(fresh.out) if d["fix"]]
    assert edits and all(edits)  # the program has a fixable finding
    assert run(*args).out == fresh.out  # made by the report, and stored

    def made_again(*_args):
        raise AssertionError("the edits were made again")

    monkeypatch.setattr(rewrite, "fix_edits", made_again)
    assert run(*args).out == fresh.out
    assert cached[-1] == []  # a warm run: nothing linted, nothing fixed


def test_a_file_whose_stat_is_as_recorded_is_not_read_and_any_write_is_seen(project, run, cached, monkeypatch):
    from looplint import files

    monkeypatch.setattr(cache_module, "SETTLED_NS", 0)  # the test's files are seconds old
    root = project({"train.py": BAD_PROGRAM})
    args = ("--isolated", "-q", "train.py")
    assert run(*args).code == 1  # linted, and recorded in the stat index
    real = files.read_regular
    read = []
    monkeypatch.setattr(files, "read_regular", lambda path, *a: read.append(path) or real(path, *a))
    assert run(*args).code == 1
    assert read == [] and cached[-1] == []  # neither read nor linted
    # The same size and modification time, other bytes: the change time gives the write away.
    path = root / "train.py"
    before = os.stat(path)
    path.write_text(BAD_PROGRAM.replace("opt.step()", "opt.stop()"))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert os.stat(path).st_size == before.st_size
    assert run(*args).code == 0
    assert read == ["train.py"] and cached[-1] == ["train.py"]


def test_a_file_written_just_now_is_not_in_the_stat_index(project, run, cached, monkeypatch):
    from looplint import files

    project({"train.py": BAD_PROGRAM})
    args = ("--isolated", "-q", "train.py")
    assert run(*args).code == 1
    real = files.read_regular
    read = []
    monkeypatch.setattr(files, "read_regular", lambda path, *a: read.append(path) or real(path, *a))
    assert run(*args).code == 1
    assert read == ["train.py"] and cached[-1] == []  # read (its stat may not tell a write yet), not linted


@pytest.mark.parametrize("output", ["concise", "json"])  # json: fixes with their text edits, from the cache
def test_a_run_whose_files_are_all_cached_does_not_import_the_engine(tmp_path, output):
    import subprocess
    import sys

    (tmp_path / "train.py").write_text(BAD_PROGRAM)
    program = (
        f"import sys\nfrom looplint.cli import main\ncode = main(['--isolated', '-q', '--output-format', '{output}', 'train.py'])\n"
        "print(code, [m for m in ('libcst', 'looplint.model', 'looplint.engine') if m in sys.modules])\n"
    )
    env = {k: v for k, v in os.environ.items() if k != cache_module.NO_CACHE_ENV}
    runs = [subprocess.run([sys.executable, "-c", program], cwd=tmp_path, env=env, capture_output=True, text=True)
            for _ in range(2)]
    assert runs[0].stdout.splitlines()[-1] == "1 ['libcst', 'looplint.model', 'looplint.engine']"
    assert runs[1].stdout.splitlines()[-1] == "1 []"
    assert runs[0].stdout.splitlines()[:-1] == runs[1].stdout.splitlines()[:-1]


def test_rule_codes_are_the_registered_codes(monkeypatch):
    from looplint import rule
    from looplint.rule import _module_code, all_rules, rule_codes

    registered = [r.code for r in all_rules()]
    monkeypatch.setattr(rule, "_REGISTRY", {})  # as in a fresh process: codes from the module names
    assert rule_codes() == registered
    assert _module_code("ll101_missing_zero_grad") == "LL101" and _module_code("helpers") is None
