"""The fast path's tables (the analogue of Lark's `lalr_analysis`): Lark's LALR table, rule
callbacks and contextual lexers flattened to plain data (`_lark_internals.flatten_tables`),
cached across processes, with each state's lexer compiled on first use.

A fresh process reads them from the build cache (`build_cache`), so a file that parses never
builds a Lark object at all: only a syntax error does, for its messages. The entry is keyed by
the grammar, Lark's version and the source of the modules whose functions the pickled
callbacks name (the transformer's methods, `_lark_internals`' tree builder), so an edit to
either names another entry instead of reading a stale one.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from pathlib import Path
from typing import cast

from treadle.compiler.build_cache import cache_dir, digest, write_atomic
from treadle.compiler.parsing import _lark_internals, transformer
from treadle.compiler.parsing._lark_internals import Actions, LexerSpec, Tables, flatten_tables
from treadle.compiler.parsing.lalr import lark_parser
from treadle.grammar import grammar_text

#: a lexer ready to run: (regexps, ignored, multi-line, terminal -> keyword lookup)
Lexer = tuple[
    list[re.Pattern[str]], frozenset[str], frozenset[str], dict[str, Callable[[str], str | None]]
]
#: the tables, then the lexers compiled so far by state and by index (filled as states are
#: reached)
Fast = tuple[int, int, Actions, dict[int, int], list[LexerSpec], dict[int, Lexer], dict[int, Lexer]]

#: bumped when what `flatten_tables` derives changes shape
_TABLES_FORMAT = 2
#: the modules defining the functions the pickled tables refer to by name
_CALLBACK_MODULES = (transformer, _lark_internals)


@functools.cache
def fast_tables() -> Fast | None:
    """The tables for `fast_lalr.fast_parse`; None if the parser is not built the way the fast
    path assumes (then Lark parses)."""
    import pickle

    import lark

    folder = cache_dir()
    path = None
    if folder is not None:
        sources = [Path(m.__file__ or "").read_bytes() for m in _CALLBACK_MODULES]
        key = digest(grammar_text(), lark.__version__, *sources)
        path = folder / f"lalr-{_TABLES_FORMAT}-{key}.pickle"
        try:
            tables = pickle.loads(path.read_bytes())
        except Exception:  # missing, or unreadable: derive it again
            pass
        else:
            if isinstance(tables, tuple) and len(tables) == 5:
                return (*cast(Tables, tables), {}, {})
    derived = flatten_tables(lark_parser())
    if derived is None:
        return None
    if path is not None:
        write_atomic(path, pickle.dumps(derived, protocol=pickle.HIGHEST_PROTOCOL))
    return (*derived, {}, {})


def state_lexer(tables: Fast, state: int) -> Lexer:
    """A state's lexer, compiled on first use (most never run in a given process); states
    that share a lexer share its compiled form."""
    i = tables[3][state]
    by_state, by_index = tables[5], tables[6]
    lexer = by_index.get(i)
    if lexer is None:
        regexps, ignore, multiline, keywords = tables[4][i]
        lexer = by_index[i] = (
            [re.compile(p, f) for p, f in regexps],
            ignore,
            multiline,
            {t: _keyword_lookup([re.compile(p, f) for p, f in k]) for t, k in keywords.items()},
        )
    by_state[state] = lexer
    return lexer


def _keyword_lookup(mres: list[re.Pattern[str]]) -> Callable[[str], str | None]:
    """The keyword terminal a matched text spells, or None (Lark's `Scanner.fullmatch`)."""

    @functools.cache
    def lookup(text: str) -> str | None:
        for mre in mres:
            m = mre.fullmatch(text)
            if m is not None:
                return m.lastgroup
        return None

    return lookup
