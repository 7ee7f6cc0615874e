"""Grammars specialised per request and per statement, from the vocabulary and the scope.

The decoder writes a program piece by piece: the header, then one statement at a time. Each
piece gets its own grammar, built from what is true at that point:
- the operator names are the closed vocabulary (registry + selected capabilities);
- after an operator come only its prepositions, in its order, and its option names;
- a reference names only what is bound here (inputs, earlier steps, record fields, the loop
  variable inside `for each`), and where a parameter wants a type only names of fitting types
  are offered (a list parameter gets the names bound to lists);
- a new step binds a fresh name (never a keyword, an operator word or a bound name);
- `end` is offered only once every output is bound, and the statement bound forces the
  remaining outputs to be bound in time.
So E101 (undefined name), E201/E202/E205 (unknown operator, preposition, option) and E401
(unknown template name) cannot be generated.

`program_grammar` is the one-piece form for servers (not scope-aware: a server decodes the
whole program with one grammar), closed over operators, prepositions and options still.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from treadle.generation.decoding.grammar_ir import (
    Grammar,
    Group,
    Item,
    Lit,
    Opt,
    Ref,
    Rx,
    alts_of,
)
from treadle.generation.decoding.vocabulary import Callee, OptionSpec
from treadle.runtime.types import TYPE_NAMES, Type, list_of

#: words a name may not be: the grammar's keywords and prepositions
KEYWORDS = (
    "use", "workflow", "list", "of", "for", "each", "in", "with", "if", "then", "else", "end",
    "repeat", "up", "to", "times", "until", "return", "or", "and", "not", "is", "true", "false",
    "from", "against", "using", "given", "on", "by", "into", "about", "as", "at", "over", "via",
    "none", "null", "file", "contains", "starts", "ends",
)  # fmt: skip

#: names stay short: a small model otherwise keeps extending them (`run_double_solve_by_todo`)
NAME_RX = r"[a-z][a-z0-9_]{0,15}"
NAME_GBNF = "[a-z] [a-z0-9_]{0,15}"
#: a run of plain characters inside a string (escapes `\n` allowed, braces are interpolations)
CHUNK_RX = r'([^"\\{}\n]|\\n){1,60}'
CHUNK_GBNF = '([^"\\\\{}\\n] | "\\\\n"){1,60}'
#: at most this many chunks and interpolations in one string: with the chunk's 60 characters a
#: string closes within 240 (a model running a prompt into free prose is made to end it, so
#: a statement always ends within the writer's piece budget)
STRING_PARTS = 4
STRING_CHARS = 60 * STRING_PARTS
LIST_ITEMS = 4
#: options whose value names a Python function: an identifier, never free text
IDENTIFIER_OPTIONS = frozenset({"entry_point"})
IDENTIFIER_RX = r'"[A-Za-z_][A-Za-z0-9_]{0,31}"'
IDENTIFIER_GBNF = '"\\"" [A-Za-z_] [A-Za-z0-9_]{0,31} "\\""'

_OPTION_NUMBERS: dict[str, tuple[str, str]] = {
    "samples": (r"[2-5]", "[2-5]"),
    "attempts": (r"[1-5]", "[1-5]"),
    "temperature": (r"0\.[0-9]|1\.0", '"0." [0-9] | "1.0"'),
    "max_tokens": (r"[1-9][0-9]{1,3}", "[1-9] [0-9]{1,3}"),
}
_NUMBER = (r"[0-9]{1,4}(\.[0-9]{1,2})?", '[0-9]{1,4} ("." [0-9]{1,2})?')


def _key(t: Type) -> str:
    return re.sub(r"[^a-z0-9]+", "_", str(t).lower()).strip("_") or "t"


@dataclass
class Scope:
    """Names bound at a point of the program, with their types."""

    names: dict[str, Type] = field(default_factory=dict)

    def refs(self, want: Type | None) -> list[str]:
        """References (names and record fields) whose type fits `want` (None: any)."""
        out = []
        for name, t in self.names.items():
            if want is None or want.accepts(t):
                out.append(name)
            if t.kind == "record":
                for f, ft in t.fields:
                    if want is None or want.accepts(ft):
                        out.append(f"{name}.{f}")
        return out


class _Builder:
    """Adds the rules of one context (a scope) to a grammar, once per wanted type."""

    def __init__(self, g: Grammar, vocab: Mapping[str, Callee], loose: bool = False) -> None:
        self.g = g
        self.vocab = vocab
        #: loose: references are any NAME (a one-piece grammar cannot know the scope)
        self.loose = loose
        self._n = 0

    def ctx(self) -> str:
        self._n += 1
        return f"c{self._n}"

    # ------------------------------------------------------------ values

    def refs(self, scope: Scope, want: Type | None, c: str) -> list[tuple[Item, ...]]:
        if self.loose:
            return [(self.name_ref(),)]
        return [(Lit(r),) for r in scope.refs(want)]

    def name_ref(self) -> Ref:
        if not self.g.has("ref"):
            self.g.token(
                "REFNAME", f"/{NAME_RX}(\\.{NAME_RX})?/", f'{NAME_GBNF} ("." {NAME_GBNF})?'
            )
            self.g.rule("ref", (Ref("REFNAME"),))
        return Ref("ref")

    def string(self, scope: Scope, c: str) -> Ref:
        name = f"{c}_str"
        if self.g.has(name):
            return Ref(name)
        self.g.token("CHUNK", f"/{CHUNK_RX}/", CHUNK_GBNF)
        interps = self.refs(scope, None, c)
        part_alts: list[tuple[Item, ...]] = [(Ref("CHUNK"),)]
        if interps:
            self.g.rule(f"{c}_interp", *interps)
            part_alts.append((Lit("{"), Ref(f"{c}_interp"), Lit("}")))
        part = self.g.rule(f"{c}_part", *part_alts)
        tail: tuple[Item, ...] = ()
        for _ in range(STRING_PARTS - 1):
            tail = (Opt((part, *tail)),)
        return self.g.rule(name, (Lit('"'), part, *tail, Lit('"')))

    def number(self, option: str | None = None) -> Rx:
        lark, gbnf = _OPTION_NUMBERS.get(option or "", _NUMBER)
        return Rx(lark, gbnf)

    def value(self, scope: Scope, want: Type, c: str, option: str | None = None) -> Ref | None:
        """A rule for a value of type `want` in this scope; None when nothing fits."""
        special = option in _OPTION_NUMBERS or option in IDENTIFIER_OPTIONS
        name = f"{c}_v_{_key(want)}" + (f"_{option}" if special else "")
        if self.g.has(name):
            return Ref(name)
        kind = want.kind
        # a number option (samples, max_tokens, ...) must be a constant the compiler can read
        alts = [] if option is not None and kind == "number" else self.refs(scope, want, c)
        if kind in ("text", "code", "json", "any") and option in IDENTIFIER_OPTIONS:
            alts.append((Rx(IDENTIFIER_RX, IDENTIFIER_GBNF),))
        elif kind in ("text", "code", "json", "any"):
            alts.append((self.string(scope, c),))
        if kind in ("number", "json", "any"):
            alts.append((self.number(option),))
        if kind == "boolean":
            alts += [(Lit("true"),), (Lit("false"),)]
        if kind == "json" and option is None:
            alts.append((Lit("null"),))  # the dynamic type's no-value
        if kind == "choice":
            alts += [(Lit(w),) for w in want.choices]
        if kind == "list" and want.item is not None:
            item = self.value(scope, want.item, c)
            if item is not None:
                more: tuple[Item, ...] = ()
                for _ in range(LIST_ITEMS - 1):
                    more = (Opt((Lit(", "), item, *more)),)
                alts.append((Lit("["), item, *more, Lit("]")))
        if not alts:
            return None
        return self.g.rule(name, *alts)

    # ------------------------------------------------------------ commands

    def options(
        self, callee: Callee, scope: Scope, c: str, samples: bool = True
    ) -> tuple[Item, ...] | None:
        required = [o for o in callee.options if o.required]
        optional = [
            o for o in callee.options if not o.required and (samples or o.name != "samples")
        ]
        items: list[Item] = []
        for i, o in enumerate(required):
            v = self.value(scope, o.type, c, o.name)
            if v is None:
                return None
            items += [Lit(" with " if i == 0 else ", "), Lit(o.name + " "), v]
        if optional and not required:
            pairs = self._option_rule(optional, scope, c)
            if pairs is not None:
                items.append(Opt((Lit(" with "), pairs)))
        return tuple(items)

    def _option_rule(self, optional: list[OptionSpec], scope: Scope, c: str) -> Ref | None:
        """One option, or two different ones (an option given twice is an error)."""
        single: list[tuple[Item, ...]] = []
        for o in optional:
            v = self.value(scope, o.type, c, o.name)
            if v is not None:
                single.append((Lit(o.name + " "), v))
        if not single:
            return None
        alts = list(single)
        for i, a in enumerate(single):
            for b in single[i + 1 :]:
                alts.append((*a, Lit(", "), *b))
        return self.g.rule(f"{c}_opt{len(self.g.rules)}", *alts)

    def focused(self, focus: Scope, want: Type, c: str) -> Ref | None:
        """A value that reads one of the `focus` names: the name itself (or a field), or a
        string that interpolates it."""
        name = f"{c}_f_{_key(want)}"
        if self.g.has(name):
            return Ref(name)
        alts = self.refs(focus, want, c)
        interps = self.refs(focus, None, c)
        if want.kind in ("text", "code", "json", "any") and interps:
            self.g.token("CHUNK", f"/{CHUNK_RX}/", CHUNK_GBNF)
            hit = self.g.rule(f"{c}_fi", *interps)
            tail: tuple[Item, ...] = ()
            for _ in range(2):
                tail = (Opt((Ref("CHUNK"), *tail)),)
            alts.append((Lit('"{'), hit, Lit("}"), *tail, Lit('"')))
        return self.g.rule(name, *alts) if alts else None

    def command(
        self,
        callee: Callee,
        scope: Scope,
        c: str,
        samples: bool = True,
        focus: tuple[Scope, str] | None = None,
        want: Type | None = None,
    ) -> tuple[Item, ...] | None:
        """`OPERATOR [SUBJECT] {PREP VALUE} [with OPTION VALUE, ...]`; None when a required
        parameter has nothing in scope that fits. With `focus`, the first parameter must read
        one of the focus names (a map's item; the steps nothing has read yet). With `want`,
        an operator whose value is an item of a list argument (`vote`) gets a list of `want`."""
        items: list[Item] = [Lit(callee.name)]
        for i, p in enumerate(callee.params):
            t = list_of(want) if want is not None and p.name == callee.item_of else p.type
            if i == 0 and focus is not None:
                v = self.focused(focus[0], t, focus[1])
                if v is None:
                    return None
            else:
                v = self.value(scope, t, c)
            if v is None:
                if p.required:
                    return None
                continue
            seq: tuple[Item, ...] = (Lit(" "), v) if p.prep is None else (Lit(f" {p.prep} "), v)
            items.extend(seq if p.required or (i == 0 and focus) else (Opt(seq),))
        opts = self.options(callee, scope, c, samples)
        if opts is None:
            return None
        return (*items, *opts)

    def rhs(
        self,
        scope: Scope,
        want: Type | None,
        c: str,
        *,
        plain: bool,
        unused: Scope | None = None,
    ) -> list[tuple[Item, ...]]:
        """Right-hand sides whose value fits `want` (None: anything). With `unused` (steps
        nothing has read yet), each command's first parameter reads one of them, when any
        command can: data flows on instead of being dropped."""
        alts: list[tuple[Item, ...]] = []
        focus = (unused, self.ctx()) if unused is not None and unused.names else None
        for attempt in [focus, None] if focus is not None else [None]:
            for callee in self.vocab.values():
                if want is not None and not want.accepts(callee.output):
                    continue
                # `samples N` makes the value a list: offered only where any value fits
                cmd = self.command(callee, scope, c, samples=want is None, focus=attempt, want=want)
                if cmd is not None:
                    alts.append(cmd)
            if alts:
                break
        if plain and want is not None:
            # a plain value: a name in scope (an unread step first); a constant only when no
            # name fits (a workflow whose output is a constant is rarely what the task wants)
            refs = self.refs(unused, want, c) if focus is not None and unused else []
            refs = refs or self.refs(scope, want, c)
            v = self.value(scope, want, c) if not refs else None
            alts += refs if refs else ([(v,)] if v is not None else [])
        # `for each ITEM in LIST: COMMAND`, a parallel map whose command reads the item
        if not self.loose:
            lists = scope.refs(Type(kind="list", item=Type(kind="any")))
            if focus is not None:
                lists = [r for r in lists if r.partition(".")[0] in unused.names] or lists  # type: ignore[union-attr]
            for lst in lists:
                item_t = _ref_type(scope, lst)
                if item_t is None or item_t.kind != "list" or item_t.item is None:
                    continue
                var = next(v for v in ("item", "x", "each_item", "elem") if v not in scope.names)
                inner = Scope({**scope.names, var: item_t.item})
                ic = self.ctx()
                item_focus = (Scope({var: item_t.item}), self.ctx())
                body = []
                for callee in self.vocab.values():
                    if want is not None and not want.accepts(list_of(callee.output)):
                        continue
                    cmd = self.command(callee, inner, ic, samples=False, focus=item_focus)
                    if cmd is not None:
                        body.append(cmd)
                if body:
                    rule = self.g.rule(f"{ic}_each", *body)
                    alts.append((Lit(f"for each {var} in {lst}: "), rule))
        return alts


def _ref_type(scope: Scope, ref: str) -> Type | None:
    name, _, f = ref.partition(".")
    t = scope.names.get(name)
    if t is None or not f:
        return t
    return t.field(f)


def _fresh_token(g: Grammar, name: str, taken: list[str]) -> Ref:
    """A new name: lowercase, not a keyword and not one of `taken` (llguidance's `&` and `~`;
    GBNF has no negation, so its fallback is the plain pattern and the compiler judges)."""
    words = sorted(set(KEYWORDS) | set(taken))
    excluded = " | ".join(f'"{w}"' for w in words)
    return g.token(name, f"/{NAME_RX}/ & ~({excluded})", NAME_GBNF)


def _type_rule(g: Grammar) -> Ref:
    if not g.has("type"):
        scalars = list(TYPE_NAMES)
        g.rule("type", (alts_of(scalars),), (Lit("list of "), alts_of(scalars)))
    return Ref("type")


def header_grammar(vocab: Mapping[str, Callee]) -> Grammar:
    """`workflow NAME(FIRST: TYPE`: the first piece (never an operator's or capability's name)."""
    g = Grammar()
    words = [w for n in vocab for w in n.split()]
    name = _fresh_token(g, "WFNAME", words)
    pname = _fresh_token(g, "PNAME", words)
    g.rule("start", (Lit("workflow "), name, Lit("("), pname, Lit(": "), _type_rule(g)))
    return g


def field_grammar(
    vocab: Mapping[str, Callee], taken: list[str], *, first: bool, more: bool, close: str
) -> Grammar:
    """One more input or output (`, NAME: TYPE`, a fresh name), or the closing text.

    `first`: the first output (` -> NAME: TYPE`, which cannot be skipped); `more`: whether
    another field is still allowed; `close`: `)` after the inputs, a newline after the outputs.
    """
    g = Grammar()
    words = [w for n in vocab for w in n.split()]
    pname = _fresh_token(g, "FNAME", [*words, *taken])
    field = (pname, Lit(": "), _type_rule(g))
    if first:
        g.rule("start", (Lit(" -> "), *field))
    elif more:
        g.rule("start", (Lit(", "), *field), (Lit(close),))
    else:
        g.rule("start", (Lit(close),))
    return g


def statement_grammar(
    vocab: Mapping[str, Callee],
    scope: Scope,
    unbound: Mapping[str, Type],
    *,
    remaining: int,
    indent: str = "  ",
    unused: Scope | None = None,
) -> Grammar:
    """One statement of a workflow body, or `end` once every output is bound.

    `remaining` is how many statements the bound still allows, this one included: when it
    equals the number of unbound outputs, only an output may be bound.
    """
    g = Grammar()
    b = _Builder(g, vocab)
    c = b.ctx()
    alts: list[tuple[Item, ...]] = []
    if not unbound:
        alts.append((Lit("end\n"),))
    for out, t in unbound.items():
        rhs = b.rhs(scope, t, c, plain=True, unused=unused)
        if rhs:
            rule = g.rule(f"rhs_{out}", *rhs)
            alts.append((Lit(f"{indent}{out} = "), rule, Lit("\n")))
    if remaining > len(unbound):
        taken = [*scope.names, *unbound, *(w for n in vocab for w in n.split())]
        new = _fresh_token(g, "NEW", taken)
        rhs = b.rhs(scope, None, c, plain=False, unused=unused)
        if rhs:
            rule = g.rule("rhs_any", *rhs)
            alts.append((Lit(indent), new, Lit(" = "), rule, Lit("\n")))
    g.rule("start", *alts)
    return g


def program_grammar(
    vocab: Mapping[str, Callee], uses: list[str], *, max_statements: int = 10
) -> Grammar:
    """The whole program in one grammar (for servers): `use` lines, a header, 1..N steps, `end`.
    Closed over operators, prepositions and options; references are any lowercase name."""
    g = Grammar()
    b = _Builder(g, vocab, loose=True)
    c = b.ctx()
    rhs = b.rhs(Scope(), None, c, plain=False)
    rhs.append((b.name_ref(),))
    g.rule("rhs", *rhs)
    name = _fresh_token(g, "NAME", [w for n in vocab for w in n.split()])
    step = g.rule("step", (Lit("  "), name, Lit(" = "), Ref("rhs"), Lit("\n")))
    param = g.rule("param", (name, Lit(": "), _type_rule(g)))
    params = g.rule("params", (param, Opt((Lit(", "), param, Opt((Lit(", "), param))))))
    more: tuple[Item, ...] = ()
    for _ in range(max_statements - 1):
        more = (Opt((step, *more)),)
    head = [Lit(f'use "{u}"\n') for u in uses]
    g.rule(
        "start",
        (
            *head,
            Lit("workflow "),
            name,
            Lit("("),
            params,
            Lit(") -> "),
            params,
            Lit("\n"),
            step,
            *more,
            Lit("end\n"),
        ),
    )
    return g


__all__ = [
    "KEYWORDS",
    "Group",
    "Scope",
    "field_grammar",
    "header_grammar",
    "program_grammar",
    "statement_grammar",
]
