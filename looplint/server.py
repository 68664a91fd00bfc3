"""``looplint server``: a Language Server over stdio (pygls 2, extra ``lsp``).

What an editor gets:

* diagnostics for Python documents (``.py``, ``.pyi``, or any document whose language is ``python``) and for
  the code cells of Jupyter notebooks synced as notebook documents: on open and save at once, on change at
  once when no lint of the document is waiting or running, otherwise after a short pause
  (``DEBOUNCE_SECONDS``: a burst of typing is one lint) that replaces the waiting lint and cancels the
  running one (its worker process is killed; a spare takes over); a lint whose document changed meanwhile
  is never published; closing a document clears them;
* ranges in the position encoding agreed with the client (UTF-16 code units unless the client offers
  another), converted from looplint's code-point columns;
* ``code`` = the rule code, ``codeDescription.href`` = the rule's documentation, ``source`` = ``looplint``;
* hover on a finding: the rule's documentation (markdown, ruff's headings);
* a quick fix per finding, "Suppress LLxxx with # noqa", adding ``  # noqa: LLxxx`` at the end of the
  reported row or merging the code into the row's ``# noqa: ...`` list; for a finding whose rule has a fix
  (``looplint.fix``), a quick fix carrying it (its title; unsafe fixes say so and are never preferred), and
  ``source.fixAll.looplint`` applying every safe fix of a Python document or notebook (as ``looplint --fix``
  would). Fixes are computed in the lint worker, as one edit of the changed region (in a notebook, of each
  cell the fix changes: the joined code cells are fixed as ``looplint --fix`` fixes an ``.ipynb``);
* configuration as the command line finds it (the closest ``pyproject.toml`` / ``looplint.toml``), read
  again when such a file changes: on ``workspace/didChangeWatchedFiles`` (registered with the client when
  it supports that), when it is saved in the editor, and on every lint through a cheap check of the
  modification times of the configuration files above the document. Excluded files get no diagnostics
  (like ``--force-exclude``). A broken configuration is shown to the user once and the defaults are used.

Nothing a client sends (unparsable code, a malformed message, invalid parameters) stops the server: an
unparsable document is an ``LL000`` diagnostic, and every handler keeps its errors to itself (logged on
stderr).
"""
from __future__ import annotations

import argparse
import asyncio
import io
import json
import logging
import os
import re
import sys
import threading
import tokenize
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple
from urllib.parse import unquote

from lsprotocol import types
from pygls.lsp.server import LanguageServer
from pygls.uris import to_fs_path
from pygls.workspace.position_codec import PositionCodec
from pygls.workspace.text_document import TextDocument

import looplint
from looplint.config import CONFIG_FILES, ConfigError, Resolver, Settings, default_settings
from looplint.diagnostics import Diagnostic, docs_url
from looplint.notebook import split_lines
from looplint.rule import PARSE_ERROR, PARSE_ERROR_NAME, all_rules, rule_by_code
from looplint.suppress import directives

SOURCE = "looplint"
DEBOUNCE_SECONDS = 0.3
PYTHON_SUFFIXES = (".py", ".pyi")
NOQA_ACTION_TITLE = "Suppress {code} with # noqa"
FIX_ALL_KIND = "source.fixAll.looplint"
FIX_ALL_TITLE = "looplint: fix all safe fixes"
CONFIG_WATCH_ID = "looplint-configuration-files"

logger = logging.getLogger("looplint.server")

_ROW_WITH_BREAK = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")


class LspTextDocument(TextDocument):
    """pygls's document with rows split where LSP (and Python) splits them: at ``\\n``, ``\\r\\n`` and
    ``\\r`` only. pygls splits with ``str.splitlines``, which also breaks at a form feed, ``\\x1c``-``\\x1e``,
    ``\\x85``, ``\\u2028`` and ``\\u2029``: an incremental change below such a character would land on the
    wrong row."""

    @property
    def lines(self) -> Sequence[str]:
        return tuple(_ROW_WITH_BREAK.findall(self.source))


def _adopt(document: Optional[TextDocument]) -> None:
    if document is not None and type(document) is TextDocument:
        document.__class__ = LspTextDocument


# ---------------------------------------------------------------------------------------------- configuration


def _stamp(path: str) -> Optional[Tuple[int, int, int]]:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino


class Configuration:
    """The settings for each document, re-resolved when a configuration file appears, changes or goes.

    A ``Resolver`` caches the settings per directory; before each use the configuration files that could
    govern the document (every ``CONFIG_FILES`` name in its directory and above) are stat-ed and compared
    with what was seen when the resolver was built: any difference builds a new resolver."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._resolver: Optional[Resolver] = None
        self._stamps: Dict[str, Optional[Tuple[int, int, int]]] = {}

    def invalidate(self) -> None:
        with self._lock:
            self._resolver = None
            self._stamps = {}

    def settings_for(self, path: str) -> Settings:
        """Raises ``ConfigError`` for a broken configuration file."""
        stamps = {}
        directory = os.path.dirname(os.path.abspath(path))
        while True:
            for name in CONFIG_FILES:
                candidate = os.path.join(directory, name)
                stamps[candidate] = _stamp(candidate)
            parent = os.path.dirname(directory)
            if parent == directory:
                break
            directory = parent
        with self._lock:
            if self._resolver is None or any(self._stamps.get(c, s) != s for c, s in stamps.items()):
                self._resolver = Resolver()
                self._stamps = {}
            self._stamps.update(stamps)
            resolver = self._resolver
        return resolver.for_path(path)


# ---------------------------------------------------------------------------------------------- linting


@dataclass(frozen=True)
class CellText:
    uri: str
    version: Optional[int]
    kind: str  # "code" or "markdown"
    text: str


@dataclass(frozen=True)
class LintResult:
    # target uri -> (its version when linted, its text, its diagnostics)
    targets: Dict[str, Tuple[Optional[int], str, List[Diagnostic]]]
    config_error: Optional[str] = None


def _rules_for(configuration: Configuration, path: str) -> Tuple[Optional[List[type]], List[str], Optional[str]]:
    """(rules to run or None when the file is excluded, enabled codes, configuration error message)."""
    error = None
    try:
        settings = configuration.settings_for(path)
    except ConfigError as e:
        error = str(e)
        settings = default_settings(os.path.dirname(os.path.abspath(path)))
    if settings.is_excluded_with_parents(path):
        return None, [], error
    codes = settings.enabled_codes(path)
    rules = [r for r in (rule_by_code(c) for c in codes if c != PARSE_ERROR) if r is not None]
    return rules, codes, error


class LintCancelled(Exception):
    """The lint was cancelled (``Linter.cancel``): a newer version of its document is waiting."""


class Linter:
    """``lint_source`` in a worker process: the server never parses (a large document would hold the
    interpreter for seconds, and input that crashes the parser would take the server down). A crash is an
    ``LL000`` for that document; the next lint gets a fresh worker.

    ``cancel`` ends the running lint at once (its worker is killed and the call raises ``LintCancelled``):
    a stale lint of a long document never delays the newer one. After a first cancel a spare worker is kept
    started, so that the next lint does not wait for a fresh interpreter."""

    def __init__(self, task=None) -> None:
        from looplint.worker import Worker

        self.task = task  # the function run in the worker: ``engine.lint_document`` unless given
        self.worker = Worker()
        self._lock = threading.Lock()
        self._running = None  # the worker running a lint now
        self._cancelled = False
        self._spare = None  # a started worker, ready to replace a killed one

    def __call__(self, source: str, path: str, rules: Sequence[type]) -> List[Diagnostic]:
        from looplint.engine import lint_document, worker_died
        from looplint.worker import WorkerDied

        with self._lock:
            worker, self._running, self._cancelled = self.worker, self.worker, False
        try:
            return worker.call(self.task or lint_document, source, path, list(rules))
        except WorkerDied as e:
            if self._cancelled:
                raise LintCancelled() from None
            return [worker_died(path, e)]
        finally:
            with self._lock:
                self._running = None
            if worker.pid is None and not self._cancelled:
                self.prestart()  # it retired after this lint: the next one finds a fresh one started

    def prestart(self) -> None:
        """Starts the worker (its interpreter and imports) in the background, so that the next lint does not
        wait for them (a lint that comes meanwhile waits for the start to end: ``Worker.call`` takes turns)."""
        threading.Thread(target=_start_worker, args=(self.worker,), daemon=True, name="looplint-start").start()

    def cancel(self) -> bool:
        """Ends the lint running now, if any; True if there was one."""
        with self._lock:
            worker = self._running
            if worker is None:
                return False
            self._cancelled = True
            self.worker = self._take_spare()
        worker.kill()
        return True

    def _take_spare(self):
        from looplint.worker import Worker

        spare, self._spare = self._spare, Worker()
        threading.Thread(target=_start_worker, args=(self._spare,), daemon=True, name="looplint-spare").start()
        return spare if spare is not None else Worker()

    def fixed(self, source: str, path: str, rules: Sequence[type], unsafe: bool, finding) -> str:
        """``source`` with the fix of ``finding`` ((code, row, column)), or every fix when None."""
        from looplint.fix import fixed_text
        from looplint.worker import WorkerDied

        try:
            return self.worker.call(fixed_text, source, path, list(rules), unsafe, finding)
        except WorkerDied:
            return source

    def close(self) -> None:
        with self._lock:
            spare, self._spare = self._spare, None
        self.worker.close()
        if spare is not None:
            spare.close()


def _start_worker(worker) -> None:
    """Starts ``worker`` (its process and imports) by giving it a trivial task."""
    try:
        worker.call(int)
    except Exception:  # noqa: BLE001 - a spare that failed to start is replaced on first use
        pass


def lint_text_document(configuration: Configuration, uri: str, version: Optional[int], text: str, path: str,
                       lint=None) -> LintResult:
    from looplint.engine import lint_source

    lint = lint or lint_source
    rules, codes, error = _rules_for(configuration, path)
    found: List[Diagnostic] = []
    if rules is not None:
        found = [d for d in lint(text, path, rules) if d.code in codes]
    return LintResult({uri: (version, text, found)}, error)


def lint_notebook_cells(configuration: Configuration, path: str, cells: Sequence[CellText], lint=None) -> LintResult:
    """The code cells joined and linted as ``looplint`` lints a ``.ipynb`` file; each finding goes to its cell."""
    from looplint.engine import lint_source
    from looplint.notebook import Cell, Notebook, cell_lines, map_to_cells, to_python

    lint = lint or lint_source

    rules, codes, error = _rules_for(configuration, path)
    targets: Dict[str, Tuple[Optional[int], str, List[Diagnostic]]] = {
        c.uri: (c.version, c.text, []) for c in cells if c.kind == "code"
    }
    if rules is None:
        return LintResult(targets, error)
    notebook = Notebook(tuple(Cell(i, c.kind, cell_lines(c.text)) for i, c in enumerate(cells, start=1)))
    source, rows = to_python(notebook)
    if not rows:
        return LintResult(targets, error)
    for d in map_to_cells([d for d in lint(source, path, rules) if d.code in codes], rows):
        targets[cells[d.cell - 1].uri][2].append(d)
    return LintResult(targets, error)


# ---------------------------------------------------------------------------------------------- positions


def _units(codec: PositionCodec, line: str, column: int) -> int:
    """Code-point column (0-based) on ``line`` -> the client's code units."""
    return codec.client_num_units(line[: max(column, 0)])


def to_lsp_range(d: Diagnostic, lines: Sequence[str], codec: PositionCodec) -> types.Range:
    def position(row: int, column: int) -> types.Position:
        row0 = max(row - 1, 0)
        if row0 >= len(lines):  # past the end of the text (a parse error at the end of the file)
            last = len(lines) - 1
            return types.Position(line=max(last, 0), character=_units(codec, lines[last], len(lines[last])) if last >= 0 else 0)
        line = lines[row0]
        return types.Position(line=row0, character=_units(codec, line, min(column - 1, len(line))))

    start = position(d.line, d.column)
    end = position(d.end_line or d.line, d.end_column or d.column)
    if (end.line, end.character) < (start.line, start.character):
        end = start
    if (end.line, end.character) == (start.line, start.character) and start.line < len(lines):
        # a point (LL000): underline the rest of the row so that the editor shows something
        line = lines[start.line]
        end = types.Position(line=start.line, character=_units(codec, line, len(line.rstrip())))
        if end.character < start.character:
            end = start
    return types.Range(start=start, end=end)


def to_lsp(d: Diagnostic, lines: Sequence[str], codec: PositionCodec) -> types.Diagnostic:
    url = d.url
    return types.Diagnostic(
        range=to_lsp_range(d, lines, codec),
        message=d.message,
        severity=types.DiagnosticSeverity.Error if d.code == PARSE_ERROR else types.DiagnosticSeverity.Warning,
        code=d.code,
        code_description=types.CodeDescription(href=url) if url else None,
        source=SOURCE,
        data={"noqa_row": (d.noqa_row or d.line) - 1},
    )


def _contains(rng: types.Range, pos: types.Position) -> bool:
    return (rng.start.line, rng.start.character) <= (pos.line, pos.character) <= (rng.end.line, rng.end.character)


def _overlaps(a: types.Range, b: types.Range) -> bool:
    return (a.start.line, a.start.character) <= (b.end.line, b.end.character) and (
        b.start.line, b.start.character
    ) <= (a.end.line, a.end.character)


# ---------------------------------------------------------------------------------------------- hover and noqa


def rule_hover_markdown(code: str) -> Optional[str]:
    from looplint.report.sarif import PARSE_ERROR_DOC

    if code == PARSE_ERROR:
        return f"**{PARSE_ERROR}** `{PARSE_ERROR_NAME}`\n\n{PARSE_ERROR_DOC}"
    rule = rule_by_code(code)
    if rule is None:
        return None
    url = docs_url(code)
    return f"**{code}** `{rule.name}`\n\n{rule.documentation().rstrip()}\n\n[{code} documentation]({url})"


def _comment_and_strings(text: str, row: int) -> Tuple[Optional[Tuple[int, str]], bool]:
    """(the comment on 1-based ``row`` as (code-point column, text), whether ``row`` ends inside a string)."""
    string_types = {tokenize.STRING} | {getattr(tokenize, n) for n in ("FSTRING_MIDDLE", "TSTRING_MIDDLE") if hasattr(tokenize, n)}
    comment = None
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text, newline=None).readline):
            if tok.start[0] > row:
                break
            if tok.type == tokenize.COMMENT and tok.start[0] == row:
                comment = (tok.start[1], tok.string)
            elif tok.type in string_types and tok.start[0] <= row < tok.end[0]:
                return None, True
    except (tokenize.TokenError, SyntaxError, ValueError):
        pass
    return comment, False


def replacement_edit(old: str, new: str, codec: PositionCodec) -> Optional[types.TextEdit]:
    """One edit turning ``old`` into ``new``: the region between their common prefix and suffix."""
    from looplint.rewrite import common_ends

    if old == new:
        return None
    start, end = common_ends(old, new)

    def position(offset: int) -> types.Position:
        rows = split_lines(old[:offset])
        return types.Position(line=len(rows) - 1, character=_units(codec, rows[-1], len(rows[-1])))

    return types.TextEdit(range=types.Range(position(start), position(len(old) - end)), new_text=new[start:len(new) - end])


def noqa_edit(text: str, row0: int, code: str, codec: PositionCodec) -> Optional[types.TextEdit]:
    """The edit that suppresses ``code`` on 0-based ``row0``, or None where a comment cannot go."""
    lines = split_lines(text)
    if not 0 <= row0 < len(lines):
        return None
    line = lines[row0]
    comment, in_string = _comment_and_strings(text, row0 + 1)
    if in_string:
        return None
    if comment is not None:
        column, comment_text = comment
        found = list(directives(comment_text))
        if any(d.codes is None or code in d.codes for d in found):
            return None  # already suppressed
        if found:
            at = _units(codec, line, column + found[0].end)
            return types.TextEdit(
                range=types.Range(start=types.Position(line=row0, character=at), end=types.Position(line=row0, character=at)),
                new_text=f", {code}",
            )
    content = line.rstrip()
    if comment is None and content.endswith("\\"):
        return None  # a comment after a line continuation is a syntax error
    start = _units(codec, line, len(content))
    end = _units(codec, line, len(line))
    return types.TextEdit(
        range=types.Range(start=types.Position(line=row0, character=start), end=types.Position(line=row0, character=end)),
        new_text=f"  # noqa: {code}",
    )


# ---------------------------------------------------------------------------------------------- the wire


class Framer:
    """Cuts the byte stream from the client into message bodies, and finds its way back after a framing
    error instead of going deaf (pygls's reader never answers again after one).

    Headers are read leniently: any case (``content-length``), ``\\n`` or ``\\r\\n`` line ends. Bytes that do
    not form a header block (stray bytes, the rest of a body shorter than its ``Content-Length`` said) are
    skipped up to the next ``Content-Length`` header. A body that is not JSON but holds the start of the
    next message (a ``Content-Length`` that said too much) gives back that message."""

    HEADER_END = re.compile(rb"\r?\n\r?\n")
    HEADER_START = re.compile(rb"content-length[ \t]*:", re.I)
    HEADER_LINE = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+)[ \t]*:[ \t]*(.*?)[ \t]*")
    MAX_HEADER_BYTES = 64 * 1024

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.length: Optional[int] = None  # of the body being read, once its headers are in
        self.skipped = 0  # bytes dropped to resynchronise

    def feed(self, data: bytes) -> List[bytes]:
        self.buffer += data
        bodies = []
        while True:
            if self.length is None:
                end = self.HEADER_END.search(self.buffer, 0, self.MAX_HEADER_BYTES + 4)
                if end is None:
                    if len(self.buffer) > self.MAX_HEADER_BYTES:
                        self._resynchronise()
                        continue
                    return bodies
                self.length = self._content_length(bytes(self.buffer[: end.start()]))
                if self.length is None:
                    self._resynchronise()
                    continue
                del self.buffer[: end.end()]
            if len(self.buffer) < self.length:
                return bodies
            body = bytes(self.buffer[: self.length])
            del self.buffer[: self.length]
            self.length = None
            bodies.append(self._trim(body))

    def _content_length(self, block: bytes) -> Optional[int]:
        length = None
        for line in re.split(rb"\r?\n", block):
            m = self.HEADER_LINE.fullmatch(line)
            if m is None:
                return None
            if m.group(1).lower() == b"content-length":
                if not m.group(2).isdigit():
                    return None
                length = int(m.group(2))
        return length

    def _resynchronise(self) -> None:
        """Drops bytes up to the next ``Content-Length`` header (after the first byte, so that a broken
        header is left behind)."""
        nxt = self.HEADER_START.search(self.buffer, 1)
        cut = nxt.start() if nxt else max(len(self.buffer) - 32, 1)  # keep what may start a header
        if cut > len(self.buffer):
            cut = len(self.buffer)
        logger.error("malformed message from the client: skipped %d bytes to the next header", cut)
        self.skipped += cut
        del self.buffer[:cut]

    def _trim(self, body: bytes) -> bytes:
        try:
            json.loads(body)
            return body
        except ValueError:
            pass
        nxt = self.HEADER_START.search(body)
        if nxt is not None:  # the length said too much: the next message starts inside this body
            head = body[: nxt.start()]
            try:
                json.loads(head)
            except ValueError:
                return body
            self.buffer[:0] = body[nxt.start():]
            return head
        return body


def dispatch(protocol, body: bytes) -> Optional[int]:
    """Hands one message to pygls; answers what pygls would leave unanswered (a body that is not JSON,
    a request whose params do not fit its method). Returns the exit status once ``exit`` was received."""
    from pygls.exceptions import JsonRpcException, JsonRpcInvalidRequest, JsonRpcParseError

    try:
        raw = json.loads(body)
    except ValueError:  # UnicodeDecodeError included
        _answer_error(protocol, None, JsonRpcParseError())
        return None
    if not isinstance(raw, dict) or raw.get("jsonrpc") != "2.0":
        _answer_error(protocol, raw.get("id") if isinstance(raw, dict) else None, JsonRpcInvalidRequest())
        return None
    try:
        message = protocol.structure_message(raw)
    except JsonRpcException as e:  # pygls has logged the details
        if "id" in raw and "method" in raw:
            _answer_error(protocol, raw["id"], e)
        return None
    try:
        protocol.handle_message(message)
    except SystemExit as e:  # pygls's ``exit`` handler: 0 after ``shutdown``, else 1
        return e.code if isinstance(e.code, int) else 1
    except Exception:  # noqa: BLE001 - one bad message must not stop the server
        logger.exception("cannot handle a message from the client")
    return None


def _answer_error(protocol, msg_id, error) -> None:
    """An error response; ``"id": null`` when the message's id cannot be known (JSON-RPC 2.0, 5.1)."""
    if not isinstance(msg_id, (int, str)) or isinstance(msg_id, bool):
        msg_id = None
    try:
        if msg_id is None:  # pygls leaves out a null id, which the specification requires
            body = json.dumps({"jsonrpc": "2.0", "id": None, "error": {"code": error.code, "message": error.message}})
            protocol.writer.write(b"Content-Length: %d\r\n\r\n%s" % (len(body), body.encode()))
        else:
            protocol._send_response(msg_id, None, error.to_response_error())
    except Exception:  # noqa: BLE001
        logger.exception("cannot answer the client")


def _reader(stdin):
    """A function reading the next chunk of input (b"" at its end). The file descriptor is read directly: a
    thread blocked in a buffered stdin holds its lock and would stall the interpreter's exit."""
    try:
        fd = stdin.fileno()
    except (AttributeError, OSError, ValueError):
        read = getattr(stdin, "read1", stdin.read)
        return lambda: read(65536)

    def read_fd() -> bytes:
        try:
            return os.read(fd, 65536)
        except OSError:
            return b""

    return read_fd


async def _read_messages(server: "LooplintLanguageServer", stdin) -> int:
    loop = asyncio.get_running_loop()
    chunks: "asyncio.Queue[bytes]" = asyncio.Queue()
    read = _reader(stdin)

    def pump() -> None:  # a daemon thread: it may stay blocked in read after ``exit``
        while True:
            chunk = read()
            loop.call_soon_threadsafe(chunks.put_nowait, chunk)
            if not chunk:
                return

    threading.Thread(target=pump, name="looplint-stdin", daemon=True).start()
    framer = Framer()
    while True:
        chunk = await chunks.get()
        if not chunk:
            logger.info("end of input")
            return 0 if server.protocol._shutdown else 1
        for body in framer.feed(chunk):
            status = dispatch(server.protocol, body)
            if status is not None:
                return status


def serve_stdio(server: "LooplintLanguageServer", stdin=None, stdout=None) -> int:
    """Serves the client on stdin/stdout until ``exit`` or the end of input; returns the exit status (LSP:
    0 when ``shutdown`` came first, else 1)."""
    from pygls.io_ import StdoutWriter

    server.protocol.set_writer(StdoutWriter(stdout or sys.stdout.buffer))
    try:
        return asyncio.run(_read_messages(server, stdin or sys.stdin.buffer))
    except BrokenPipeError:
        logger.error("the connection to the client is lost")
        return 1
    finally:
        server.shutdown()


# ---------------------------------------------------------------------------------------------- the server


@dataclass
class Published:
    version: Optional[int]
    items: List[Tuple[types.Diagnostic, Diagnostic]]


class LooplintLanguageServer(LanguageServer):
    def __init__(self, debounce: float = DEBOUNCE_SECONDS) -> None:
        super().__init__(
            "looplint",
            looplint.__version__,
            text_document_sync_kind=types.TextDocumentSyncKind.Incremental,
            notebook_document_sync=types.NotebookDocumentSyncOptions(
                notebook_selector=[
                    types.NotebookDocumentFilterWithCells(
                        notebook="jupyter-notebook", cells=[types.NotebookCellLanguage(language="python")]
                    )
                ],
                save=True,
            ),
        )
        self.debounce = debounce
        self.configuration = Configuration()
        # One thread: lints run one at a time, off the event loop, so requests are answered meanwhile; the
        # parsing itself happens in a worker process (``Linter``).
        self.linter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="looplint-lint")
        self.lint = Linter()
        self.pending: Dict[str, asyncio.Task] = {}  # uri -> its lint, waiting or running
        self.running: Optional[str] = None  # the uri whose lint runs in the lint thread now
        self.published: Dict[str, Published] = {}
        self.notebook_cells: Dict[str, List[str]] = {}  # notebook uri -> cell uris last published
        self.shown_errors: set = set()

    # -- documents -----------------------------------------------------------------------------------

    def open_text_document(self, uri: str):
        return self.workspace.text_documents.get(unquote(uri))

    def open_notebook(self, uri: str):
        return self.workspace.notebook_documents.get(unquote(uri))

    def notebook_of_cell(self, cell_uri: str) -> Optional[str]:
        for nb_uri, cells in self.notebook_cells.items():
            if cell_uri in cells:
                return nb_uri
        notebook = self.workspace.get_notebook_document(cell_uri=cell_uri)
        return notebook.uri if notebook is not None else None

    def lint_path(self, uri: str, language_id: Optional[str]) -> Optional[str]:
        """The file name to lint a text document under, or None if it is not Python."""
        path = to_fs_path(uri) if uri.startswith("file:") else None
        is_python = (language_id or "").lower() == "python"
        if path is not None:
            if path.lower().endswith(PYTHON_SUFFIXES) or (is_python and not path.lower().endswith(".ipynb")):
                return path
            return None
        if is_python:  # an unsaved buffer: governed by the configuration of the workspace
            root = self.workspace.root_path or os.getcwd()
            return os.path.join(root, "untitled.py")
        return None

    # -- scheduling ----------------------------------------------------------------------------------

    def schedule(self, uri: str, delay: float = 0.0) -> None:
        """Lint the text document or notebook ``uri`` after ``delay`` seconds, replacing a pending lint."""
        previous = self.pending.pop(uri, None)
        if previous is not None:
            previous.cancel()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # pragma: no cover - pygls always handles messages inside its loop
            return
        self.pending[uri] = loop.create_task(self._lint_later(uri, delay))

    def schedule_change(self, uri: str) -> None:
        """A new version of ``uri``: linted at once when no lint of it is waiting or running; otherwise
        after ``debounce`` seconds (a burst of typing is one lint), and the stale lint, if it still runs
        then, is cancelled."""
        self.schedule(uri, self.debounce if uri in self.pending else 0.0)

    def cancel(self, uri: str) -> None:
        task = self.pending.pop(uri, None)
        if task is not None:
            task.cancel()
        if self.running == uri:
            self.lint.cancel()

    def relint_all(self) -> None:
        # The documents' own URIs, as the client spelled them (the workspace's keys are unquoted).
        for doc in list(self.workspace.text_documents.values()):
            if self.workspace.get_notebook_document(cell_uri=doc.uri) is None:
                self.schedule(doc.uri)
        for notebook in list(self.workspace.notebook_documents.values()):
            self.schedule(notebook.uri)

    async def _lint_later(self, uri: str, delay: float) -> None:
        task = asyncio.current_task()
        try:
            if delay > 0:
                await asyncio.sleep(delay)
            if self.running == uri:  # a lint of an older version still runs: its result would be dropped
                self.lint.cancel()
            job = self._snapshot(uri)
            if job is None:
                return
            loop = asyncio.get_running_loop()
            try:
                result = await loop.run_in_executor(self.linter, self._running_as(uri, job))
            except LintCancelled:
                return
            if result is None:
                return
            if result.config_error and result.config_error not in self.shown_errors:
                self.shown_errors.add(result.config_error)
                logger.error("%s", result.config_error)
                self.window_show_message(
                    types.ShowMessageParams(
                        type=types.MessageType.Error,
                        message=f"looplint: {result.config_error} (using the default settings)",
                    )
                )
            self._publish(uri, result)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - a failed lint must not take the server down
            logger.exception("linting %s failed", uri)
        finally:
            if self.pending.get(uri) is task:
                del self.pending[uri]

    def _running_as(self, uri: str, job):
        def run():
            self.running = uri
            try:
                return job()
            finally:
                self.running = None

        return run

    def _cells(self, notebook) -> Tuple[str, List[CellText]]:
        """The path a notebook is configured and linted as, and the current text of its cells."""
        uri = notebook.uri
        path = to_fs_path(uri) if uri.startswith("file:") else None
        path = path or os.path.join(self.workspace.root_path or os.getcwd(), "untitled.ipynb")
        cells = []
        for cell in notebook.cells:
            doc = self.open_text_document(cell.document)
            if doc is None:
                continue
            kind = "code" if cell.kind == types.NotebookCellKind.Code and (doc.language_id or "python") == "python" else "markdown"
            cells.append(CellText(cell.document, doc.version, kind, doc.source))
        return path, cells

    def _snapshot(self, uri: str):
        """A function computing the lint of the current version of ``uri``, run in the lint thread."""
        notebook = self.open_notebook(uri)
        if notebook is not None:
            path, cells = self._cells(notebook)
            return lambda: lint_notebook_cells(self.configuration, path, cells, self.lint)
        doc = self.open_text_document(uri)
        if doc is None:
            return None
        path = self.lint_path(uri, doc.language_id)
        if path is None:
            return None
        version, text = doc.version, doc.source
        return lambda: lint_text_document(self.configuration, uri, version, text, path, self.lint)

    def _publish(self, uri: str, result: LintResult) -> None:
        codec = self.workspace.position_codec
        notebook = self.open_notebook(uri)
        if notebook is None and uri in result.targets:  # a text document: latest version wins
            doc = self.open_text_document(uri)
            if doc is None or doc.version != result.targets[uri][0]:
                return
        elif notebook is not None:
            current = {c.document for c in notebook.cells}
            for cell_uri, (version, _, _) in result.targets.items():
                doc = self.open_text_document(cell_uri)
                if doc is None or doc.version != version:
                    return  # a cell changed meanwhile: its own lint is pending
            for gone in set(self.notebook_cells.get(uri, ())) - current:
                self.clear(gone)
            self.notebook_cells[uri] = list(result.targets)
        else:
            return
        for target, (version, text, found) in result.targets.items():
            lines = split_lines(text)
            items = [(to_lsp(d, lines, codec), d) for d in found]
            self.published[target] = Published(version, items)
            self.text_document_publish_diagnostics(
                types.PublishDiagnosticsParams(uri=target, version=version, diagnostics=[i for i, _ in items])
            )

    def clear(self, uri: str) -> None:
        self.cancel(uri)
        self.published.pop(uri, None)
        self.text_document_publish_diagnostics(types.PublishDiagnosticsParams(uri=uri, diagnostics=[]))

    # -- configuration -------------------------------------------------------------------------------

    def configuration_changed(self) -> None:
        self.configuration.invalidate()
        self.shown_errors.clear()
        self.relint_all()

    async def watch_configuration_files(self) -> None:
        """Asks the client to report changes of configuration files, if it can do that."""
        caps = self.client_capabilities
        watched = getattr(getattr(caps, "workspace", None), "did_change_watched_files", None)
        if not getattr(watched, "dynamic_registration", False):
            return
        registration = types.Registration(
            id=CONFIG_WATCH_ID,
            method=types.WORKSPACE_DID_CHANGE_WATCHED_FILES,
            register_options=types.DidChangeWatchedFilesRegistrationOptions(
                watchers=[types.FileSystemWatcher(glob_pattern=f"**/{name}") for name in CONFIG_FILES]
            ),
        )
        try:
            await self.client_register_capability_async(types.RegistrationParams(registrations=[registration]))
        except Exception as e:  # noqa: BLE001 - the modification-time check still notices changes
            logger.info("could not register for configuration file changes: %s", e)

    # -- requests ------------------------------------------------------------------------------------

    def findings_at(self, uri: str) -> List[Tuple[types.Diagnostic, Diagnostic]]:
        published = self.published.get(uri)
        return published.items if published is not None else []

    def hover(self, params: types.HoverParams) -> Optional[types.Hover]:
        hits = [lsp for lsp, _ in self.findings_at(params.text_document.uri) if _contains(lsp.range, params.position)]
        if not hits:
            return None
        texts = []
        for code in dict.fromkeys(str(h.code) for h in hits):
            text = rule_hover_markdown(code)
            if text:
                texts.append(text)
        if not texts:
            return None
        return types.Hover(
            contents=types.MarkupContent(kind=types.MarkupKind.Markdown, value="\n\n---\n\n".join(texts)),
            range=hits[0].range,
        )

    async def code_actions(self, params: types.CodeActionParams) -> Optional[List[types.CodeAction]]:
        only = [str(getattr(k, "value", k)) for k in (params.context.only or [])] if params.context is not None else []
        quick = not only or any(types.CodeActionKind.QuickFix.value.startswith(k) for k in only)
        fix_all = not only or any(FIX_ALL_KIND.startswith(k) for k in only)
        if not quick and not fix_all:
            return None
        uri = params.text_document.uri
        doc = self.open_text_document(uri)
        published = self.published.get(uri)
        if doc is None or published is None or published.version != doc.version:
            return None  # the findings are being recomputed: their rows may be stale
        actions: List[types.CodeAction] = []
        if quick:
            actions.extend(self._noqa_actions(uri, doc, published, params.range))
            actions.extend(await self._fix_actions(uri, doc, published, params.range))
        if fix_all:
            action = await self._fix_all_action(uri, doc, published)
            if action is not None:
                actions.append(action)
        return actions

    def _noqa_actions(self, uri, doc, published, rng) -> List[types.CodeAction]:
        codec = self.workspace.position_codec
        actions: List[types.CodeAction] = []
        seen = set()
        for lsp, d in published.items:
            if d.code == PARSE_ERROR or not _overlaps(lsp.range, rng):
                continue
            row0 = (d.noqa_row or d.line) - 1
            if (row0, d.code) in seen:
                continue
            seen.add((row0, d.code))
            edit = noqa_edit(doc.source, row0, d.code, codec)
            if edit is None:
                continue
            actions.append(
                types.CodeAction(
                    title=NOQA_ACTION_TITLE.format(code=d.code),
                    kind=types.CodeActionKind.QuickFix,
                    diagnostics=[lsp],
                    edit=types.WorkspaceEdit(changes={uri: [edit]}),
                )
            )
        return actions

    async def _fixed(self, doc, unsafe: bool, finding) -> Optional[str]:
        """The document's text with one finding's fix (or all safe fixes), computed in the lint thread."""
        path = self.lint_path(doc.uri, doc.language_id)
        if path is None:
            return None
        return await self._fixed_text(doc.source, path, unsafe, finding)

    async def _fixed_text(self, text: str, path: str, unsafe: bool, finding) -> Optional[str]:
        rules, _codes, _error = _rules_for(self.configuration, path)
        if not rules:
            return None
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.linter, lambda: self.lint.fixed(text, path, rules, unsafe, finding))

    async def _fix_edit(self, uri, doc, unsafe: bool, d: Optional[Diagnostic]) -> Optional[types.WorkspaceEdit]:
        """The workspace edit of one finding's fix (``d``), or of every safe fix when ``d`` is None: one edit
        of the changed region of a document; in a notebook, one per cell the fix changes (a fix may insert
        a statement in another cell than the finding's)."""
        codec = self.workspace.position_codec
        nb_uri = self.notebook_of_cell(uri)
        if nb_uri is None:
            new = await self._fixed(doc, unsafe, (d.code, d.line, d.column) if d is not None else None)
            edit = replacement_edit(doc.source, new, codec) if new is not None else None
            return types.WorkspaceEdit(changes={uri: [edit]}) if edit is not None else None
        notebook = self.open_notebook(nb_uri)
        if notebook is None:
            return None
        from looplint.notebook import Cell, Notebook, cell_lines, to_python
        from looplint.rewrite import changed_cells

        path, cells = self._cells(notebook)
        parsed = Notebook(tuple(Cell(i, c.kind, cell_lines(c.text)) for i, c in enumerate(cells, start=1)))
        joined, rows = to_python(parsed)
        finding = None
        if d is not None:
            at = next((i for i, r in enumerate(rows) if (r.cell, r.line) == (d.cell, d.line)), None)
            if at is None:
                return None
            finding = (d.code, at + 1, d.column - rows[at].shift)
        new = await self._fixed_text(joined, path, unsafe, finding)
        if new is None or new == joined:
            return None
        texts = changed_cells(joined, new, rows, parsed, lambda n: cells[n - 1].text)
        if not texts:
            return None
        changes = {cells[n - 1].uri: [replacement_edit(cells[n - 1].text, text, codec)] for n, text in texts.items()}
        return types.WorkspaceEdit(changes=changes)

    async def _fix_actions(self, uri, doc, published, rng) -> List[types.CodeAction]:
        actions: List[types.CodeAction] = []
        for lsp, d in published.items:
            if d.fix is None or not _overlaps(lsp.range, rng):
                continue
            unsafe = d.fix.applicability != "safe"
            edit = await self._fix_edit(uri, doc, unsafe, d)
            if edit is None:
                continue
            actions.append(types.CodeAction(
                title=f"{d.fix.title} ({d.code})" + (" (unsafe)" if unsafe else ""),
                kind=types.CodeActionKind.QuickFix,
                diagnostics=[lsp],
                is_preferred=not unsafe,
                edit=edit,
            ))
        return actions

    async def _fix_all_action(self, uri, doc, published) -> Optional[types.CodeAction]:
        if not any(d.fix is not None and d.fix.applicability == "safe" for _, d in published.items):
            return None
        edit = await self._fix_edit(uri, doc, False, None)
        if edit is None:
            return None
        return types.CodeAction(title=FIX_ALL_TITLE, kind=FIX_ALL_KIND, edit=edit)


def create_server(debounce: float = DEBOUNCE_SECONDS) -> LooplintLanguageServer:
    server = LooplintLanguageServer(debounce)

    @server.feature(types.INITIALIZED)
    async def initialized(ls: LooplintLanguageServer, params: types.InitializedParams) -> None:
        ls.lint.prestart()  # the first document opened is linted without waiting for a worker to start
        await ls.watch_configuration_files()

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: LooplintLanguageServer, params: types.DidOpenTextDocumentParams) -> None:
        _adopt(ls.open_text_document(params.text_document.uri))
        if ls.notebook_of_cell(params.text_document.uri) is None:
            ls.schedule(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: LooplintLanguageServer, params: types.DidChangeTextDocumentParams) -> None:
        uri = params.text_document.uri
        ls.schedule_change(ls.notebook_of_cell(uri) or uri)

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE, types.SaveOptions(include_text=False))
    def did_save(ls: LooplintLanguageServer, params: types.DidSaveTextDocumentParams) -> None:
        uri = params.text_document.uri
        if os.path.basename(to_fs_path(uri) or "") in CONFIG_FILES:
            ls.configuration_changed()
        elif (to_fs_path(uri) or "").endswith(".py"):
            # another open document may import this module (looplint.model.project reads it from disk)
            ls.relint_all()
        elif ls.open_text_document(uri) is not None:
            ls.schedule(ls.notebook_of_cell(uri) or uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: LooplintLanguageServer, params: types.DidCloseTextDocumentParams) -> None:
        ls.clear(params.text_document.uri)

    @server.feature(types.NOTEBOOK_DOCUMENT_DID_OPEN)
    def notebook_did_open(ls: LooplintLanguageServer, params: types.DidOpenNotebookDocumentParams) -> None:
        for cell in params.cell_text_documents:
            _adopt(ls.open_text_document(cell.uri))
        ls.schedule(params.notebook_document.uri)

    @server.feature(types.NOTEBOOK_DOCUMENT_DID_CHANGE)
    def notebook_did_change(ls: LooplintLanguageServer, params: types.DidChangeNotebookDocumentParams) -> None:
        structure = params.change.cells.structure if params.change.cells is not None else None
        for cell in (structure.did_open or []) if structure is not None else []:
            _adopt(ls.open_text_document(cell.uri))
        ls.schedule_change(params.notebook_document.uri)

    @server.feature(types.NOTEBOOK_DOCUMENT_DID_SAVE)
    def notebook_did_save(ls: LooplintLanguageServer, params: types.DidSaveNotebookDocumentParams) -> None:
        ls.schedule(params.notebook_document.uri)

    @server.feature(types.NOTEBOOK_DOCUMENT_DID_CLOSE)
    def notebook_did_close(ls: LooplintLanguageServer, params: types.DidCloseNotebookDocumentParams) -> None:
        ls.cancel(params.notebook_document.uri)
        for cell_uri in ls.notebook_cells.pop(params.notebook_document.uri, []):
            ls.clear(cell_uri)

    @server.feature(types.WORKSPACE_DID_CHANGE_WATCHED_FILES)
    def watched_files_changed(ls: LooplintLanguageServer, params: types.DidChangeWatchedFilesParams) -> None:
        if any(os.path.basename(to_fs_path(c.uri) or c.uri) in CONFIG_FILES for c in params.changes):
            ls.configuration_changed()

    @server.feature(types.TEXT_DOCUMENT_HOVER)
    def hover(ls: LooplintLanguageServer, params: types.HoverParams) -> Optional[types.Hover]:
        try:
            return ls.hover(params)
        except Exception:  # noqa: BLE001
            logger.exception("hover failed")
            return None

    @server.feature(
        types.TEXT_DOCUMENT_CODE_ACTION,
        types.CodeActionOptions(code_action_kinds=[types.CodeActionKind.QuickFix, FIX_ALL_KIND]),
    )
    async def code_action(ls: LooplintLanguageServer, params: types.CodeActionParams) -> Optional[List[types.CodeAction]]:
        try:
            return await ls.code_actions(params)
        except Exception:  # noqa: BLE001
            logger.exception("code action failed")
            return None

    return server


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="looplint server",
        description="Run the looplint language server on stdin/stdout (for editors; see the README).",
    )
    parser.add_argument("--stdio", action="store_true", help="talk over stdin/stdout (the default and only transport)")
    parser.add_argument("--debounce", type=_seconds, default=DEBOUNCE_SECONDS, metavar="SECONDS",
                        help=f"pause after a change made while its document is being linted (default {DEBOUNCE_SECONDS}); "
                             "a change to a document that is not being linted is linted at once")
    parser.add_argument("--log-level", default="WARNING", choices=("DEBUG", "INFO", "WARNING", "ERROR"), help="log level of the messages written to stderr")
    return parser


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number of seconds: {text!r}") from None
    if not 0 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"must be from 0 to 3600 seconds, got {text}")
    return value


def main(argv: Optional[Sequence[str]] = None) -> int:
    ns = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    logging.basicConfig(stream=sys.stderr, level=getattr(logging, ns.log_level), format="looplint server: %(levelname)s: %(message)s")
    all_rules()  # import every rule once, here, before the lint thread uses the registry
    from looplint.engine import linting_process

    linting_process()
    server = create_server(ns.debounce)
    try:
        return serve_stdio(server)
    finally:
        server.lint.close()
