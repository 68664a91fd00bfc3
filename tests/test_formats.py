"""Output formats, fed with hand-made diagnostics (so they do not depend on which rules exist) and, for a few
end-to-end checks, with real command-line runs. SARIF is validated against the official 2.1.0 schema."""
from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import jsonschema
import pytest

from looplint.diagnostics import Diagnostic, docs_url
from looplint.report import FORMATS, ReportContext, github, sarif
from looplint.rule import Rule

from conftest import BAD_COLUMN, BAD_PROGRAM, BAD_ROW, BROKEN_PROGRAM, relative, requires_ll101

# The OASIS SARIF TC's sarif-schema-2.1.0.json (errata01), vendored byte for byte.
SCHEMA_PATH = Path(__file__).parent / "data" / "sarif-schema-2.1.0.json"
SCHEMA_SHA256 = "c3b4bb2d6093897483348925aaa73af03b3e3f4bd4ca38cef26dcb4212a2682e"


@pytest.fixture(scope="module")
def sarif_validator():
    data = SCHEMA_PATH.read_bytes()
    assert hashlib.sha256(data).hexdigest() == SCHEMA_SHA256, "the vendored SARIF schema was modified"
    schema = json.loads(data)
    assert schema["id"].endswith("/sarif-schema-2.1.0.json")
    jsonschema.Draft4Validator.check_schema(schema)
    return jsonschema.Draft4Validator(schema)


def _diag(path, line, column, code="LL101", message="optimizer `opt` steps on stale gradients", end_line=None,
          end_column=None, cell=None, name="missing-zero-grad"):
    return Diagnostic(path, line, column, code, message, name, end_line or line, end_column or column + 10,
                      cell=cell, noqa_row=line)


def render(fmt, diagnostics, context=None):
    out = io.StringIO()
    FORMATS[fmt](diagnostics, out, context or ReportContext())
    return out.getvalue()


@pytest.fixture
def sample(project):
    root = project({"train.py": BAD_PROGRAM})
    return root, [_diag("train.py", BAD_ROW, BAD_COLUMN, end_column=BAD_COLUMN + 10)]


# ---------------------------------------------------------------------------------------------- text formats


def test_concise_line(sample):
    _, diags = sample
    assert render("concise", diags) == f"train.py:{BAD_ROW}:{BAD_COLUMN}: LL101 optimizer `opt` steps on stale gradients\n"


def test_concise_notebook_location_names_the_cell(project):
    project({})
    d = _diag("nb.ipynb", 2, 5, cell=3)
    assert render("concise", [d]) == "nb.ipynb:cell 3:2:5: LL101 optimizer `opt` steps on stale gradients\n"


def test_concise_paths_are_relative_to_cwd_or_absolute_outside(project, tmp_path):
    project({})
    inside = _diag(str(tmp_path / "pkg" / "m.py"), 1, 1)
    outside = _diag(os.path.abspath(os.path.join(str(tmp_path), os.pardir, "elsewhere.py")), 1, 1)
    lines = render("concise", [inside, outside]).splitlines()
    assert lines[0].startswith(relative("pkg/m.py") + ":1:1:")
    assert lines[1].startswith(outside.path + ":1:1:")


def test_full_shows_source_caret_and_help(sample):
    _, diags = sample
    text = render("full", diags)
    lines = text.splitlines()
    assert lines[0] == f"train.py:{BAD_ROW}:{BAD_COLUMN}: LL101 optimizer `opt` steps on stale gradients"
    source_row = next(i for i, line in enumerate(lines) if line.startswith(f"{BAD_ROW} |"))
    assert lines[source_row] == f"{BAD_ROW} |     opt.step()"
    caret = lines[source_row + 1]
    assert caret.index("^") == lines[source_row].index("opt.step()")
    assert caret.endswith("^" * len("opt.step()") + " LL101")
    assert f"{BAD_ROW - 1} |     loss.backward()" in lines  # context before
    assert any(line.strip().startswith("= help: missing-zero-grad") and "looplint rule LL101" in line for line in lines)


def test_full_for_a_notebook_shows_the_cell_source(project, tmp_path):
    nb = {
        "cells": [
            {"cell_type": "markdown", "metadata": {}, "source": ["# notes"]},
            {"cell_type": "code", "metadata": {}, "source": ["a = 1\n", "opt.step()\n"], "outputs": [], "execution_count": None},
        ],
        "metadata": {}, "nbformat": 4, "nbformat_minor": 5,
    }
    project({"nb.ipynb": json.dumps(nb)})
    text = render("full", [_diag("nb.ipynb", 2, 1, end_column=11, cell=2)])
    assert text.splitlines()[0].startswith("nb.ipynb:cell 2:2:1: LL101")
    assert "2 | opt.step()" in text and "1 | a = 1" in text


def test_full_without_readable_source_still_prints_the_header(project):
    project({})
    text = render("full", [_diag("gone.py", 3, 1, code="LL000", message="cannot read file", name="unreadable-file")])
    assert text.startswith("gone.py:3:1: LL000 cannot read file\n")


# ---------------------------------------------------------------------------------------------- json


def test_json_has_ruff_field_names_and_one_based_positions(sample):
    root, diags = sample
    [item] = json.loads(render("json", diags))
    assert sorted(item) == sorted(
        ["code", "name", "message", "filename", "location", "end_location", "fix", "url", "noqa_row", "cell"]
    )
    assert item["location"] == {"row": BAD_ROW, "column": BAD_COLUMN}
    assert item["end_location"] == {"row": BAD_ROW, "column": BAD_COLUMN + 10}
    assert item["filename"] == str(root / "train.py")
    assert (item["code"], item["name"], item["fix"], item["cell"], item["noqa_row"]) == ("LL101", "missing-zero-grad", None, None, BAD_ROW)
    assert item["url"] == docs_url("LL101") and item["url"].endswith("/docs/rules/LL101.md")


def test_json_carries_the_notebook_cell(project):
    project({})
    [item] = json.loads(render("json", [_diag("nb.ipynb", 2, 5, cell=3)]))
    assert item["cell"] == 3 and item["location"]["row"] == 2


def test_json_of_nothing_is_an_empty_list(project):
    project({})
    assert json.loads(render("json", [])) == []
    assert render("json-lines", []) == ""


def test_json_lines_is_one_object_per_line_equal_to_json(project):
    project({})
    diags = [_diag("a.py", 1, 1), _diag("b.py", 2, 3, cell=None), _diag("nb.ipynb", 4, 2, cell=1)]
    lines = render("json-lines", diags).splitlines()
    assert [json.loads(line) for line in lines] == json.loads(render("json", diags))


# ---------------------------------------------------------------------------------------------- github


def test_github_workflow_command(sample):
    _, diags = sample
    assert render("github", diags) == (
        f"::error title=looplint (LL101),file=train.py,line={BAD_ROW},col={BAD_COLUMN},"
        f"endLine={BAD_ROW},endColumn={BAD_COLUMN + 10}::LL101 optimizer `opt` steps on stale gradients\n"
    )


def test_github_escapes_data_and_properties(project):
    project({})
    d = _diag("a,b:c%.py", 1, 1, message="50% done\r\nnext: a, b")
    line = render("github", [d])
    assert line.count("\n") == 1
    props, message = line.rstrip("\n").split("::", 2)[1:]
    assert "file=a%2Cb%3Ac%25.py," in props
    assert message == "LL101 50%25 done%0D%0Anext: a, b"
    assert github.escape_property("x:y,z%\n") == "x%3Ay%2Cz%25%0A"


def test_github_notebook_message_names_the_cell(project):
    project({})
    line = render("github", [_diag("nb.ipynb", 2, 5, cell=3)])
    assert "line=2,col=5" in line and line.rstrip().endswith("::cell 3: LL101 optimizer `opt` steps on stale gradients")


# ---------------------------------------------------------------------------------------------- sarif


class _DocumentedRule(Rule):
    """## What it does
    Finds a synthetic problem. It has two sentences.

    ## Why is this bad?
    Because.

    ## Example
    ```python
    bad()
    ```

    ## Use instead
    ```python
    good()
    ```
    """

    code = "LL101"
    name = "synthetic-rule"


def test_sarif_is_valid_and_lists_only_the_rules_that_fired(project, sarif_validator, monkeypatch):
    project({})
    monkeypatch.setattr(sarif, "rule_by_code", lambda code: _DocumentedRule if code == "LL101" else None)
    diags = [
        _diag("b.py", 3, 2),
        _diag("a.py", 1, 1, code="LL000", message="cannot parse", name="unreadable-file", end_column=1),
        _diag("b.py", 7, 5),
        _diag("nb.ipynb", 2, 1, cell=4),
    ]
    log = json.loads(render("sarif", diags))
    sarif_validator.validate(log)
    assert log["version"] == "2.1.0" and len(log["runs"]) == 1
    run = log["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == ["LL000", "LL101"]
    documented = rules[1]
    assert documented["name"] == "synthetic-rule"
    assert documented["help"]["text"] == _DocumentedRule.documentation()
    assert documented["shortDescription"]["text"] == _DocumentedRule.summary()
    assert documented["fullDescription"]["text"] == "Finds a synthetic problem. It has two sentences."
    assert documented["helpUri"] == docs_url("LL101")
    results = run["results"]
    assert len(results) == 4
    for d, res in zip(diags, results):
        assert res["ruleId"] == d.code
        assert rules[res["ruleIndex"]]["id"] == d.code
        assert res["level"] == "error"
        assert res["message"]["text"] == d.message
        location = res["locations"][0]["physicalLocation"]
        assert location["artifactLocation"] == {"uri": d.path, "uriBaseId": "%SRCROOT%"}
        assert location["region"] == {
            "startLine": d.line, "startColumn": d.column, "endLine": d.end_line, "endColumn": d.end_column,
        }
    assert results[3]["properties"] == {"cell": 4}


def test_sarif_uris_are_relative_to_cwd_and_escaped(project, sarif_validator, tmp_path):
    project({})
    inside = _diag(str(tmp_path / "my dir" / "m.py"), 1, 1)
    outside = _diag(os.path.abspath(os.path.join(str(tmp_path), os.pardir, "x.py")), 1, 1)
    log = json.loads(render("sarif", [inside, outside]))
    sarif_validator.validate(log)
    uris = [r["locations"][0]["physicalLocation"]["artifactLocation"] for r in log["runs"][0]["results"]]
    assert uris[0] == {"uri": "my%20dir/m.py", "uriBaseId": "%SRCROOT%"}
    assert uris[1] == {"uri": Path(outside.path).as_uri()}
    base = log["runs"][0]["originalUriBaseIds"]["%SRCROOT%"]["uri"]
    assert base == tmp_path.resolve().as_uri() + "/"


def test_sarif_of_a_clean_run_is_valid(project, sarif_validator):
    project({})
    log = json.loads(render("sarif", []))
    sarif_validator.validate(log)
    assert log["runs"][0]["results"] == [] and log["runs"][0]["tool"]["driver"]["rules"] == []


def test_sarif_validator_rejects_a_broken_log(sarif_validator):
    """The schema check can fail: a result without a message is not SARIF."""
    with pytest.raises(jsonschema.ValidationError):
        sarif_validator.validate({"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x"}}, "results": [{"ruleId": "LL1"}]}]})


def test_sarif_end_to_end_from_the_command_line(project, run, sarif_validator):
    project({"pkg/broken.py": BROKEN_PROGRAM})
    result = run("--output-format", "sarif", "pkg")
    assert result.code == 1
    log = json.loads(result.out)
    sarif_validator.validate(log)
    [res] = log["runs"][0]["results"]
    assert res["ruleId"] == "LL000"
    assert res["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "pkg/broken.py"


@requires_ll101
def test_every_format_reports_ll101_end_to_end(project, run, sarif_validator):
    from looplint.rule import rule_by_code

    project({"train.py": BAD_PROGRAM})
    rule = rule_by_code("LL101")
    for fmt in FORMATS:
        result = run("--output-format", fmt, "train.py")
        assert result.code == 1, fmt
        assert "LL101" in result.out, fmt
    log = json.loads(run("--output-format", "sarif", "train.py").out)
    sarif_validator.validate(log)
    [descriptor] = log["runs"][0]["tool"]["driver"]["rules"]
    assert descriptor["help"]["text"] == rule.documentation()
    region = log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"]
    assert (region["startLine"], region["startColumn"]) == (BAD_ROW, BAD_COLUMN)
    [item] = json.loads(run("--output-format", "json", "train.py").out)
    assert item["location"] == {"row": BAD_ROW, "column": BAD_COLUMN} and item["name"] == rule.name
    full = run("--output-format", "full", "train.py").out
    assert "^" * len("opt.step()") + " LL101" in full
