"""A small grammar builder rendered two ways: llguidance's Lark dialect and llama.cpp's GBNF.

Constrained decoding needs grammars made per request (the operators offered, the names in
scope), and the servers take different syntaxes: llguidance (embedded, vLLM, llama.cpp built
with it) reads Lark, llama-cpp-python's server reads GBNF. Building the grammar as data and
printing it twice keeps one generator for both. Whitespace is explicit (no `%ignore`): the model
writes the canonical layout, which leaves it fewer ways to wander.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Lit:
    text: str


@dataclass(frozen=True)
class Rx:
    """A regular expression: `lark` in Rust-regex syntax, `gbnf` as a GBNF expression."""

    lark: str
    gbnf: str


@dataclass(frozen=True)
class Ref:
    rule: str


@dataclass(frozen=True)
class Opt:
    items: tuple[Item, ...]


@dataclass(frozen=True)
class Star:
    items: tuple[Item, ...]


@dataclass(frozen=True)
class Group:
    """Alternatives inline: `(a | b c)`."""

    alts: tuple[tuple[Item, ...], ...]


Item = Lit | Rx | Ref | Opt | Star | Group


@dataclass
class Grammar:
    """Rules by name; `start` is the start rule. `tokens` are named Lark terminals (they may
    use llguidance's `&` and `~`); each has a GBNF fallback expression without them."""

    rules: dict[str, list[tuple[Item, ...]]] = field(default_factory=dict)
    tokens: dict[str, tuple[str, str]] = field(default_factory=dict)
    start: str = "start"

    def rule(self, name: str, *alts: tuple[Item, ...] | list[Item]) -> Ref:
        self.rules[name] = [tuple(a) for a in alts]
        return Ref(name)

    def has(self, name: str) -> bool:
        return name in self.rules

    def token(self, name: str, lark: str, gbnf: str) -> Ref:
        self.tokens[name] = (lark, gbnf)
        return Ref(name)

    # ------------------------------------------------------------ rendering

    def lark(self) -> str:
        """llguidance's Lark dialect (prefix `%llguidance {}` for llama.cpp's server)."""
        out = [f"start: {self.start}"] if self.start != "start" else []
        for name, alts in self.rules.items():
            body = " | ".join(_lark_seq(a) for a in alts) or '""'
            out.append(f"{name}: {body}")
        for name, (lark, _) in self.tokens.items():
            out.append(f"{name}: {lark}")
        return "\n".join(out) + "\n"

    def gbnf(self) -> str:
        out = [f"root ::= {_gbnf_name(self.start)}"]
        for name, alts in self.rules.items():
            body = " | ".join(_gbnf_seq(a) for a in alts) or '""'
            out.append(f"{_gbnf_name(name)} ::= {body}")
        for name, (_, gbnf) in self.tokens.items():
            out.append(f"{_gbnf_name(name)} ::= {gbnf}")
        return "\n".join(out) + "\n"


def _lark_item(i: Item) -> str:
    if isinstance(i, Lit):
        return json.dumps(i.text)
    if isinstance(i, Rx):
        return "/" + i.lark.replace("/", "\\/") + "/"
    if isinstance(i, Ref):
        return i.rule
    if isinstance(i, Opt):
        return f"({_lark_seq(i.items)})?"
    if isinstance(i, Star):
        return f"({_lark_seq(i.items)})*"
    return "(" + " | ".join(_lark_seq(a) for a in i.alts) + ")"


def _lark_seq(items: tuple[Item, ...]) -> str:
    return " ".join(_lark_item(i) for i in items) if items else '""'


def _gbnf_name(name: str) -> str:
    return name.replace("_", "-").lower()


def _gbnf_item(i: Item) -> str:
    if isinstance(i, Lit):
        return json.dumps(i.text, ensure_ascii=False)
    if isinstance(i, Rx):
        return f"({i.gbnf})"
    if isinstance(i, Ref):
        return _gbnf_name(i.rule)
    if isinstance(i, Opt):
        return f"({_gbnf_seq(i.items)})?"
    if isinstance(i, Star):
        return f"({_gbnf_seq(i.items)})*"
    return "(" + " | ".join(_gbnf_seq(a) for a in i.alts) + ")"


def _gbnf_seq(items: tuple[Item, ...]) -> str:
    return " ".join(_gbnf_item(i) for i in items) if items else '""'


def alts_of(words: list[str]) -> Group:
    """One of several literal words."""
    return Group(tuple((Lit(w),) for w in words))
