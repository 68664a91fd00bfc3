"""Every rule's documentation is reachable by a stable link: ``docs/rules/LLxxx.md``, generated from the
rule's docstring and kept current; every finding's help URL names a page (and anchor) that exists in this
repository; the README's and the pages' relative links resolve; and what the README says of ``# ruff: noqa``
and ``# flake8: noqa`` is what looplint does."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import BAD_PROGRAM, requires_ll101
from looplint import ruledocs
from looplint.diagnostics import REPOSITORY_URL, Diagnostic, docs_url
from looplint.rule import PARSE_ERROR, all_rules

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs" / "rules"
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def every_code():
    return [PARSE_ERROR] + [r.code for r in all_rules()]


def heading_anchors(markdown: str):
    """GitHub's anchors for a page's headings: lower case, punctuation dropped, spaces to hyphens."""
    anchors = set()
    for heading in re.findall(r"^#+ (.+)$", markdown, re.M):
        anchors.add(re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-"))
    return anchors


def target_exists(url: str) -> bool:
    """A link to this repository (absolute on its host, or relative) names a file that exists here and, if
    it has one, an anchor that one of that file's headings makes."""
    prefix = f"{REPOSITORY_URL}/blob/main/"
    path = url[len(prefix):] if url.startswith(prefix) else url
    path, _, anchor = path.partition("#")
    target = REPO / path
    if not target.is_file():
        return False
    return not anchor or anchor in heading_anchors(target.read_text(encoding="utf-8"))


def test_rule_pages_are_current():
    stale = ruledocs.stale(str(DOCS))
    assert not stale, f"run `python -m looplint.ruledocs docs/rules`: stale or missing {stale}"


def test_stale_check_notices_an_edited_or_missing_page(tmp_path):
    ruledocs.write(str(tmp_path))
    assert ruledocs.stale(str(tmp_path)) == []
    (tmp_path / "LL000.md").write_text("edited\n")
    (tmp_path / "README.md").unlink()
    assert sorted(Path(p).name for p in ruledocs.stale(str(tmp_path))) == ["LL000.md", "README.md"]
    assert ruledocs.main(["--check", str(tmp_path)]) == 1


@pytest.mark.parametrize("code", every_code())
def test_every_findings_help_url_points_at_its_page(code):
    url = Diagnostic("t.py", 1, 1, code, "m").url
    assert url == docs_url(code) and url.startswith(REPOSITORY_URL + "/blob/main/")
    assert target_exists(url), f"{url}: no such page; run `python -m looplint.ruledocs docs/rules`"
    page = (REPO / url[len(REPOSITORY_URL + "/blob/main/"):]).read_text(encoding="utf-8")
    assert page.splitlines()[2].startswith(f"# {code}: ")


def test_each_page_holds_its_rules_documentation():
    for rule in all_rules():
        page = (DOCS / f"{rule.code}.md").read_text(encoding="utf-8")
        assert rule.documentation().strip() in page
        for heading in ("## What it does", "## Why is this bad?", "## Example", "## Use instead"):
            assert heading in page


def test_readme_links_every_rule_to_its_page():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for code in every_code():
        assert f"[{code}](docs/rules/{code}.md)" in readme, (
            f"README's rules table needs the row `| [{code}](docs/rules/{code}.md) | name | what goes wrong |`"
        )


@pytest.mark.parametrize("document", ["README.md", "docs/rules/README.md"] + [f"docs/rules/{c}.md" for c in every_code()[:2]])
def test_relative_links_resolve(document):
    path = REPO / document
    for target in LINK.findall(path.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", target):
            continue  # another site
        if target.startswith("#"):
            assert target[1:] in heading_anchors(path.read_text(encoding="utf-8")), (document, target)
            continue
        relative = (path.parent / target.split("#")[0]).resolve().relative_to(REPO)
        assert target_exists(str(relative) + ("#" + target.split("#", 1)[1] if "#" in target else "")), (document, target)


@requires_ll101
@pytest.mark.parametrize(
    "comment, suppressed",
    [("# ruff: noqa", True), ("# flake8: noqa", True), ("# ruff: noqa: LL101", True), ("# ruff: noqa: E501", False)],
)
def test_ruff_and_flake8_file_level_noqa_as_documented(project, run, comment, suppressed):
    project({"train.py": comment + "\n" + BAD_PROGRAM})
    result = run("train.py")
    assert (result.code == 0) is suppressed
