"""``looplint server`` end to end: pytest-lsp starts the real server (``python -m looplint server``) as a
subprocess and drives it over stdio like an editor would, with VS Code's client capabilities.

One server serves the whole module (starting one costs about a second); every test opens its own
documents, in its own folder, so that no test sees another's state."""
from __future__ import annotations

import asyncio
import inspect
import json
import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import attrs
import pytest

from conftest import BAD_COLUMN, BAD_PROGRAM, BAD_ROW, BROKEN_PROGRAM, CLEAN_PROGRAM, requires_ll101

pytest.importorskip("pygls", reason="the `lsp` extra (pygls) is not installed")
pytest_lsp = pytest.importorskip("pytest_lsp", reason="pytest-lsp is not installed (it is in the `test` extra)")

from lsprotocol import types  # noqa: E402
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities  # noqa: E402
from pytest_lsp.client import DEFAULT_CLIENT_FEATURES, register_lsp_features  # noqa: E402
from pygls.protocol import default_converter  # noqa: E402

pytestmark = requires_ll101
in_session = pytest.mark.asyncio(loop_scope="module")  # the tests that talk to the module's server

SERVER = [sys.executable, "-m", "looplint", "server"]
WAIT = 120.0  # seconds: a guard against a hung server, never a measure of speed
EMOJI_PREFIX = 's = "\U0001F600"; '  # one astral character: 1 code point, 2 UTF-16 code units
STEP_LINE = "    opt.step()"


def make_client() -> LanguageClient:
    """pytest-lsp's client, which also keeps every publishDiagnostics (uri, version, diagnostics)."""
    client = LanguageClient(converter_factory=default_converter)
    client.published = []  # type: ignore[attr-defined]
    client.registrations = []  # type: ignore[attr-defined]

    def register(ls: LanguageClient, params: types.RegistrationParams) -> None:
        ls.registrations.extend(params.registrations)  # type: ignore[attr-defined]

    def publish(ls: LanguageClient, params: types.PublishDiagnosticsParams) -> None:
        ls.diagnostics[params.uri] = params.diagnostics
        ls.published.append(params)  # type: ignore[attr-defined]

    register_lsp_features(client, {
            **DEFAULT_CLIENT_FEATURES,
            types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS: publish,
            types.CLIENT_REGISTER_CAPABILITY: register,
        })
    return client


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER, client_factory=make_client), scope="module")
async def client(lsp_client: LanguageClient):
    # VS Code's capabilities (UTF-16 positions), with the notebook synchronisation of today's VS Code.
    capabilities = attrs.evolve(
        client_capabilities("visual-studio-code"),
        notebook_document=types.NotebookDocumentClientCapabilities(
            synchronization=types.NotebookDocumentSyncClientCapabilities()
        ),
    )
    await lsp_client.initialize_session(types.InitializeParams(capabilities=capabilities, root_uri=None))
    yield
    await lsp_client.shutdown_session()


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER, client_factory=make_client), scope="module")
async def utf8_client(lsp_client: LanguageClient):
    """A client that prefers UTF-8 positions (Neovim 0.11 offers utf-8, utf-16, utf-32 in that order)."""
    await lsp_client.initialize_session(
        types.InitializeParams(capabilities=client_capabilities("neovim@v0.11.0"), root_uri=None)
    )
    yield
    await lsp_client.shutdown_session()


class Editor:
    """Open documents and their versions, for one test."""

    def __init__(self, client: LanguageClient, folder: Path):
        self.client = client
        self.folder = folder
        self.versions: Dict[str, int] = {}
        self.texts: Dict[str, str] = {}

    def uri(self, name: str) -> str:
        return (self.folder / name).as_uri()

    def open(self, name: str, text: str, write: bool = True) -> str:
        path = self.folder / name
        if write:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        uri = path.as_uri()
        self.versions[uri], self.texts[uri] = 1, text
        self.client.text_document_did_open(
            types.DidOpenTextDocumentParams(types.TextDocumentItem(uri=uri, language_id="python", version=1, text=text))
        )
        return uri

    def change(self, uri: str, text: str) -> int:
        self.versions[uri] += 1
        self.texts[uri] = text
        self.client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=self.versions[uri]),
                content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)],
            )
        )
        return self.versions[uri]

    def save(self, uri: str) -> None:
        self.client.text_document_did_save(types.DidSaveTextDocumentParams(types.TextDocumentIdentifier(uri=uri)))

    def close(self, uri: str) -> None:
        self.client.text_document_did_close(types.DidCloseTextDocumentParams(types.TextDocumentIdentifier(uri=uri)))

    def publishes(self, uri: str) -> List[types.PublishDiagnosticsParams]:
        return [p for p in self.client.published if p.uri == uri]  # type: ignore[attr-defined]

    async def diagnostics(self, uri: str, version: Optional[int] = None, after: int = 0) -> List[types.Diagnostic]:
        """The first diagnostics published for ``uri`` (at ``version``, if given) after the ``after``-th."""

        async def published():
            while True:
                for params in self.publishes(uri)[after:]:
                    if version is None or params.version == version:
                        return list(params.diagnostics)
                await asyncio.sleep(0.01)

        return await asyncio.wait_for(published(), WAIT)


@pytest.fixture
def editor(client: LanguageClient, tmp_path: Path) -> Editor:
    return Editor(client, tmp_path)


def emoji_program() -> str:
    return BAD_PROGRAM.replace(STEP_LINE, "    " + EMOJI_PREFIX + "opt.step()")


async def send_raw(client: LanguageClient, body: bytes) -> None:
    """Writes one message to the server as bytes, bypassing the client's serialisation."""
    written = client.protocol.writer.write(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    if inspect.isawaitable(written):
        await written


def apply_edits(text: str, edits: List[types.TextEdit]) -> str:
    """Applies single-line edits given in UTF-16 positions (enough for the noqa edits)."""
    lines = text.split("\n")
    for edit in sorted(edits, key=lambda e: (e.range.start.line, e.range.start.character), reverse=True):
        assert edit.range.start.line == edit.range.end.line
        line = lines[edit.range.start.line].encode("utf-16-le")
        start, end = 2 * edit.range.start.character, 2 * edit.range.end.character
        lines[edit.range.start.line] = (line[:start] + edit.new_text.encode("utf-16-le") + line[end:]).decode("utf-16-le")
    return "\n".join(lines)


async def code_actions(client: LanguageClient, uri: str, diagnostic: types.Diagnostic, only=None) -> List[types.CodeAction]:
    result = await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            range=diagnostic.range,
            context=types.CodeActionContext(diagnostics=[diagnostic], only=only),
        )
    )
    return [a for a in result or [] if isinstance(a, types.CodeAction)]


async def noqa_actions(client: LanguageClient, uri: str, diagnostic: types.Diagnostic) -> List[types.CodeAction]:
    return [a for a in await code_actions(client, uri, diagnostic) if a.title.startswith("Suppress ")]


def apply_edit(text: str, edit: types.TextEdit) -> str:
    """Applies one edit of any extent (ASCII text: UTF-16 units are characters)."""
    lines = text.split("\n")

    def offset(p: types.Position) -> int:
        return sum(len(line) + 1 for line in lines[: p.line]) + p.character

    return text[: offset(edit.range.start)] + edit.new_text + text[offset(edit.range.end):]


FIXED_PROGRAM = BAD_PROGRAM.replace("    loss = model(x)", "    opt.zero_grad()\n    loss = model(x)")


# ---------------------------------------------------------------------------------------------- diagnostics


@in_session
async def test_open_bad_document_reports_the_finding_at_its_range(editor: Editor):
    uri = editor.open("train.py", BAD_PROGRAM)
    [d] = await editor.diagnostics(uri)
    assert d.code == "LL101"
    assert d.source == "looplint"
    assert d.code_description is not None and d.code_description.href.endswith("/docs/rules/LL101.md")
    assert (d.range.start.line, d.range.start.character) == (BAD_ROW - 1, BAD_COLUMN - 1)
    assert (d.range.end.line, d.range.end.character) == (BAD_ROW - 1, BAD_COLUMN - 1 + len("opt.step()"))
    assert "zero_grad" in d.message


@in_session
async def test_positions_are_utf16_after_an_astral_character(editor: Editor):
    uri = editor.open("emoji.py", emoji_program())
    [d] = await editor.diagnostics(uri)
    before = len(("    " + EMOJI_PREFIX).encode("utf-16-le")) // 2  # 4 + 10 code points = 15 UTF-16 units
    assert before == len("    " + EMOJI_PREFIX) + 1
    assert (d.range.start.line, d.range.start.character) == (BAD_ROW - 1, before)
    assert d.range.end.character == before + len("opt.step()")


@in_session
async def test_positions_follow_the_encoding_agreed_with_the_client(utf8_client: LanguageClient, tmp_path: Path):
    editor = Editor(utf8_client, tmp_path)
    uri = editor.open("emoji.py", emoji_program())
    [d] = await editor.diagnostics(uri)
    assert d.range.start.character == len(("    " + EMOJI_PREFIX).encode("utf-8"))  # the emoji is 4 bytes


@in_session
async def test_change_updates_and_fixed_document_clears(editor: Editor):
    uri = editor.open("train.py", CLEAN_PROGRAM)
    assert await editor.diagnostics(uri) == []
    version = editor.change(uri, BAD_PROGRAM)
    [d] = await editor.diagnostics(uri, version)
    assert d.code == "LL101"
    fixed = BAD_PROGRAM.replace("    loss.backward()", "    opt.zero_grad()\n    loss.backward()")
    version = editor.change(uri, fixed)
    assert await editor.diagnostics(uri, version) == []


@in_session
async def test_rapid_changes_publish_the_latest_version_only(editor: Editor):
    uri = editor.open("train.py", CLEAN_PROGRAM)
    await editor.diagnostics(uri)
    seen = len(editor.publishes(uri))
    intermediate = editor.change(uri, BAD_PROGRAM)
    latest = editor.change(uri, emoji_program())
    [d] = await editor.diagnostics(uri, latest, after=seen)
    assert d.range.start.character == len(("    " + EMOJI_PREFIX).encode("utf-16-le")) // 2
    assert intermediate not in [p.version for p in editor.publishes(uri)]  # debounced away, never published


@in_session
async def test_save_relints_and_close_clears(editor: Editor):
    uri = editor.open("train.py", BAD_PROGRAM)
    assert len(await editor.diagnostics(uri)) == 1
    seen = len(editor.publishes(uri))
    editor.save(uri)
    assert len(await editor.diagnostics(uri, after=seen)) == 1
    seen = len(editor.publishes(uri))
    editor.close(uri)
    assert await editor.diagnostics(uri, after=seen) == []


HELPER_USER = """import torch
from helpers_mod import report


def fit(model, loader):
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for x, y in loader:
        opt.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        report(loss)
        opt.step()
"""


@in_session
async def test_saving_an_imported_module_relints_the_documents_that_import_it(editor: Editor):
    helper = editor.open("helpers_mod.py", "def report(value):\n    print(float(value))\n")
    uri = editor.open("uses_helper.py", HELPER_USER)
    assert [d.code for d in await editor.diagnostics(uri)] == ["LL104"]  # the helper only logs
    seen = len(editor.publishes(uri))
    text = "def report(value):\n    value.backward()\n"
    editor.change(helper, text)
    (editor.folder / "helpers_mod.py").write_text(text, encoding="utf-8")  # what the editor writes on save
    editor.save(helper)
    assert await editor.diagnostics(uri, after=seen) == []  # now it runs backward


@in_session
async def test_unparsable_document_is_LL000(editor: Editor):
    uri = editor.open("broken.py", BROKEN_PROGRAM)
    [d] = await editor.diagnostics(uri)
    assert d.code == "LL000"
    assert d.severity == types.DiagnosticSeverity.Error
    assert d.range.start.line == 1


@in_session
async def test_non_python_documents_are_left_alone(editor: Editor, client: LanguageClient):
    uri = editor.folder.joinpath("notes.txt").as_uri()
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(types.TextDocumentItem(uri=uri, language_id="plaintext", version=1, text=BAD_PROGRAM))
    )
    probe = editor.open("probe.py", CLEAN_PROGRAM)  # answered after notes.txt would have been
    await editor.diagnostics(probe)
    assert editor.publishes(uri) == []


NOTEBOOK_CELLS = [
    (types.NotebookCellKind.Code, "python", "import torch\nmodel = torch.nn.Linear(2, 1)\nopt = torch.optim.SGD(model.parameters(), lr=0.1)\n"),
    (types.NotebookCellKind.Markup, "markdown", "## Training\n"),
    (types.NotebookCellKind.Code, "python", "%time x = 1\nfor x in torch.randn(4, 3, 2):\n    loss = model(x).sum()\n    loss.backward()\n    opt.step()\n"),
]


def open_notebook(editor: Editor, client: LanguageClient, name: str) -> Tuple[str, List[str]]:
    """Opens NOTEBOOK_CELLS as the notebook ``name``: (its uri, its cells' uris)."""
    nb_uri = editor.uri(name)
    cell_uris = [f"vscode-notebook-cell:{editor.folder.as_posix()}/{name}#cell{i}" for i in range(len(NOTEBOOK_CELLS))]
    client.notebook_document_did_open(
        types.DidOpenNotebookDocumentParams(
            notebook_document=types.NotebookDocument(
                uri=nb_uri, notebook_type="jupyter-notebook", version=1,
                cells=[types.NotebookCell(kind=k, document=u) for (k, _, _), u in zip(NOTEBOOK_CELLS, cell_uris)],
            ),
            cell_text_documents=[
                types.TextDocumentItem(uri=u, language_id=lang, version=1, text=text)
                for (_, lang, text), u in zip(NOTEBOOK_CELLS, cell_uris)
            ],
        )
    )
    return nb_uri, cell_uris


@in_session
async def test_notebook_cells_get_their_own_diagnostics(editor: Editor, client: LanguageClient):
    nb_uri, cell_uris = open_notebook(editor, client, "train.ipynb")
    [d] = await editor.diagnostics(cell_uris[2])
    assert d.code == "LL101"
    assert (d.range.start.line, d.range.start.character) == (4, 4)  # row 5 of the third cell, after the magic
    assert await editor.diagnostics(cell_uris[0]) == []
    assert editor.publishes(cell_uris[1]) == []  # markdown
    seen = len(editor.publishes(cell_uris[2]))
    client.notebook_document_did_change(
        types.DidChangeNotebookDocumentParams(
            notebook_document=types.VersionedNotebookDocumentIdentifier(version=2, uri=nb_uri),
            change=types.NotebookDocumentChangeEvent(
                cells=types.NotebookDocumentCellChanges(
                    text_content=[
                        types.NotebookDocumentCellContentChanges(
                            document=types.VersionedTextDocumentIdentifier(uri=cell_uris[2], version=2),
                            changes=[
                                types.TextDocumentContentChangePartial(
                                    range=types.Range(types.Position(line=3, character=0), types.Position(line=3, character=0)),
                                    text="    opt.zero_grad()\n",
                                )
                            ],
                        )
                    ]
                )
            ),
        )
    )
    assert await editor.diagnostics(cell_uris[2], after=seen) == []


# ---------------------------------------------------------------------------------------------- hover, code action


@in_session
async def test_hover_on_a_finding_shows_the_rule_documentation(editor: Editor, client: LanguageClient):
    uri = editor.open("train.py", BAD_PROGRAM)
    [d] = await editor.diagnostics(uri)
    hover = await client.text_document_hover_async(
        types.HoverParams(types.TextDocumentIdentifier(uri=uri), types.Position(line=d.range.start.line, character=d.range.start.character + 2))
    )
    assert hover is not None
    assert hover.contents.kind == types.MarkupKind.Markdown
    assert "## What it does" in hover.contents.value and "LL101" in hover.contents.value
    assert hover.range == d.range
    nothing = await client.text_document_hover_async(
        types.HoverParams(types.TextDocumentIdentifier(uri=uri), types.Position(line=0, character=0))
    )
    assert nothing is None


@in_session
async def test_code_action_adds_noqa_which_silences_the_finding(editor: Editor, client: LanguageClient):
    uri = editor.open("emoji.py", emoji_program())
    [d] = await editor.diagnostics(uri)
    [action] = await noqa_actions(client, uri, d)
    assert action.title == "Suppress LL101 with # noqa"
    assert action.kind == types.CodeActionKind.QuickFix
    fixed = apply_edits(editor.texts[uri], action.edit.changes[uri])
    assert fixed.split("\n")[BAD_ROW - 1] == "    " + EMOJI_PREFIX + "opt.step()  # noqa: LL101"
    version = editor.change(uri, fixed)
    assert await editor.diagnostics(uri, version) == []


@in_session
async def test_incremental_edit_below_a_form_feed_lands_on_its_row(editor: Editor, client: LanguageClient):
    """A form feed is not a line break in LSP (or Python): edits below it must not shift a row."""
    text = BAD_PROGRAM.replace("import torch\n", "import torch\n\x0c\n", 1)
    uri = editor.open("paged.py", text)
    [d] = await editor.diagnostics(uri)
    assert d.range.start.line == BAD_ROW  # one row below BAD_ROW - 1: the form feed's row
    [action] = await noqa_actions(client, uri, d)
    [edit] = action.edit.changes[uri]
    editor.versions[uri] += 1
    client.text_document_did_change(  # what an editor sends after applying the edit: the change alone
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=editor.versions[uri]),
            content_changes=[types.TextDocumentContentChangePartial(range=edit.range, text=edit.new_text)],
        )
    )
    assert await editor.diagnostics(uri, editor.versions[uri]) == []


@in_session
async def test_code_action_merges_into_an_existing_noqa_list(editor: Editor, client: LanguageClient):
    text = BAD_PROGRAM.replace("    opt.step()", "    opt.step()  # noqa: E501 keep this")
    uri = editor.open("train.py", text)
    [d] = await editor.diagnostics(uri)
    [action] = await noqa_actions(client, uri, d)
    fixed = apply_edits(text, action.edit.changes[uri])
    assert fixed.split("\n")[BAD_ROW - 1] == "    opt.step()  # noqa: E501, LL101 keep this"
    version = editor.change(uri, fixed)
    assert await editor.diagnostics(uri, version) == []


@in_session
async def test_code_action_carries_the_rule_fix(editor: Editor, client: LanguageClient):
    uri = editor.open("fixme.py", BAD_PROGRAM)
    [d] = await editor.diagnostics(uri)
    [action] = [a for a in await code_actions(client, uri, d) if not a.title.startswith("Suppress ")
                and a.kind == types.CodeActionKind.QuickFix]
    assert action.title == "Insert `opt.zero_grad()` before the forward pass (LL101)"
    assert action.is_preferred and list(action.diagnostics) == [d]
    [edit] = action.edit.changes[uri]
    fixed = apply_edit(BAD_PROGRAM, edit)
    assert fixed == FIXED_PROGRAM
    version = editor.change(uri, fixed)
    assert await editor.diagnostics(uri, version) == []


@in_session
async def test_source_fix_all_applies_the_safe_fixes(editor: Editor, client: LanguageClient):
    uri = editor.open("fixall.py", BAD_PROGRAM)
    [d] = await editor.diagnostics(uri)
    [action] = await code_actions(client, uri, d, only=[types.CodeActionKind.SourceFixAll])
    assert action.kind == "source.fixAll.looplint"
    [edit] = action.edit.changes[uri]
    assert apply_edit(BAD_PROGRAM, edit) == FIXED_PROGRAM
    # a client asking only for quick fixes gets no fix-all action, and no fix-all is offered for nothing
    assert all(a.kind == types.CodeActionKind.QuickFix
               for a in await code_actions(client, uri, d, only=[types.CodeActionKind.QuickFix]))
    clean = editor.open("clean_fixall.py", FIXED_PROGRAM)
    assert await editor.diagnostics(clean) == []
    assert await code_actions(client, clean, d, only=[types.CodeActionKind.SourceFixAll]) == []


@in_session
async def test_notebook_cell_gets_the_fix_and_fix_all(editor: Editor, client: LanguageClient):
    _nb_uri, cell_uris = open_notebook(editor, client, "fixnb.ipynb")
    [d] = await editor.diagnostics(cell_uris[2])
    cell = NOTEBOOK_CELLS[2][2]
    fixed = cell.replace("    loss = model(x)", "    opt.zero_grad()\n    loss = model(x)")
    [action] = [a for a in await code_actions(client, cell_uris[2], d) if not a.title.startswith("Suppress ")
                and a.kind == types.CodeActionKind.QuickFix]
    assert action.title == "Insert `opt.zero_grad()` before the forward pass (LL101)"
    assert list(action.edit.changes) == [cell_uris[2]]  # the magic line and the other cells are untouched
    assert apply_edits(cell, action.edit.changes[cell_uris[2]]) == fixed
    [fix_all] = await code_actions(client, cell_uris[2], d, only=[types.CodeActionKind.SourceFixAll])
    assert apply_edits(cell, fix_all.edit.changes[cell_uris[2]]) == fixed


# ---------------------------------------------------------------------------------------------- configuration


def write_config(folder: Path, ignore: List[str]) -> None:
    (folder / "pyproject.toml").write_text(f"[tool.looplint]\nignore = {json.dumps(ignore)}\n", encoding="utf-8")


@in_session
async def test_pyproject_ignore_silences_and_a_change_reenables(editor: Editor, client: LanguageClient):
    write_config(editor.folder, ["LL101"])
    uri = editor.open("my pkg/train.py", BAD_PROGRAM)  # a space: the URI has %20, re-published as it was
    assert "%20" in uri
    assert await editor.diagnostics(uri) == []
    # The server asked the editor to watch the configuration files.
    [watch] = [r for r in client.registrations if r.method == types.WORKSPACE_DID_CHANGE_WATCHED_FILES]
    assert "**/pyproject.toml" in json.dumps(client.protocol._converter.unstructure(watch.register_options))
    # The editor's file watcher reports the change.
    write_config(editor.folder, [])
    seen = len(editor.publishes(uri))
    client.workspace_did_change_watched_files(
        types.DidChangeWatchedFilesParams(
            changes=[types.FileEvent(uri=(editor.folder / "pyproject.toml").as_uri(), type=types.FileChangeType.Changed)]
        )
    )
    [d] = await editor.diagnostics(uri, after=seen)
    assert d.code == "LL101"


@in_session
async def test_configuration_change_is_noticed_without_a_notification(editor: Editor):
    uri = editor.open("train.py", BAD_PROGRAM)
    assert len(await editor.diagnostics(uri)) == 1
    write_config(editor.folder, ["LL1"])  # a new configuration file, no watcher event
    seen = len(editor.publishes(uri))
    editor.save(uri)
    assert await editor.diagnostics(uri, after=seen) == []


@in_session
async def test_broken_configuration_is_shown_and_defaults_apply(editor: Editor, client: LanguageClient):
    (editor.folder / "pyproject.toml").write_text("[tool.looplint]\nselekt = []\n", encoding="utf-8")
    uri = editor.open("train.py", BAD_PROGRAM)
    [d] = await editor.diagnostics(uri)
    assert d.code == "LL101"
    assert any("selekt" in m.message for m in client.messages)


# ---------------------------------------------------------------------------------------------- robustness


@in_session
async def test_garbage_never_kills_the_server(editor: Editor, client: LanguageClient):
    garbage = "\x00\ufffd loss.backward(((( \udcff'''\n" + "(" * 5000 + "\n\tdef\n opt.step()\n"
    bad_uri = editor.open("garbage.py", garbage, write=False)
    diagnostics = await editor.diagnostics(bad_uri)
    assert {d.code for d in diagnostics} <= {"LL000"}
    # Invalid parameters, a body that is not JSON, an unknown method, a message without a body: written raw,
    # as a broken client would.
    for body in (
        b'{"jsonrpc": "2.0", "id": "raw-1", "method": "textDocument/hover", "params": {"textDocument": 42}}',
        b'{"jsonrpc": "2.0", "id": "raw-2", "method": "textDocument/codeAction", "params": null}',
        b"{this is not json",
        b'{"jsonrpc": "2.0", "method": "textDocument/didChange", "params": {"textDocument": {"uri": 7}}}',
        b'{"jsonrpc": "2.0", "method": "looplint/unknown", "params": {}}',
        b"[]",
    ):
        await send_raw(client, body)
    # Events for documents the server never saw.
    client.text_document_did_close(
        types.DidCloseTextDocumentParams(types.TextDocumentIdentifier(uri=editor.uri("never-opened.py")))
    )
    # Still answering, and still linting.
    uri = editor.open("train.py", BAD_PROGRAM)
    [d] = await editor.diagnostics(uri)
    hover = await client.text_document_hover_async(types.HoverParams(types.TextDocumentIdentifier(uri=uri), d.range.start))
    assert hover is not None and "LL101" in hover.contents.value


@in_session
async def test_a_document_that_crashed_the_parser_is_LL000_and_the_server_lives_on(editor: Editor, client: LanguageClient):
    crasher = "import torch\nloss.backward()\nx = " + " and ".join(["a"] * 10000) + "\n"  # a segfault in libcst
    crash_uri = editor.open("crash.py", crasher, write=False)
    [d] = await editor.diagnostics(crash_uri)
    assert d.code == "LL000" and "cannot parse file" in d.message
    uri = editor.open("train.py", BAD_PROGRAM)
    [d] = await editor.diagnostics(uri)
    assert d.code == "LL101"


@in_session
async def test_a_large_document_never_stalls_the_server(editor: Editor, client: LanguageClient):
    uri = editor.open("train.py", BAD_PROGRAM)
    [finding] = await editor.diagnostics(uri)
    # Seconds of parsing (300 KB of dense code): it used to hold the server, which answered nothing meanwhile.
    large = "import torch\nloss.backward()\nx = [" + "1," * 150_000 + "]\n"
    large_uri = editor.open("large.py", large, write=False)
    hover = await client.text_document_hover_async(
        types.HoverParams(types.TextDocumentIdentifier(uri=uri), finding.range.start))
    assert hover is not None and "LL101" in hover.contents.value
    assert editor.publishes(large_uri) == []  # answered while the large document was still being linted
    assert await editor.diagnostics(large_uri) == []
    # 6 MB is over the size limit: refused at once, without parsing.
    huge_uri = editor.open("huge.py", "import torch\nloss.backward()\n" + "x = [" + "1, " * 2_000_000 + "]\n", write=False)
    [d] = await editor.diagnostics(huge_uri)
    assert d.code == "LL000" and "too large to analyse" in d.message


@in_session
async def test_a_configuration_tomllib_cannot_read_is_shown_once_and_defaults_apply(editor: Editor, client: LanguageClient):
    (editor.folder / "looplint.toml").write_text("select = " + "[" * 5000 + "]" * 5000 + "\n", encoding="utf-8")
    seen = len(client.messages)
    first = editor.open("a.py", BAD_PROGRAM)
    second = editor.open("b.py", BAD_PROGRAM)
    assert [d.code for d in await editor.diagnostics(first)] == ["LL101"]
    assert [d.code for d in await editor.diagnostics(second)] == ["LL101"]
    shown = [m.message for m in client.messages[seen:] if "looplint.toml" in m.message]
    assert len(shown) == 1 and "nested too deeply" in shown[0] and "default settings" in shown[0]


# ---------------------------------------------------------------------------------------------- the wire


class RawServer:
    """``looplint server`` driven with hand-written bytes, as a broken client would write them."""

    def __init__(self, cwd: Path) -> None:
        self.proc = subprocess.Popen(SERVER, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd)
        self.replies: "queue.Queue[dict]" = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        out = self.proc.stdout
        while True:
            length = None
            while True:
                line = out.readline()
                if not line:
                    return
                if line in (b"\r\n", b"\n"):
                    break
                name, _, value = line.decode().partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            self.replies.put(json.loads(out.read(length)))

    def write(self, data: bytes) -> None:
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def send(self, message: dict) -> None:
        body = json.dumps(message).encode()
        self.write(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))

    def reply(self, msg_id) -> dict:
        """The response to request ``msg_id`` (server requests and notifications are passed over)."""
        while True:
            message = self.replies.get(timeout=WAIT)
            if message.get("id") == msg_id and "method" not in message:
                return message

    def initialize(self) -> None:
        self.send({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"processId": None, "rootUri": None, "capabilities": {}}})
        assert "result" in self.reply(0)
        self.send({"jsonrpc": "2.0", "method": "initialized", "params": {}})

    def finish(self) -> int:
        self.proc.stdin.close()
        try:
            return self.proc.wait(WAIT)
        finally:
            self.proc.kill()
            self.proc.stdout.close()
            self.proc.stderr.close()


def hover_request(msg_id, line=0, character=0, uri="file:///nowhere.py") -> dict:
    return {"jsonrpc": "2.0", "id": msg_id, "method": "textDocument/hover",
            "params": {"textDocument": {"uri": uri}, "position": {"line": line, "character": character}}}


def framed(message: dict, header: bytes = b"Content-Length: %d\r\n\r\n", extra: int = 0) -> bytes:
    body = json.dumps(message).encode()
    return header % (len(body) + extra) + body


@pytest.fixture
def raw(tmp_path):
    server = RawServer(tmp_path)
    server.initialize()
    yield server
    server.proc.kill()


def test_framing_errors_never_leave_the_server_deaf(raw: RawServer):
    raw.write(framed(hover_request(1), b"content-length: %d\r\n\r\n"))  # lowercase header name
    assert "result" in raw.reply(1)
    raw.write(framed(hover_request(2), b"Content-Length: %d\n\n"))  # LF-only line ends
    assert "result" in raw.reply(2)
    raw.write(b"stray bytes\r\n\x00\xff garbage")
    raw.send(hover_request(3))
    assert "result" in raw.reply(3)
    raw.write(framed(hover_request(4), extra=-5))  # a length that says too little
    raw.send(hover_request(5))
    assert "result" in raw.reply(5)
    raw.write(framed(hover_request(6), extra=40))  # a length that says too much
    raw.send(hover_request(7))
    assert "result" in raw.reply(6) and "result" in raw.reply(7)
    raw.write(b"Content-Length: 9\r\n\r\n{not json")
    assert raw.reply(None)["error"]["code"] == -32700


def test_requests_with_invalid_params_get_an_error_response(raw: RawServer):
    raw.send(hover_request(1, line=-1))
    raw.send(hover_request(2, line=2**63))
    raw.send({"jsonrpc": "2.0", "id": 3, "method": "textDocument/hover", "params": 5})
    raw.send({"jsonrpc": "2.0", "id": 4, "method": "textDocument/codeAction", "params": None})
    for msg_id in (1, 2, 3, 4):
        assert raw.reply(msg_id)["error"]["code"] == -32602
    raw.send(hover_request(5))
    assert raw.reply(5) == {"jsonrpc": "2.0", "id": 5, "result": None}


def test_exit_without_shutdown_exits_1(raw: RawServer):
    raw.send({"jsonrpc": "2.0", "method": "exit"})
    assert raw.finish() == 1


def test_exit_after_shutdown_exits_0(raw: RawServer):
    raw.send({"jsonrpc": "2.0", "id": 9, "method": "shutdown"})
    assert raw.reply(9)["result"] is None
    raw.send({"jsonrpc": "2.0", "method": "exit"})
    assert raw.finish() == 0


# ---------------------------------------------------------------------------------------------- the command


def test_without_pygls_the_command_names_the_extra(tmp_path: Path):
    script = "import sys; sys.modules['pygls'] = None\nfrom looplint.cli import main\nraise SystemExit(main(['server']))\n"
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 2
    assert "looplint[lsp]" in proc.stderr and "pygls" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_importing_looplint_does_not_import_pygls():
    script = (
        "import sys, looplint, looplint.cli, looplint.notebook, looplint.flake8_plugin\n"
        "looplint.cli.main(['--version'])\n"
    )
    check = script + "sys.stdout.write('\\n' + str(sorted(m for m in ('pygls', 'lsprotocol') if m in sys.modules)))\n"
    proc = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=120)
    assert proc.stdout.splitlines()[-1] == "[]", proc.stdout + proc.stderr


# ---------------------------------------------------------------------------------------------- latency


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER + ["--debounce", "600"], client_factory=make_client),
                    scope="module")
async def slow_debounce_client(lsp_client: LanguageClient):
    await lsp_client.initialize_session(types.InitializeParams(capabilities=types.ClientCapabilities()))
    yield
    await lsp_client.shutdown_session()


@in_session
async def test_a_change_to_a_document_not_being_linted_is_linted_at_once(slow_debounce_client: LanguageClient, tmp_path: Path):
    # The pause after a change is 600 s in this server, beyond the wait's guard: only a lint that does not
    # wait for it can be published.
    editor = Editor(slow_debounce_client, tmp_path)
    uri = editor.open("train.py", CLEAN_PROGRAM)
    assert await editor.diagnostics(uri) == []
    version = editor.change(uri, BAD_PROGRAM)
    [d] = await editor.diagnostics(uri, version)
    assert d.code == "LL101"
    version = editor.change(uri, CLEAN_PROGRAM)
    assert await editor.diagnostics(uri, version) == []


def _never_returns(source, path, rules):
    import time

    time.sleep(3600)


def test_a_prestarted_worker_is_ready_and_a_lint_meanwhile_waits_its_turn():
    """``initialized`` starts the worker in the background: the first lint does not wait for an interpreter
    to start (when the document comes a moment later), and one that comes during the start takes its turn
    (calls from two threads never share a worker's pipe)."""
    import time

    from looplint.rule import all_rules
    from looplint.server import Linter

    linter = Linter()
    try:
        linter.prestart()
        [d] = linter(BAD_PROGRAM, "train.py", all_rules())  # at once: it waits for the start, then lints
        assert d.code == "LL101"
        deadline = time.monotonic() + WAIT  # a guard, not a measure
        while linter.worker.pid is None:
            assert time.monotonic() < deadline
            time.sleep(0.01)
    finally:
        linter.close()


def test_calls_of_one_worker_from_several_threads_take_turns():
    import threading

    from looplint.worker import Worker

    worker = Worker()
    results = {}

    def calls(t):
        # each task takes the worker a few ms (the threads' calls overlap); its answer names it
        results[t] = [worker.call(max, range(1_000_000 + 10 * i + t)) for i in range(12)]

    try:
        threads = [threading.Thread(target=calls, args=(t,)) for t in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(WAIT)
        assert results == {t: [1_000_000 + 10 * i + t - 1 for i in range(12)] for t in range(3)}
    finally:
        worker.close()


def test_a_running_lint_is_cancelled_and_the_next_one_runs_on_a_spare_worker():
    import threading
    import time

    from looplint.rule import all_rules
    from looplint.server import LintCancelled, Linter

    linter = Linter(task=_never_returns)
    outcome = []

    def lint():
        try:
            outcome.append(linter(BAD_PROGRAM, "train.py", all_rules()))
        except LintCancelled as e:
            outcome.append(e)

    try:
        thread = threading.Thread(target=lint)
        thread.start()
        deadline = time.monotonic() + WAIT  # a guard, not a measure
        while not linter.cancel():  # False until the lint runs in the worker
            assert time.monotonic() < deadline
            time.sleep(0.01)
        thread.join(WAIT)
        assert not thread.is_alive() and isinstance(outcome[0], LintCancelled)
        assert not linter.cancel()  # nothing runs now
        linter.task = None  # lint_source again, on the worker that replaced the killed one
        [d] = linter(BAD_PROGRAM, "train.py", all_rules())
        assert d.code == "LL101"
    finally:
        linter.close()
