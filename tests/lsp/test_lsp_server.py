"""`treadle lsp` end to end: a real LSP client (pytest-lsp) talks to the server over stdio."""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import pytest_lsp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lsprotocol import types as T
from pytest_lsp import ClientServerConfig, LanguageClient

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FLOWS = sorted(p for p in EXAMPLES.glob("*.flow"))

R = TypeVar("R")

SERVER = [sys.executable, "-c", "from treadle.cli import main; main()", "lsp"]


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER))
async def client(lsp_client: LanguageClient):  # type: ignore[no-untyped-def]
    await lsp_client.initialize_session(
        T.InitializeParams(capabilities=T.ClientCapabilities(), root_uri=EXAMPLES.as_uri())
    )
    yield
    await lsp_client.shutdown_session()


class Editor:
    """One document open in the client, edited by whole-text changes."""

    def __init__(self, client: LanguageClient, path: Path, text: str) -> None:
        self.client, self.uri, self.text, self.version = client, path.as_uri(), text, 1

    async def open(self) -> list[T.Diagnostic]:
        self.client.text_document_did_open(
            T.DidOpenTextDocumentParams(
                T.TextDocumentItem(uri=self.uri, language_id="flow", version=1, text=self.text)
            )
        )
        return await self.diagnostics()

    async def change(self, text: str) -> list[T.Diagnostic]:
        self.text, self.version = text, self.version + 1
        self.client.text_document_did_change(
            T.DidChangeTextDocumentParams(
                T.VersionedTextDocumentIdentifier(uri=self.uri, version=self.version),
                [T.TextDocumentContentChangeWholeDocument(text=text)],
            )
        )
        return await self.diagnostics()

    async def diagnostics(self) -> list[T.Diagnostic]:
        """The diagnostics the server publishes for this document's current version."""
        while True:
            note = await asyncio.wait_for(
                self.client.wait_for_notification(T.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS), 30
            )
            if note.uri == self.uri and note.version == self.version:
                return list(note.diagnostics)

    def doc(self) -> T.TextDocumentIdentifier:
        return T.TextDocumentIdentifier(self.uri)


BROKEN = """\
workflow solve(problem: text) -> answer: text
  drafts = genrate from "Solve: {problem}" with samples 3
  answer = vote drafts
end
"""


async def test_diagnostics_carry_codes_ranges_and_a_quick_fix(
    client: LanguageClient, tmp_path: Path
) -> None:
    ed = Editor(client, tmp_path / "broken.flow", BROKEN)
    diags = await ed.open()
    assert [(d.code, d.range.start.line, d.range.start.character) for d in diags] == [
        ("E201", 1, 11)
    ]
    d = diags[0]
    assert d.range.end == T.Position(1, 18) and d.source == "treadle"
    assert "did you mean `generate`?" in d.message
    actions = await client.text_document_code_action_async(
        T.CodeActionParams(ed.doc(), d.range, T.CodeActionContext([d]))
    )
    assert actions is not None and len(actions) == 1
    action = actions[0]
    assert isinstance(action, T.CodeAction) and action.edit and action.edit.changes
    (edit,) = action.edit.changes[ed.uri]
    assert edit.new_text == "generate" and edit.range == d.range
    assert await ed.change(BROKEN.replace("genrate", "generate")) == []


async def test_a_used_file_with_errors_points_at_them(
    client: LanguageClient, tmp_path: Path
) -> None:
    (tmp_path / "lib.flow").write_text(
        "workflow helper(x: text) -> y: text\n  y = generate from undefined_name\nend\n"
    )
    text = 'use "lib.flow"\n\nworkflow main(q: text) -> a: text\n  a = helper q\nend\n'
    diags = await Editor(client, tmp_path / "main.flow", text).open()
    e703 = next(d for d in diags if d.code == "E703")
    assert e703.related_information is not None
    (rel,) = e703.related_information
    assert rel.location.uri == (tmp_path / "lib.flow").as_uri()
    assert rel.location.range.start == T.Position(1, 20) and "undefined_name" in rel.message


async def test_hover_shows_operators_names_and_used_workflows(client: LanguageClient) -> None:
    path = EXAMPLES / "solve_math.flow"
    ed = Editor(client, path, path.read_text())
    assert await ed.open() == []

    async def hover(line: int, char: int) -> str:
        h = await client.text_document_hover_async(T.HoverParams(ed.doc(), T.Position(line, char)))
        assert h is not None and isinstance(h.contents, T.MarkupContent)
        return h.contents.value

    op = await hover(4, 12)  # `generate`
    assert "generate from <prompt: text>" in op and "with temperature" in op
    assert "`from` `prompt`" in op and "Ask the model" in op
    assert await hover(6, 17) == "`numbers`: `list of number`, bound on line 6"
    assert await hover(9, 20) == "`checked.value`: `json`, bound on line 8"

    lib = EXAMPLES / "uses_library.flow"
    ed2 = Editor(client, lib, lib.read_text())
    await ed2.open()
    line, col = _find(lib.read_text(), "double_check")
    h = await client.text_document_hover_async(T.HoverParams(ed2.doc(), T.Position(line, col)))
    assert h is not None and isinstance(h.contents, T.MarkupContent)
    assert "workflow double_check(" in h.contents.value


def _find(text: str, word: str, after: str = "=") -> tuple[int, int]:
    """The first (line, character) of `word` on a line that contains `after` before it."""
    for i, line in enumerate(text.splitlines()):
        at = line.find(word)
        if at >= 0 and after in line[:at]:
            return i, at
    raise AssertionError(f"{word} not found")


async def test_definition_of_names_and_used_workflows(client: LanguageClient) -> None:
    path = EXAMPLES / "solve_math.flow"
    ed = Editor(client, path, path.read_text())
    await ed.open()
    loc = await client.text_document_definition_async(
        T.DefinitionParams(ed.doc(), T.Position(6, 17))  # `numbers` in `vote numbers`
    )
    assert isinstance(loc, T.Location) and loc.uri == ed.uri and loc.range.start.line == 5
    lib = EXAMPLES / "uses_library.flow"
    ed2 = Editor(client, lib, lib.read_text())
    await ed2.open()
    line, col = _find(lib.read_text(), "double_check")
    loc = await client.text_document_definition_async(
        T.DefinitionParams(ed2.doc(), T.Position(line, col))
    )
    assert isinstance(loc, T.Location) and loc.uri.endswith(".flow") and loc.uri != ed2.uri
    target = Path(loc.uri.removeprefix("file://")).read_text().splitlines()
    assert target[loc.range.start.line].startswith("workflow double_check(")


async def test_formatting_and_symbols(client: LanguageClient, tmp_path: Path) -> None:
    ed = Editor(client, tmp_path / "f.flow", "workflow f(x: text) -> y: text\n   y   =  x\nend\n")
    await ed.open()
    edits = await client.text_document_formatting_async(
        T.DocumentFormattingParams(ed.doc(), T.FormattingOptions(tab_size=2, insert_spaces=True))
    )
    assert edits is not None and [e.new_text for e in edits] == [
        "workflow f(x: text) -> y: text\n  y = x\nend\n"
    ]
    path = EXAMPLES / "solve_math.flow"
    ed2 = Editor(client, path, path.read_text())
    await ed2.open()
    syms = await client.text_document_document_symbol_async(T.DocumentSymbolParams(ed2.doc()))
    assert syms is not None
    (wf,) = syms
    assert isinstance(wf, T.DocumentSymbol) and wf.name == "solve_math"
    assert [c.name for c in wf.children or []] == [
        "drafts", "numbers", "voted", "checked", "answer", "answer",
    ]  # fmt: skip


async def complete(ed: Editor, line: int, char: int) -> list[T.CompletionItem]:
    res = await ed.client.text_document_completion_async(
        T.CompletionParams(ed.doc(), T.Position(line, char))
    )
    assert isinstance(res, T.CompletionList)
    return res.items


async def test_completion_offers_calls_prepositions_options_names_fields_and_templates(
    client: LanguageClient, tmp_path: Path
) -> None:
    text = (
        "workflow f(problem: text) -> answer: text\n"
        "  checked = program for problem\n"
        '  draft = generate from "Solve {pro"\n'
        "  x = checked.\n"
        "  answer = generate from problem \n"
        "  y = wri\n"
        "end\n"
    )
    ed = Editor(client, tmp_path / "c.flow", text)
    await ed.open()
    # a template's `{name}`
    items = await complete(ed, 2, 35)
    assert "problem" in [i.label for i in items] and "checked.ok" in [i.label for i in items]
    # record fields after `.`
    items = await complete(ed, 3, 14)
    fields = [i.label for i in items if i.kind == T.CompletionItemKind.Field]
    assert "checked.ok" in fields and "checked.value" in fields
    # after an operator and its subject: its prepositions, then options, in order
    items = await complete(ed, 4, 33)
    labels = [i.label for i in items]
    assert labels[0] == "given" and labels.index("temperature") < labels.index("max_tokens")
    assert items[0].text_edit is not None and items[0].text_edit.new_text == "given problem"
    # a new step's command: whole calls with their required arguments from the scope
    items = await complete(ed, 5, 9)
    write = next(i for i in items if i.label == "write code")
    assert write.text_edit is not None and write.text_edit.new_text == "write code for problem"
    assert write.detail is not None and "write code" in write.detail


def apply(text: str, line: int, edit: T.TextEdit) -> str:
    lines = text.split("\n")
    s, e = edit.range.start.character, edit.range.end.character
    lines[line] = lines[line][:s] + edit.new_text + lines[line][e:]
    return "\n".join(lines)


def first_kind(diags: list[T.Diagnostic]) -> dict[str, int]:
    """How many diagnostics of each E1xx/E2xx code (names and calls)."""
    out: dict[str, int] = {}
    for d in diags:
        if isinstance(d.code, str) and d.code[:2] in ("E1", "E2"):
            out[d.code] = out.get(d.code, 0) + 1
    return out


def points(text: str) -> st.SearchStrategy[tuple[int, int, str]]:
    """A point on a body line: anywhere on it, or at its end after a typed space, or on a
    fresh step line `zq = ` inserted above it."""
    lines = text.split("\n")
    body = [i for i, ln in enumerate(lines) if ln.startswith("  ") and ln.strip()]
    return st.sampled_from(body).flatmap(
        lambda i: st.one_of(
            st.tuples(st.just(i), st.integers(0, len(lines[i])), st.just("at")),
            st.tuples(st.just(i), st.just(len(lines[i]) + 1), st.just("space")),
            st.tuples(st.just(i), st.just(len("  zq = ")), st.just("new step")),
        )
    )


class Background:
    """A client on an event loop of its own thread, for hypothesis's synchronous tests."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.client = LanguageClient()

    def run(self, coro: Coroutine[Any, Any, R], timeout: float = 120) -> R:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def start(self) -> None:
        await self.client.start_io(*SERVER)
        await self.client.initialize_session(
            T.InitializeParams(capabilities=T.ClientCapabilities(), root_uri=EXAMPLES.as_uri())
        )

    async def stop(self) -> None:
        await self.client.shutdown_session()


@pytest.fixture(scope="module")
def background() -> Iterator[Background]:
    bg = Background()
    bg.run(bg.start())
    yield bg
    bg.run(bg.stop())
    bg.loop.call_soon_threadsafe(bg.loop.stop)
    bg.thread.join(10)


async def completions_inserted(
    client: LanguageClient, path: Path, point: tuple[int, int, str]
) -> list[tuple[str, str, dict[str, int]]]:
    """Each completion offered at the point, inserted: its label, text and the E1xx/E2xx
    codes that grew in number over the file as it was."""
    line, char, how = point
    original = path.read_text()
    ed = Editor(client, path, original)
    base = first_kind(await ed.open())
    lines = original.split("\n")
    if how == "space":
        lines[line] += " "
    elif how == "new step":
        lines.insert(line, "  zq = ")
    text = "\n".join(lines)
    if text != original:
        await ed.change(text)
    out = []
    for item in (await complete(ed, line, char))[:12]:
        assert item.text_edit is not None and isinstance(item.text_edit, T.TextEdit)
        after = first_kind(await ed.change(apply(text, line, item.text_edit)))
        new = {c: n for c, n in after.items() if n > base.get(c, 0)}
        out.append((item.label, item.text_edit.new_text, new))
    # no didClose: its empty publish could arrive between two waits and hide the next one
    return out


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_every_completion_inserted_adds_no_name_or_call_error(
    background: Background, data: st.DataObject
) -> None:
    path = data.draw(st.sampled_from(FLOWS), label="file")
    point = data.draw(points(path.read_text()), label="point")
    for label, inserted, new in background.run(
        completions_inserted(background.client, path, point)
    ):
        assert not new, (point, label, inserted, new)


def test_the_server_is_a_cli_command() -> None:
    import subprocess

    res = subprocess.run([*SERVER, "--help"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and "Language Server Protocol" in res.stdout


pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
