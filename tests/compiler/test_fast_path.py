"""The parser's fast path (`parse.fast_lalr.fast_parse`, which drives Lark's LALR tables itself)
against Lark's own parser: both accept the same texts and build equal trees, positions included.

Programs come from the round-trip test's random trees, printed by the formatter and then
re-spaced (tabs, runs of spaces, blank lines, comments, CRLF) so positions vary; mutants delete,
repeat, swap or replace tokens and insert stray characters. A fixed-seed sweep does the same to
every example under examples/.
"""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import lark
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lark.exceptions import UnexpectedInput
from test_roundtrip import modules

from treadle.compiler import ast as A
from treadle.compiler import parsing
from treadle.compiler.formatter import format_module
from treadle.compiler.parsing import _lark_internals, fast_lalr, fast_tables, lalr

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").rglob("*.flow"))
TOKEN = re.compile(
    r'"""(?:"{0,2}(?:[^"\\]|\\[\s\S]))*"""|"(?:[^"\\\n]|\\.)*"'
    r"|[A-Za-z_]\w*|\d+(?:\.\d+)?|->|[=!<>]=|\n|[ \t]+|#[^\n]*|."
)
WORDS = ["end", "if", "then", "else", "for", "each", "in", "with", "until", "repeat", "return",
         "workflow", "use", "not", "is", "(", ")", "[", "]", ",", ":", "=", "==", "->", ".", "1",
         '"s"', "x", "\n", "#c", "\t"]  # fmt: skip
STRAY = ["'", "$", "@", '"', "{", "\\", "\r", "é", "\x00", "0.", "..", "-"]


def both(text: str) -> tuple[Any, Any]:
    """(fast path's tree or None, Lark's tree or None) for one text."""
    fast = fast_lalr.fast_parse(text)
    try:
        slow = lalr.lark_parser().parse(text)
    except UnexpectedInput:
        slow = None
    return fast, slow


def agree(text: str) -> bool:
    """Both reject the text, or both accept it with equal trees (spans compared too); returns
    whether it was accepted."""
    fast, slow = both(text)
    assert (fast is None) == (slow is None), (text, fast, slow)
    if fast is not None:
        assert type(fast) is A.Module and fast == slow, text
    return fast is not None


def respace(text: str, rnd: random.Random) -> str:
    """The same program spaced otherwise: what the grammar ignores (spaces, tabs, blank lines,
    comments, CRLF line ends) varied, so every position moves."""
    out = []
    for tok in TOKEN.findall(text):
        if tok == "\n":
            nl = "\r\n" if rnd.random() < 0.2 else "\n"
            out.append(rnd.choice(["", "", "", " ", "  # note", "\t#"]) + nl)
            for _ in range(rnd.choice([0, 0, 0, 1, 2])):
                out.append(rnd.choice(["", " ", "\t", "  # x", "#"]) + nl)
            out.append(rnd.choice(["", " ", "\t", "    "]))
        elif tok.isspace():
            out.append(rnd.choice([" ", "  ", "\t", " \t "]))
        else:
            out.append(tok)
            if rnd.random() < 0.05:
                out.append(rnd.choice([" ", "\t"]))
    return "".join(out)


def mutate(text: str, rnd: random.Random) -> str:
    toks = TOKEN.findall(text)
    for _ in range(rnd.randint(1, 3)):
        if not toks:
            break
        i = rnd.randrange(len(toks))
        kind = rnd.randrange(5)
        if kind == 0:
            del toks[i]
        elif kind == 1:
            toks.insert(i, toks[i])
        elif kind == 2 and i + 1 < len(toks):
            toks[i], toks[i + 1] = toks[i + 1], toks[i]
        elif kind == 3:
            toks[i] = rnd.choice(WORDS)
        else:
            toks.insert(i, rnd.choice(STRAY))
    return "".join(toks)


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(modules, st.randoms(use_true_random=False))
def test_random_programs_give_equal_trees(module: A.Module, rnd: random.Random) -> None:
    text = format_module(module) or "\n"
    assert agree(text), text
    assert agree(respace(text, rnd)), text


@SETTINGS
@given(modules, st.randoms(use_true_random=False))
def test_mutated_programs_are_accepted_by_both_or_neither(
    module: A.Module, rnd: random.Random
) -> None:
    agree(mutate(respace(format_module(module), rnd), rnd) + "\n")


def test_examples_and_their_mutants_agree() -> None:
    """A fixed sweep over the real examples: 40 re-spacings and 60 mutants of each."""
    rnd = random.Random(9)
    accepted = rejected = 0
    for path in EXAMPLES:
        text = path.read_text(encoding="utf-8")
        assert agree(text), path
        for _ in range(40):
            assert agree(respace(text, rnd)), path
        for _ in range(60):
            if agree(mutate(text, rnd)):
                accepted += 1
            else:
                rejected += 1
    # the sweep exercises both outcomes, so neither side of `agree` goes untested
    assert accepted > 50 and rejected > 200, (accepted, rejected)


def test_the_fast_path_is_taken() -> None:
    """Equal trees prove nothing if the fast path always gave up: it parses every example."""
    for path in EXAMPLES:
        assert fast_lalr.fast_parse(path.read_text(encoding="utf-8")) is not None, path


def test_the_lark_version_is_the_one_tested() -> None:
    """pyproject.toml pins the range these tests cover (`_lark_internals` reads Lark's
    internals for the fast path and recovery)."""
    major, minor = (int(x) for x in lark.__version__.split(".")[:2])
    assert (major, minor) == _lark_internals.TESTED_LARK, lark.__version__
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert '"lark>=1.3,<1.4"' in pyproject and _lark_internals.TESTED_LARK == (1, 3)


def test_a_lark_without_the_fast_paths_internals_falls_back(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A Lark whose internals differ (here: scanners that keep their regexps under another
    name, as a future Lark might) cannot give the fast path its tables: it must give up and
    let Lark parse, never raise AttributeError. No cached tables are read (an empty cache)."""
    from lark import load_grammar
    from lark.lexer import Scanner

    init = Scanner.__init__

    def renamed(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        self._regexps = self.__dict__.pop("_mres")

    def regexps(self: Any) -> Any:  # scanners built before the patch keep the old name
        return self.__dict__.get("_regexps") or self._mres

    def match(self: Any, text: Any, pos: int) -> Any:
        for mre in regexps(self):
            m = mre.match(text.text, pos, text.end)
            if m:
                return m.group(0), m.lastgroup
        return None

    def fullmatch(self: Any, text: str) -> str | None:
        for mre in regexps(self):
            m = mre.fullmatch(text)
            if m:
                return m.lastgroup
        return None

    monkeypatch.setenv("TREADLE_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(Scanner, "__init__", renamed)
    monkeypatch.setattr(Scanner, "match", match)
    monkeypatch.setattr(Scanner, "fullmatch", fullmatch)
    fast_tables.fast_tables.cache_clear()
    lalr.lark_parser.cache_clear()
    try:
        text = (ROOT / "examples" / "solve_math.flow").read_text(encoding="utf-8")
        assert fast_lalr.fast_parse(text) is None
        assert not list(tmp_path.rglob("lalr-*"))  # nothing half-derived is cached
        module, diags = parsing.parse(text)
        assert diags == [] and module.workflows[0].name == "solve_math"
        assert [d.code for d in parsing.parse(text.replace(" = ", " = = ", 1))[1]] == ["E001"]
    finally:
        fast_tables.fast_tables.cache_clear()
        lalr.lark_parser.cache_clear()
        # Lark keeps its grammar-of-grammars parser for the process: one whose scanner the
        # patch built must not outlive the patch
        vars(load_grammar._get_parser).pop("cache", None)


FRESH_PARSE = (
    "import sys; from treadle.compiler.parsing import fast_lalr, lalr, parse; "
    "t = open(sys.argv[1], encoding='utf-8').read(); m = fast_lalr.fast_parse(t); "
    "print(m is not None, lalr.lark_parser.cache_info().currsize, "
    "parse(t.replace(' = ', ' = = ', 1))[1][0].code)"
)


def _fresh_parse(cache: Path) -> str:
    r = subprocess.run(
        [sys.executable, "-c", FRESH_PARSE, str(ROOT / "examples" / "solve_math.flow")],
        capture_output=True,
        text=True,
        env={**os.environ, "TREADLE_CACHE_DIR": str(cache)},
        cwd=ROOT,
    )
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_a_fresh_process_parses_from_the_cached_tables_without_building_lark(
    tmp_path: Path,
) -> None:
    """The first process derives the fast path's tables from Lark and caches them; later
    ones parse a good file from the cache alone (no Lark object: `treadle check` starts
    fast) and still build Lark for a bad file's messages. A damaged entry is derived again."""
    assert _fresh_parse(tmp_path) == "True 1 E001"
    (entry,) = (tmp_path / "compiler").glob("lalr-*.pickle")
    assert _fresh_parse(tmp_path) == "True 0 E001"
    for damage in (b"", b"not a pickle", entry.read_bytes()[:100]):
        entry.write_bytes(damage)
        assert _fresh_parse(tmp_path) == "True 1 E001"
        assert len(entry.read_bytes()) > 1000  # written whole again


@pytest.mark.parametrize("module", ["transformer.py", "_lark_internals.py"])
def test_the_cached_tables_are_keyed_by_the_callbacks_source(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, module: str
) -> None:
    """The cached callbacks name functions of the transformer and of `_lark_internals` (the
    default tree builder): an edit to either (or to the grammar, or Lark) names another entry
    instead of reading a stale one."""
    monkeypatch.setenv("TREADLE_CACHE_DIR", str(tmp_path))
    real = Path.read_bytes
    names = []
    for edit in (b"", b"\n# edited"):

        def read(self: Path, edit: bytes = edit) -> bytes:
            data = real(self)
            return data + edit if self.name == module and self.parent.name == "parsing" else data

        monkeypatch.setattr(Path, "read_bytes", read)
        fast_tables.fast_tables.cache_clear()
        assert fast_tables.fast_tables() is not None
        names.append({p.name for p in (tmp_path / "compiler").glob("lalr-*.pickle")})
    fast_tables.fast_tables.cache_clear()
    assert len(names[0]) == 1 and len(names[1]) == 2


TWO_ERRORS = "workflow w(x: text) -> y: text\n  a = = x\n  b = x +\n  y = x\nend\n"


def test_recovery_reports_every_error() -> None:
    """With Lark's internals as pinned, recovery goes on past the first error."""
    diags = parsing.parse(TWO_ERRORS)[1]
    assert [(d.code, d.line) for d in diags] == [("E001", 2), ("E001", 3)]


def test_a_lark_without_the_recoverys_internals_still_reports_the_first_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An interactive parser that keeps its lexer under another name (as a future Lark might)
    cannot be fed line by line: recovery gives up and reports the error Lark's own parse
    stopped at, the same one recovery reports first, instead of raising AttributeError."""
    from lark.parsers.lalr_interactive_parser import InteractiveParser

    first = parsing.parse(TWO_ERRORS)[1][0]
    init = InteractiveParser.__init__

    def renamed(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        self._lexer = self.__dict__.pop("lexer_thread")

    monkeypatch.setattr(InteractiveParser, "__init__", renamed)
    module, diags = parsing.parse(TWO_ERRORS)
    assert diags == [first] and module.workflows == []
