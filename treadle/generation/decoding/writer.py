"""The program being written, piece by piece: which grammar comes next, and what each piece
binds. The decoder asks `grammar()`, generates text under it, and hands the text to
`advance()`; the writer reads the names and types the piece bound (the grammar guarantees its
shape, so a regular expression reads it) and so knows the scope of the next piece.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from treadle.generation.decoding.grammar_ir import Grammar
from treadle.generation.decoding.scope_grammar import (
    Scope,
    field_grammar,
    header_grammar,
    statement_grammar,
)
from treadle.generation.decoding.vocabulary import Callee
from treadle.runtime.types import JSON, Type, list_of, parse_type

DEFAULT_MAX_STATEMENTS = 8
MAX_INPUTS = 3
MAX_OUTPUTS = 2

_PARAM = re.compile(r"([a-z][a-z0-9_]*): (list of [a-z]+|[a-z]+)")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


@dataclass
class ProgramWriter:
    vocab: Mapping[str, Callee]
    max_statements: int = DEFAULT_MAX_STATEMENTS
    phase: Literal["header", "inputs", "outputs", "body", "done"] = "header"
    inputs: dict[str, Type] = field(default_factory=dict)
    outputs: dict[str, Type] = field(default_factory=dict)
    scope: Scope = field(default_factory=Scope)
    statements: int = 0
    text: str = ""
    #: steps whose value no later statement has read yet, in order
    unread: list[str] = field(default_factory=list)

    @property
    def unbound(self) -> dict[str, Type]:
        return {n: t for n, t in self.outputs.items() if n not in self.scope.names}

    def grammar(self) -> Grammar | None:
        """The grammar of the next piece; None once `end` is written."""
        if self.phase == "header":
            return header_grammar(self.vocab)
        if self.phase == "inputs":
            return field_grammar(
                self.vocab, list(self.inputs), first=False,
                more=len(self.inputs) < MAX_INPUTS, close=")",
            )  # fmt: skip
        if self.phase == "outputs":
            return field_grammar(
                self.vocab, [*self.inputs, *self.outputs], first=not self.outputs,
                more=len(self.outputs) < MAX_OUTPUTS, close="\n",
            )  # fmt: skip
        if self.phase == "body":
            unused = Scope({n: self.scope.names[n] for n in self.unread})
            return statement_grammar(
                self.vocab,
                self.scope,
                self.unbound,
                remaining=self.max_statements - self.statements,
                unused=unused,
            )
        return None

    def repeats(self, piece: str) -> bool:
        """Whether a statement piece computes exactly what an earlier statement computes (a
        small model's favourite loop); the decoder then samples that statement again."""
        if self.phase != "body" or " = " not in piece:
            return False
        rhs = piece.strip().partition(" = ")[2]
        return any(line.strip().partition(" = ")[2] == rhs for line in self.text.splitlines()[1:])

    def advance(self, piece: str) -> None:
        self.text += piece
        if self.phase in ("header", "inputs"):
            self.inputs.update({n: parse_type(t) for n, t in _PARAM.findall(piece)})
            if piece.endswith(")"):
                self.scope = Scope(dict(self.inputs))
                self.phase = "outputs"
            else:
                self.phase = "inputs"
        elif self.phase == "outputs":
            self.outputs.update({n: parse_type(t) for n, t in _PARAM.findall(piece)})
            if piece.endswith("\n"):
                self.phase = "body"
        elif self.phase == "body":
            line = piece.strip()
            if line == "end":
                self.phase = "done"
                return
            name, _, rhs = line.partition(" = ")
            read = reads(rhs)
            self.unread = [n for n in self.unread if n not in read]
            self.scope.names[name] = rhs_type(rhs, self.scope, self.vocab)
            if name not in self.outputs:
                self.unread.append(name)
            self.statements += 1


def reads(rhs: str) -> set[str]:
    """The names a generated right-hand side reads (references and `{interpolations}`)."""
    names = set(re.findall(r"\{([a-z][a-z0-9_]*)", rhs))
    bare = _STRING.sub('""', rhs)
    names |= set(re.findall(r"(?<![.\w])([a-z][a-z0-9_]*)", bare))
    return names


def rhs_type(rhs: str, scope: Scope, vocab: Mapping[str, Callee]) -> Type:
    """The type of a generated right-hand side (the grammar fixed its shape)."""
    m = re.match(r"for each ([a-z][a-z0-9_]*) in ([a-z0-9_.]+): (.*)$", rhs)
    if m:
        lst = _ref_type(scope, m.group(2))
        item = lst.item if lst is not None and lst.item is not None else JSON
        inner = Scope({**scope.names, m.group(1): item})
        return list_of(rhs_type(m.group(3), inner, vocab))
    bare = _STRING.sub('""', rhs)
    callee = max(
        (c for c in vocab.values() if bare == c.name or bare.startswith(c.name + " ")),
        key=lambda c: len(c.name),
        default=None,
    )
    if callee is None:
        return _ref_type(scope, bare) or JSON
    words, _, options = bare.partition(" with ")
    out = _item_type(callee, words, scope) or callee.output
    if re.search(r"(^|, )samples ", options):
        return list_of(out)
    return out


def _item_type(callee: Callee, words: str, scope: Scope) -> Type | None:
    """For an operator whose value is an item of a list argument (`vote xs`), the item type
    of that argument, as the checker types it (a literal list or an unknown one: None)."""
    p = next((p for p in callee.params if p.name == callee.item_of), None)
    if p is None:
        return None
    lead = re.escape(callee.name) + (r" " if p.prep is None else rf" .*?\b{p.prep} ")
    m = re.match(lead + r"([a-z_][a-z0-9_.]*)", words)
    t = _ref_type(scope, m.group(1)) if m else None
    return t.item if t is not None and t.kind == "list" else None


def _ref_type(scope: Scope, ref: str) -> Type | None:
    name, _, f = ref.partition(".")
    t = scope.names.get(name)
    if t is None or not f:
        return t
    return t.field(f)
