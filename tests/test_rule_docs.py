"""Every rule is documented (ruff's headings), named in kebab-case and backed by fixtures; ``looplint rule``
and ``looplint rules`` print that documentation. The checker is itself tested on synthetic rules, so the
per-rule tests are meaningful from the first rule that lands."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import List

import pytest

import looplint.rule
from looplint.rule import CODE_RE, Rule, all_rules

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
REQUIRED_HEADINGS = ("## What it does", "## Why is this bad?", "## Example", "## Use instead")
KEBAB = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$")
EXPECT = re.compile(r"#\s*expect:\s*(?P<codes>LL\d{3}(?:\s*,\s*LL\d{3})*)")


def expected_codes(text: str) -> set:
    return {c.strip() for m in EXPECT.finditer(text) for c in m.group("codes").split(",")}


def documentation_problems(rule: type, fixtures: Path = FIXTURES) -> List[str]:
    """What is wrong with a rule's documentation and fixtures; empty when nothing is."""
    problems = []
    doc = rule.documentation()
    lines = [line.rstrip() for line in doc.splitlines()]
    for heading in REQUIRED_HEADINGS:
        if heading not in lines:
            problems.append(f"{rule.code}: missing heading {heading!r}")
    if not CODE_RE.match(rule.code or ""):
        problems.append(f"{rule.__name__}: bad code {rule.code!r}")
    if not KEBAB.match(rule.name or ""):
        problems.append(f"{rule.code}: name {rule.name!r} is not kebab-case")
    files = sorted(fixtures.rglob("*.py")) if fixtures.is_dir() else []
    texts = {f: f.read_text(encoding="utf-8", errors="replace") for f in files}
    bad = [f for f, t in texts.items() if rule.code in expected_codes(t)]
    mentions = (rule.code.lower(), rule.name, rule.name.replace("-", "_"))
    good = [
        f for f, t in texts.items()
        if rule.code not in expected_codes(t)
        and any(m and m in str(f.relative_to(fixtures)).lower() for m in mentions)
    ]
    if not bad:
        problems.append(f"{rule.code}: no fixture under {fixtures} marks `# expect: {rule.code}`")
    if not good:
        problems.append(f"{rule.code}: no good fixture (a file under a path naming {rule.code.lower()} without the marker)")
    return problems


GOOD_DOC = """## What it does
Finds a synthetic problem.

## Why is this bad?
It would train wrongly.

## Example
```python
bad()
```

## Use instead
```python
good()
```
"""


def synthetic_rule(doc: str = GOOD_DOC, code: str = "LL901", name: str = "synthetic-problem") -> type:
    return type("Synthetic", (Rule,), {"__doc__": doc, "code": code, "name": name})


@pytest.fixture
def synthetic_fixtures(tmp_path):
    (tmp_path / "ll901").mkdir()
    (tmp_path / "ll901" / "bad_case.py").write_text("step()  # expect: LL901\n")
    (tmp_path / "ll901" / "good_case.py").write_text("zero_grad(); step()\n")
    return tmp_path


# ---------------------------------------------------------------------------------------------- the checker


def test_checker_accepts_a_complete_rule(synthetic_fixtures):
    assert documentation_problems(synthetic_rule(), synthetic_fixtures) == []


@pytest.mark.parametrize("heading", REQUIRED_HEADINGS)
def test_checker_rejects_a_missing_heading(synthetic_fixtures, heading):
    problems = documentation_problems(synthetic_rule(GOOD_DOC.replace(heading, "## Something else")), synthetic_fixtures)
    assert problems == [f"LL901: missing heading {heading!r}"]


@pytest.mark.parametrize("name", ["SyntheticProblem", "synthetic_problem", "synthetic problem", "", "-x"])
def test_checker_rejects_a_name_not_in_kebab_case(synthetic_fixtures, name):
    problems = documentation_problems(synthetic_rule(name=name), synthetic_fixtures)
    assert any("kebab-case" in p for p in problems)


def test_checker_requires_bad_and_good_fixtures(tmp_path):
    problems = documentation_problems(synthetic_rule(), tmp_path)
    assert len(problems) == 2 and "expect: LL901" in problems[0] and "good fixture" in problems[1]
    (tmp_path / "ll901").mkdir()
    (tmp_path / "ll901" / "bad.py").write_text("step()  # expect: LL102, LL901\n")
    assert [p for p in documentation_problems(synthetic_rule(), tmp_path) if "good" in p]
    (tmp_path / "ll901" / "good.py").write_text("ok()\n")
    assert documentation_problems(synthetic_rule(), tmp_path) == []


# ---------------------------------------------------------------------------------------------- every rule


@pytest.mark.parametrize("rule", all_rules(), ids=lambda r: r.code)
def test_every_rule_is_documented_named_and_has_fixtures(rule):
    assert documentation_problems(rule) == []


def test_rule_names_and_codes_are_unique():
    rules = all_rules()
    assert len({r.name for r in rules}) == len(rules)
    assert len({r.code for r in rules}) == len(rules)


# ---------------------------------------------------------------------------------------------- commands


@pytest.fixture
def registry(monkeypatch):
    """A registry holding two synthetic rules, so the commands can be checked before real rules land."""
    rules = {
        "LL901": synthetic_rule(),
        "LL902": synthetic_rule(GOOD_DOC.replace("synthetic problem", "second problem"), "LL902", "second-problem"),
    }
    monkeypatch.setattr(looplint.rule, "_REGISTRY", rules)
    return rules


def test_rule_command_prints_the_documentation(run, registry):
    result = run("rule", "ll901")
    assert result.code == 0
    assert result.out.startswith("# synthetic-problem (LL901)\n\n## What it does\nFinds a synthetic problem.")
    for heading in REQUIRED_HEADINGS:
        assert heading in result.out


def test_rule_all_prints_every_rule(run, registry):
    result = run("rule", "--all")
    assert result.code == 0
    assert result.out.index("# synthetic-problem (LL901)") < result.out.index("# second-problem (LL902)")
    items = json.loads(run("rule", "--all", "--output-format", "json").out)
    assert [(i["code"], i["name"]) for i in items] == [
        ("LL000", "unreadable-file"), ("LL901", "synthetic-problem"), ("LL902", "second-problem"),
    ]
    assert items[1]["explanation"] == registry["LL901"].documentation()


def test_rules_command_lists_code_name_summary(run, registry):
    result = run("rules")
    assert result.code == 0
    assert result.out.splitlines() == [
        "LL000  unreadable-file    File cannot be read, decoded or parsed.",
        "LL901  synthetic-problem  Finds a synthetic problem.",
        "LL902  second-problem     Finds a second problem.",
    ]
    assert json.loads(run("rules", "--output-format", "json").out)[2] == {
        "code": "LL902", "name": "second-problem", "summary": "Finds a second problem.",
    }


def test_rule_command_accepts_a_name_like_ruff(run, registry):
    by_name = run("rule", "second-problem")
    assert by_name.code == 0 and by_name.out.startswith("# second-problem (LL902)")
    assert run("rule", "Second-Problem").out == by_name.out
    assert run("rule", "unreadable-file").out == run("rule", "LL000").out
    assert json.loads(run("rule", "synthetic-problem", "--output-format", "json").out)["code"] == "LL901"
    typo = run("rule", "second-problme")
    assert typo.code == 2 and "did you mean `second-problem`" in typo.err


def test_rule_command_errors_exit_2(run, registry):
    unknown = run("rule", "LL999")
    assert unknown.code == 2 and "LL999" in unknown.err
    assert run("rule").code == 2
    assert run("rule", "LL901", "--all").code == 2


def test_rule_ll000_is_documented(run):
    result = run("rule", "LL000")
    assert result.code == 0 and result.out.startswith("# unreadable-file (LL000)")


def test_rule_command_for_every_registered_rule(run):
    for rule in all_rules():
        result = run("rule", rule.code)
        assert result.code == 0
        assert rule.documentation().strip() in result.out
        assert run("rule", rule.name).out == result.out
    listed = run("rules").out
    assert listed.splitlines()[0].split()[:2] == ["LL000", "unreadable-file"]
    for rule in all_rules():
        assert re.search(rf"^{rule.code}\s+{re.escape(rule.name)}\s", listed, re.M)
