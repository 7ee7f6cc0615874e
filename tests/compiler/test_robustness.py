"""Robustness: 100,000 broken inputs never raise anything but diagnostics.

Inputs are random text, and valid programs with tokens deleted, duplicated, swapped or the
text truncated. In process through `compile_source` (two worker processes), plus a handful of
`treadle check` runs as subprocesses to assert no traceback reaches the user.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest
from flow_ops import OPS

from treadle.compiler import CODES, CompileError, compile_source

TOTAL = int(os.environ.get("TREADLE_FUZZ_INPUTS", "100000"))
ROOT = Path(__file__).resolve().parents[2]

SEEDS = [
    'workflow f(q: text) -> a: text\n  a = generate from "Q: {q}" with temperature 0.5\nend\n',
    "workflow f(xs: list of text) -> a: json\n  n = for each x in xs: extract number from x\n"
    "  a = vote n\nend\n",
    "workflow f(q: text) -> a: text\n  r = review q for q\n  if r.approved and not false then\n"
    '    a = q\n  else if r.feedback == "" then\n    return q\n  else\n    a = r.feedback\n'
    "  end\nend\n",
    "workflow f(q: text) -> a: text\n  a = q\n  repeat up to 3 times\n    r = review a\n"
    "    a = generate from a given r.feedback\n  until r.approved or 1 < 2\nend\n",
    'use "x.flow"\n# c\nworkflow g(q: text, n: number) -> a: list of text\n'
    '  a = for each i in [1, 2.5, n]\n    t = generate from "{i}{{x}}"\n  end\nend\n',
]
_TOKEN = re.compile(r'"(?:[^"\\\n]|\\.)*"|\w+|\n|[ \t]+|#[^\n]*|->|==|!=|<=|>=|.')
ALPHABET = [
    *"abcdefghijklmnopqrstuvwxyz_0123456789 \t\n\n\"\"{}[]()=,.:#-+*/<>!\\'é",
    *["workflow ", "end", "if ", " then", "else", "repeat ", "up to ", " times", "until ",
       "for each ", " in ", "return", " with ", " from ", "use ", "->", "and", "not"],
]  # fmt: skip


def make_input(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.4:
        return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 40)))
    toks = _TOKEN.findall(rng.choice(SEEDS))
    for _ in range(rng.randint(1, 3)):
        if not toks:
            break
        i = rng.randrange(len(toks))
        op = rng.random()
        if op < 0.3:
            del toks[i]
        elif op < 0.55:
            toks.insert(i, toks[i])
        elif op < 0.8 and i + 1 < len(toks):
            toks[i], toks[i + 1] = toks[i + 1], toks[i]
        elif op < 0.9:
            toks = toks[:i]
        else:
            toks[i] = rng.choice(ALPHABET)
    return "".join(toks)


def run_chunk(args: tuple[int, int]) -> tuple[int, int, list[str]]:
    """Compile `count` inputs from `seed`; returns (inputs, rejected, failures)."""
    seed, count = args
    rng = random.Random(seed)
    rejected = 0
    failures: list[str] = []
    for _ in range(count):
        text = make_input(rng)
        try:
            compile_source(text, "fuzz.flow", operators=OPS)
        except CompileError as e:
            rejected += 1
            diags = e.diagnostics
            ok = bool(diags) and all(
                getattr(d, "code", None) in CODES and getattr(d, "line", -1) >= 0 for d in diags
            )
            if not ok and len(failures) < 5:
                failures.append(f"bad diagnostics for {text!r}: {diags!r}")
        except Exception as e:  # the property under test: nothing else escapes
            if len(failures) < 5:
                failures.append(f"{type(e).__name__}: {e} for {text!r}")
    return count, rejected, failures


@pytest.mark.slow
def test_100k_broken_inputs_only_give_diagnostics() -> None:
    chunks = 40
    per = TOTAL // chunks
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(2) as pool:
        results = pool.map(run_chunk, [(seed, per) for seed in range(chunks)])
    total = sum(r[0] for r in results)
    rejected = sum(r[1] for r in results)
    failures = [f for r in results for f in r[2]]
    assert total >= TOTAL - chunks
    assert failures == []
    assert rejected > total * 0.5  # the inputs really are broken, mostly


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from treadle.cli import main; main()", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )


def test_check_cli_never_prints_a_traceback(tmp_path: Path) -> None:
    rng = random.Random(7)
    files = []
    for i in range(40):
        f = tmp_path / f"broken{i}.flow"
        f.write_text(make_input(rng), encoding="utf-8")
        files.append(str(f))
    for fmt in ("text", "json"):
        r = _cli("check", *files, "--format", fmt)
        assert "Traceback" not in r.stderr + r.stdout, r.stderr
        assert r.returncode == 1, r.stderr
    (tmp_path / "binary.flow").write_bytes(b"\xff\xfe\x00workflow")
    for args in (["check", str(tmp_path / "binary.flow")], ["check", str(tmp_path / "nope.flow")]):
        r = _cli(*args)
        assert "Traceback" not in r.stderr + r.stdout, r.stderr
        assert r.returncode == 2, r.stderr
