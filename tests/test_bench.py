"""bench/: the synthetic corpus is deterministic and holds training code the rules judge; the process-tree
memory reading counts children."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from looplint.engine import lint_file

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench")


def _load(name):
    """A bench script as a module, without putting bench/ on sys.path (bench/fuzz.py would shadow tests/fuzz)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"bench_{name}", os.path.join(BENCH, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


synthetic = _load("synthetic")
run = _load("run")


def _contents(folder):
    out = {}
    for directory, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(directory, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, folder)] = f.read()
    return out


def test_synthetic_corpus_is_deterministic_and_mixed(tmp_path):
    first = synthetic.write_corpus(str(tmp_path / "a"), 60, seed=7)
    synthetic.write_corpus(str(tmp_path / "b"), 60, seed=7)
    synthetic.write_corpus(str(tmp_path / "c"), 60, seed=8)
    assert len(first) == 60
    assert _contents(tmp_path / "a") == _contents(tmp_path / "b")
    assert _contents(tmp_path / "a") != _contents(tmp_path / "c")
    names = [os.path.basename(p) for p in first]
    training = [n for n in names if n.startswith("train_")]
    assert 0 < len(training) < len(names) / 2  # mostly library code


@pytest.mark.parametrize("bug, code", [("no-zero-grad", "LL101"), ("scheduler-first", "LL203"), ("graph-accumulation", "LL401"), ("none", None)])
def test_synthetic_training_scripts_have_the_bug_they_are_built_with(tmp_path, bug, code):
    import random

    path = tmp_path / "train.py"
    path.write_text(synthetic.training_script(random.Random(1), 1, bug))
    codes = {d.code for d in lint_file(str(path))}
    assert codes == ({code} if code else set())


def test_tree_rss_counts_the_children():
    child = subprocess.Popen([sys.executable, "-c", "b = bytearray(60 << 20); import time; time.sleep(30)"],
                             stdout=subprocess.PIPE)
    try:
        import time

        deadline = time.monotonic() + 60
        while run.tree_rss(child.pid) < (60 << 20) and time.monotonic() < deadline:
            time.sleep(0.05)
        own = run.tree_rss(os.getpid())
        assert own >= run.tree_rss(child.pid) + run._rss(os.getpid()) - (8 << 20)
        assert run.tree_rss(child.pid) >= 60 << 20
    finally:
        child.kill()
        child.wait()
