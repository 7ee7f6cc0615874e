"""Random derivations of the generator's grammars (a stand-in for a model that may pick any
allowed continuation), for property tests of what the grammars let through."""

from __future__ import annotations

import random
import re

from treadle.generation.decoding.grammar_ir import Grammar, Group, Item, Lit, Opt, Ref, Rx, Star
from treadle.generation.decoding.scope_grammar import IDENTIFIER_RX

_NAMES = [
    "draft", "drafts", "check", "result", "answer2", "total", "plan", "x1", "end", "if", "from",
    "problem", "generate", "vote", "review", "item", "notes", "score", "final", "value",
]  # fmt: skip
_WORDS = ["Solve", "the", "problem", "step", "by", "step", "\\n", "Answer:", "check", "it"]


def _rx(rx: Rx, rng: random.Random) -> str:
    table = {
        r"[2-5]": lambda: str(rng.randint(2, 5)),
        r"[1-5]": lambda: str(rng.randint(1, 5)),
        r"0\.[0-9]|1\.0": lambda: rng.choice(["0.0", "0.7", "1.0"]),
        r"[1-9][0-9]{1,3}": lambda: str(rng.randint(10, 2048)),
        r"[0-9]{1,4}(\.[0-9]{1,2})?": lambda: rng.choice(["3", "42", "0.5", "7.25"]),
        IDENTIFIER_RX: lambda: rng.choice(['"solve"', '"is_prime"', '"f"']),
    }
    return table[rx.lark]()


def _token(g: Grammar, name: str, rng: random.Random) -> str:
    lark = g.tokens[name][0]
    if "~(" in lark:  # a fresh name: pick one the grammar does not exclude
        excluded = set(re.findall(r'"([^"]+)"', lark))
        pool = [n for n in _NAMES if n not in excluded] or ["zz_fresh"]
        return rng.choice(pool)
    if name == "CHUNK":
        return " ".join(rng.choice(_WORDS) for _ in range(rng.randint(1, 5)))
    if name == "REFNAME":
        return rng.choice(_NAMES[:6])
    raise KeyError(name)


def sample(g: Grammar, rng: random.Random, rule: str = "start", depth: int = 0) -> str:
    if rule in g.tokens:
        return _token(g, rule, rng)
    alts = g.rules[rule]
    return _seq(g, rng.choice(alts), rng, depth + 1)


def _seq(g: Grammar, items: tuple[Item, ...], rng: random.Random, depth: int) -> str:
    return "".join(_item(g, i, rng, depth) for i in items)


def _item(g: Grammar, i: Item, rng: random.Random, depth: int) -> str:
    if isinstance(i, Lit):
        return i.text
    if isinstance(i, Rx):
        return _rx(i, rng)
    if isinstance(i, Ref):
        return sample(g, rng, i.rule, depth)
    if isinstance(i, Opt):
        return _seq(g, i.items, rng, depth) if rng.random() < (0.5 if depth < 12 else 0) else ""
    if isinstance(i, Star):
        return "".join(_seq(g, i.items, rng, depth) for _ in range(rng.randint(0, 2)))
    assert isinstance(i, Group)
    return _seq(g, rng.choice(i.alts), rng, depth)
