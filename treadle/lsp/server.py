"""`treadle lsp`: the Language Server Protocol over stdio, on pygls.

Each open document is compiled on open and on every change (full-text sync) into a
`FlowDocument`; the handlers translate its answers into protocol types. Positions: the protocol
counts lines and characters from 0, the compiler from 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from lsprotocol import types as T
from pygls.lsp.server import LanguageServer

from treadle.compiler.diagnostics import CODES, Diagnostic
from treadle.lsp.document import FlowDocument, Site
from treadle.runtime.ir import SourceSpan
from treadle.version import __version__

_KINDS = {
    "operator": T.CompletionItemKind.Function,
    "workflow": T.CompletionItemKind.Module,
    "name": T.CompletionItemKind.Variable,
    "field": T.CompletionItemKind.Field,
    "preposition": T.CompletionItemKind.Keyword,
    "option": T.CompletionItemKind.Property,
}


def _path(uri: str) -> Path | None:
    parsed = urlparse(uri)
    return Path(unquote(parsed.path)) if parsed.scheme == "file" else None


def _range(span: SourceSpan) -> T.Range:
    return T.Range(
        T.Position(max(span.line - 1, 0), max(span.column - 1, 0)),
        T.Position(max(span.end_line - 1, 0), max(span.end_column - 1, 0)),
    )


def _location(site: Site, uri: str) -> T.Location:
    return T.Location(uri=site.path.as_uri() if site.path else uri, range=_range(site.span))


class FlowServer(LanguageServer):
    """The server with its compiled documents, by URI."""

    def __init__(self) -> None:
        super().__init__("treadle", __version__)
        self.documents: dict[str, FlowDocument] = {}
        self._operators: Any = None

    @property
    def operators(self) -> Any:
        if self._operators is None:
            from treadle.stdlib_ops.registry import operators

            self._operators = operators()
        return self._operators

    def analyse(self, uri: str, text: str) -> FlowDocument:
        doc = FlowDocument(text, _path(uri), self.operators)
        self.documents[uri] = doc
        return doc

    def to_lsp(self, doc: FlowDocument, uri: str, d: Diagnostic) -> T.Diagnostic:
        related = [
            T.DiagnosticRelatedInformation(location=_location(site, uri), message=message)
            for site, message in doc.related(d)
        ]
        return T.Diagnostic(
            range=_range(SourceSpan(d.line, d.column, d.end_line, d.end_column)),
            message=d.message + (f"\n{d.hint}" if d.hint else ""),
            severity=T.DiagnosticSeverity.Error if d.is_error else T.DiagnosticSeverity.Warning,
            code=d.code,
            source="treadle",
            related_information=related or None,
            data={"slug": CODES[d.code][0]} if d.code in CODES else None,
        )

    def publish(self, uri: str, text: str, version: int | None) -> None:
        doc = self.analyse(uri, text)
        diags = [self.to_lsp(doc, uri, d) for d in doc.diagnostics]
        self.text_document_publish_diagnostics(
            T.PublishDiagnosticsParams(uri=uri, diagnostics=diags, version=version)
        )


server = FlowServer()


@server.feature(T.TEXT_DOCUMENT_DID_OPEN)
def did_open(ls: FlowServer, params: T.DidOpenTextDocumentParams) -> None:
    ls.publish(params.text_document.uri, params.text_document.text, params.text_document.version)


@server.feature(T.TEXT_DOCUMENT_DID_CHANGE)
def did_change(ls: FlowServer, params: T.DidChangeTextDocumentParams) -> None:
    uri = params.text_document.uri
    ls.publish(uri, ls.workspace.get_text_document(uri).source, params.text_document.version)


@server.feature(T.TEXT_DOCUMENT_DID_CLOSE)
def did_close(ls: FlowServer, params: T.DidCloseTextDocumentParams) -> None:
    ls.documents.pop(params.text_document.uri, None)
    ls.text_document_publish_diagnostics(
        T.PublishDiagnosticsParams(uri=params.text_document.uri, diagnostics=[])
    )


def _doc(ls: FlowServer, uri: str) -> FlowDocument:
    doc = ls.documents.get(uri)
    return doc if doc is not None else ls.analyse(uri, ls.workspace.get_text_document(uri).source)


@server.feature(T.TEXT_DOCUMENT_HOVER)
def hover(ls: FlowServer, params: T.HoverParams) -> T.Hover | None:
    p = params.position
    text = _doc(ls, params.text_document.uri).hover(p.line + 1, p.character + 1)
    if text is None:
        return None
    return T.Hover(T.MarkupContent(kind=T.MarkupKind.Markdown, value=text))


@server.feature(T.TEXT_DOCUMENT_COMPLETION, T.CompletionOptions(trigger_characters=[".", "{", " "]))
def completion(ls: FlowServer, params: T.CompletionParams) -> T.CompletionList:
    p = params.position
    offers = _doc(ls, params.text_document.uri).complete(p.line + 1, p.character + 1)
    items = [
        T.CompletionItem(
            label=o.label,
            kind=_KINDS.get(o.kind),
            detail=o.detail,
            sort_text=f"{i:04d}",
            text_edit=T.TextEdit(
                T.Range(T.Position(p.line, o.start - 1), T.Position(p.line, o.end - 1)), o.insert
            ),
        )
        for i, o in enumerate(offers)
    ]
    return T.CompletionList(is_incomplete=False, items=items)


@server.feature(T.TEXT_DOCUMENT_DEFINITION)
def definition(ls: FlowServer, params: T.DefinitionParams) -> T.Location | None:
    p, uri = params.position, params.text_document.uri
    site = _doc(ls, uri).definition(p.line + 1, p.character + 1)
    return _location(site, uri) if site is not None else None


@server.feature(T.TEXT_DOCUMENT_FORMATTING)
def formatting(ls: FlowServer, params: T.DocumentFormattingParams) -> list[T.TextEdit] | None:
    doc = _doc(ls, params.text_document.uri)
    out = doc.formatted()
    if out is None or out == doc.text:
        return None if out is None else []
    end = T.Position(len(doc.lines), 0)
    return [T.TextEdit(T.Range(T.Position(0, 0), end), out)]


@server.feature(T.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
def symbols(ls: FlowServer, params: T.DocumentSymbolParams) -> list[T.DocumentSymbol]:
    out = []
    for wf, steps in _doc(ls, params.text_document.uri).symbols():
        children = [
            T.DocumentSymbol(
                name=s.name,
                kind=T.SymbolKind.Variable,
                range=_range(s.span),
                selection_range=_range(SourceSpan(s.span.line, s.span.column, s.span.line,
                                                  s.span.column + len(s.name))),
            )
            for s in steps
        ]  # fmt: skip
        out.append(
            T.DocumentSymbol(
                name=wf.name,
                kind=T.SymbolKind.Function,
                range=_range(wf.span),
                selection_range=_range(SourceSpan(wf.span.line, 1, wf.span.line, 1)),
                children=children,
            )
        )
    return out


@server.feature(
    T.TEXT_DOCUMENT_CODE_ACTION,
    T.CodeActionOptions(code_action_kinds=[T.CodeActionKind.QuickFix]),
)
def code_actions(ls: FlowServer, params: T.CodeActionParams) -> list[T.CodeAction]:
    uri = params.text_document.uri
    doc = _doc(ls, uri)
    wanted = {(d.range.start.line, d.code) for d in params.context.diagnostics}
    out = []
    for d in doc.diagnostics:
        if wanted and (d.line - 1, d.code) not in wanted:
            continue
        if not params.range.start.line <= d.line - 1 <= params.range.end.line:
            continue
        fix = doc.quick_fix(d)
        if fix is None:
            continue
        span, replacement = fix
        out.append(
            T.CodeAction(
                title=f"Replace with `{replacement}`",
                kind=T.CodeActionKind.QuickFix,
                diagnostics=[ls.to_lsp(doc, uri, d)],
                is_preferred=True,
                edit=T.WorkspaceEdit(changes={uri: [T.TextEdit(_range(span), replacement)]}),
            )
        )
    return out


def main() -> None:
    """Serve over stdin/stdout until the client exits."""
    server.start_io()
