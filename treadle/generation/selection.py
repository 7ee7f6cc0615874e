"""Sparse selection: the few capabilities and examples that fit a task.

A small model reads a short prompt best, and the grammar offers only what the prompt shows, so a
library of dozens of workflows is cut to the few (default 3) whose name, signature and doc
comment match the task, by BM25 (`bm25s`) over those texts. Names are split into words
(`verify_number` → `verify number`) so they count as text. Anything scoring 0 is left out: an
unrelated capability in the prompt is noise the model copies.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from treadle.generation.decoding.vocabulary import Capability
from treadle.generation.example_bank import EXAMPLES, Example

DEFAULT_CAPABILITIES = 3
DEFAULT_EXAMPLES = 2


def _words(text: str) -> str:
    text = re.sub(r"([a-z])([A-Z])", r"\1 \2", text)
    return re.sub(r"[_\W]+", " ", text).lower()


def capability_text(c: Capability) -> str:
    ins = " ".join(f"{n} {t}" for n, t in c.inputs)
    outs = " ".join(f"{n} {t}" for n, t in c.outputs)
    return _words(f"{c.name} {c.name} {c.doc} {ins} {outs}")


def bm25_rank(query: str, docs: Sequence[str], k: int) -> list[tuple[int, float]]:
    """Indices of the `k` best documents for `query` with their BM25 scores (> 0 only)."""
    if not docs or k <= 0:
        return []
    import bm25s

    retriever = bm25s.BM25()
    retriever.index(
        bm25s.tokenize(list(docs), stopwords="en", show_progress=False), show_progress=False
    )
    q = bm25s.tokenize([_words(query)], stopwords="en", show_progress=False)
    if not any(len(ids) for ids in q.ids):
        return []
    k = min(k, len(docs))
    idx, scores = retriever.retrieve(q, k=k, show_progress=False)
    return [(int(i), float(s)) for i, s in zip(idx[0], scores[0], strict=True) if s > 0]


def select_capabilities(
    task: str, library: Sequence[Capability], k: int = DEFAULT_CAPABILITIES
) -> list[Capability]:
    """At most `k` library workflows that fit the task, best first."""
    ranked = bm25_rank(task, [capability_text(c) for c in library], k)
    return [library[i] for i, _ in ranked]


def select_examples(
    task: str, k: int = DEFAULT_EXAMPLES, bank: Sequence[Example] = EXAMPLES
) -> list[Example]:
    """The `k` worked examples nearest the task (the first ones when nothing matches)."""
    ranked = bm25_rank(task, [_words(f"{e.task} {' '.join(e.tags)}") for e in bank], k)
    chosen = [bank[i] for i, _ in ranked]
    for e in bank:
        if len(chosen) >= k:
            break
        if e not in chosen:
            chosen.append(e)
    return chosen
