"""Proof that the fixes repair the bugs: every bad fixture with a fix is copied and fixed (unsafe fixes
included), and then

(a) the fixed file parses,
(b) looplint no longer reports the fixed findings and reports nothing new,
(c) ``looplint confirm`` runs the fixed program without error and no oracle sees the fixed bug any more
    (all fixed programs in ONE confirm call: torch's start-up is paid once),
(d) a second ``--fix`` changes nothing.

Every bad fixture of a rule that fixes is either fixed or named in ``NOT_FIXED`` with the reason.
"""
from __future__ import annotations

import ast
import importlib.util
import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from looplint.engine import lint_file
from looplint.rewrite import fix_file
from looplint.rule import all_rules, rule_by_code

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
BAD = sorted(FIXTURES.glob("ll*/bad_*.py"))

# Bad fixtures of fixing rules that get no fix, and why.
NOT_FIXED = {
    "ll202/bad_cosine_sized_in_steps_per_epoch.py": "the optimizer steps in a helper the scheduler is not handed to",
    "ll203/bad_phase_loop_tutorial.py": "`if phase == 'train':` guards the scheduler step together with model.train()",
    "ll204/bad_plateau_in_trainer_hook.py": "no metric is computed in the hook's scope",
    "ll302/bad_closure_backward_in_helper.py": "the closure is a lambda",
    "ll402/bad_eval_in_helper_inline_argument.py": "the helper names the module `network`, the training loop `model`",
    "ll403/bad_clip_every_accumulation_micro_batch.py": "the clip belongs inside the accumulation gate, before the step: "
                                                       "moving it there needs a human look",
}


def _fixes(path: Path):
    return [d for d in lint_file(str(path)) if d.fix is not None]


FIXABLE = [p for p in BAD if _fixes(p)]


def fixing_rules():
    """Rules whose "Fix safety" section says they fix (not "No fix", not "not applied automatically")."""
    out = []
    for r in all_rules():
        doc = r.documentation()
        if "## Fix safety" not in doc:
            continue
        section = " ".join(doc.split("## Fix safety")[1].split("##")[0].split())
        if not section.startswith("No fix") and "not applied automatically" not in section:
            out.append(r.code)
    return sorted(out)


def fid(path: Path) -> str:
    return path.relative_to(FIXTURES).as_posix()


@pytest.fixture(scope="module")
def fixed(tmp_path_factory):
    """fid -> (original diagnostics, FileFix of the fixed copy, copy path)."""
    root = tmp_path_factory.mktemp("fixed")
    out = {}
    for path in FIXABLE:
        copy = root / fid(path)
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, copy)
        out[fid(path)] = (lint_file(str(path)), fix_file(str(copy), all_rules(), unsafe=True), copy)
    return out


@pytest.fixture(scope="module")
def confirmed(fixed):
    """``looplint confirm`` on every fixed program, in one call: path -> its report."""
    if importlib.util.find_spec("torch") is None:  # pragma: no cover - the runtime extra is not installed
        pytest.skip("torch is not installed")
    paths = [str(copy) for _before, result, copy in fixed.values() if result.changed]
    proc = subprocess.run([sys.executable, "-m", "looplint", "confirm", "--output-format", "json", "--max-steps", "60", *paths],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    return {r["path"]: r for r in json.loads(proc.stdout)}


def test_every_fixing_rule_fixes_its_bad_fixtures():
    assert fixing_rules(), "no rule documents a fix"
    for code in fixing_rules():
        bad = [p for p in BAD if p.parent.name == code.lower()]
        unfixed = sorted(fid(p) for p in bad if p not in FIXABLE)
        assert unfixed == sorted(k for k in NOT_FIXED if k.startswith(code.lower() + "/")), code


@pytest.mark.parametrize("name", [fid(p) for p in FIXABLE])
def test_fix_repairs_the_bug(fixed, confirmed, name):
    before, result, copy = fixed[name]
    assert result.changed and result.fixed, "the fix changed nothing"
    after = copy.read_text(encoding="utf-8")
    ast.parse(after)  # (a)
    fixed_codes = {d.code for d in result.fixed}
    # (b) every fixed finding is gone and nothing new appears: what remains was there before, and was not fixed
    kinds = lambda ds: Counter((d.code, d.message) for d in ds)  # noqa: E731
    still, was, gone = kinds(lint_file(str(copy))), kinds(before), kinds(result.fixed)
    assert all(n <= was[k] - gone[k] for k, n in still.items()), (still, was, gone)
    # (c) the runtime no longer sees the fixed bug
    report = confirmed[str(copy)]
    assert report["error"] is None, report
    seen = {v["code"] for v in report["confirmed"] + report["unexpected"]}
    assert not (seen & set(fixed_codes)), json.dumps(report, indent=2)
    # (d) idempotent
    assert not fix_file(str(copy), all_rules(), unsafe=True).changed
