"""Scorers against hand-checked cases, and the properties the issue names (hypothesis)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from treadle.errors import ModelError
from treadle.eval.datasets import Row
from treadle.eval.options import RunConfig
from treadle.eval.report import mean_interval, wilson_interval
from treadle.eval.runner import RowRunner
from treadle.eval.scorers import (
    Score,
    ScorerError,
    f1_score,
    last_boxed,
    last_number,
    normalize,
    resolve_scorer,
)
from treadle.eval.stats import pass_at_k, t_quantile
from treadle.runtime.models.scripted import ScriptedBackend
from treadle.runtime.session import Session

ROOT = Path(__file__).resolve().parents[2]


def score(spec: str, output: Any, target: Any, row: Row | None = None, **options: Any) -> float:
    async def go() -> Score:
        async with Session(model="scripted:[]", cache=False, sandbox="process") as session:
            scorer = resolve_scorer(spec, **options)
            return await scorer.score(
                output, target, row or Row(id="1"), RowRunner(session, RunConfig())
            )

    return asyncio.run(go()).value


# ---------------------------------------------------------------- hand-checked cases


@pytest.mark.parametrize(
    ("output", "target", "expected"),
    [
        ("Paris", "paris", 1.0),
        ("The Paris.", "paris", 1.0),  # articles and punctuation go
        ("Paris, France", "Paris", 0.0),
        (42.0, "42", 1.0),  # a float that is an integer prints without .0
        ("Lyon", ["Paris", "Lyon"], 1.0),  # a list target: any of them
    ],
)
def test_exact(output: Any, target: Any, expected: float) -> None:
    assert score("exact", output, target) == expected


@pytest.mark.parametrize(
    ("output", "target", "expected"),
    [
        ("So the answer is 1,234.", 1234, 1.0),  # thousands commas (AFlow's GSM8K rule)
        ("3 apples then 7", "7", 1.0),  # the last number counts
        ("7 apples then 3", "7", 0.0),
        (18.0000000001, 18, 1.0),  # within 1e-6
        (18.01, 18, 0.0),
        ("no number here", 5, 0.0),
        ("#### 72", "Natalia sold 48/2 = 24 clips in May.\n#### 72", 1.0),  # a GSM8K target
    ],
)
def test_numeric(output: Any, target: Any, expected: float) -> None:
    assert score("numeric", output, target) == expected


def test_numeric_relative_tolerance() -> None:
    assert score("numeric", 101, 100) == 0.0
    assert score("numeric", 101, 100, rel_tol=0.02) == 1.0


def test_f1_hand_checked() -> None:
    # prediction "the cat sat" → [cat, sat]; truth "a cat sat down" → [cat, sat, down]
    # precision 2/2, recall 2/3 → F1 = 0.8
    assert f1_score("the cat sat", "a cat sat down") == pytest.approx(0.8)
    assert score("f1", "blue whale", ["the blue whale", "whale"]) == 1.0
    assert score("f1", "red", "blue") == 0.0


def test_contains_and_regex() -> None:
    assert score("contains", "It is the Pacific Ocean, I think", "pacific ocean") == 1.0
    assert score("contains", "Atlantic", "Pacific") == 0.0
    assert score("regex", "Answer: 42", r"Answer:\s*\d+") == 1.0
    assert score("regex", "order A-17 shipped", None, pattern=r"[A-Z]-\d+") == 1.0
    assert score("regex", "order shipped", None, pattern=r"[A-Z]-\d+") == 0.0
    with pytest.raises(ScorerError, match="invalid"):
        resolve_scorer("regex", pattern="(")


def test_math() -> None:
    assert last_boxed(r"so \boxed{\frac{1}{2}} done") == r"\frac{1}{2}"
    assert score("math", r"The answer is \boxed{\frac{1}{2}}", "0.5") == 1.0
    assert score("math", r"\boxed{\frac{2}{4}}", r"\frac{1}{2}") == 1.0
    assert score("math", r"\boxed{2\sqrt{2}}", r"\sqrt{8}") == 1.0  # symbolic, via sympy
    assert score("math", r"\boxed{x^2 + 2x + 1}", r"(x+1)^2") == 1.0  # implicit products
    assert score("math", r"\boxed{x^2 + 1}", r"(x+1)^2") == 0.0
    assert score("math", r"\boxed{3}", "4") == 0.0
    assert score("math", "Answer: 1,000", "1000") == 1.0


def test_json_schema(tmp_path: Path) -> None:
    schema = ROOT / "examples" / "data" / "person.schema.json"
    good = {"name": "Ada", "age": 36, "city": "London"}
    assert score("json_schema", good, None, schema=str(schema)) == 1.0
    assert score("json_schema", '```json\n{"name": "Ada", "age": 36, "city": "L"}\n```', None,
                 schema=str(schema)) == 1.0  # fmt: skip
    assert score("json_schema", {"name": "Ada", "age": "36", "city": "L"}, None,
                 schema=str(schema)) == 0.0  # fmt: skip
    assert score("json_schema", "not json", None, schema=str(schema)) == 0.0
    # the row's own schema column
    row = Row(id="1", columns={"schema": {"type": "array"}})
    assert score("json_schema", [1, 2], None, row) == 1.0
    assert score("json_schema", good, good, schema=str(schema), match_target=True) == 1.0
    assert score("json_schema", good, {**good, "age": 37}, schema=str(schema),
                 match_target=True) == 0.0  # fmt: skip


def test_python_scorer(tmp_path: Path) -> None:
    module = tmp_path / "my_scores.py"
    module.write_text(
        "def half(output, target):\n    return 0.5\n\n"
        "async def same(output, target, row):\n    return output == target\n\n"
        "def bad(output):\n    return 1\n"
    )
    assert score(f"{module}:half", "a", "b") == 0.5
    assert score(f"{module}:same", "a", "a") == 1.0
    with pytest.raises(ScorerError, match="must take"):
        resolve_scorer(f"{module}:bad")
    with pytest.raises(ScorerError, match="no function"):
        resolve_scorer(f"{module}:nope")
    with pytest.raises(ScorerError, match="Cannot import"):
        resolve_scorer("no_such_module_xyz:f")


def test_flow_scorer_runs_on_the_evaluation_model() -> None:
    flow = str(ROOT / "examples" / "scorers" / "same_answer.flow")

    async def go(output: str, target: str) -> tuple[float, int]:
        backend = ScriptedBackend({"mean the same": "yes"})
        async with Session(model=backend, cache=False, sandbox="process") as session:
            s = await resolve_scorer(flow).score(
                output, target, Row(id="1"), RowRunner(session, RunConfig())
            )
        return s.value, len(backend.calls)

    assert asyncio.run(go("Paris", "Paris")) == (1.0, 0)  # identical: no model call
    assert asyncio.run(go("the Pacific", "Pacific Ocean")) == (1.0, 1)


def test_flow_scorer_with_the_wrong_signature(tmp_path: Path) -> None:
    bad = tmp_path / "bad.flow"
    bad.write_text("workflow grade(answer: text) -> score: number\n  score = 1\nend\n")
    with pytest.raises(ScorerError, match="wrong signature"):
        resolve_scorer(str(bad))
    text_out = tmp_path / "text_out.flow"
    text_out.write_text(
        "workflow grade(output: text, target: text) -> score: text\n  score = output\nend\n"
    )
    with pytest.raises(ScorerError, match="returns `score: number`"):
        resolve_scorer(str(text_out))


def test_judge_reads_the_grade() -> None:
    async def go(reply: str) -> float:
        backend = ScriptedBackend([reply])
        async with Session(model=backend, cache=False, sandbox="process") as session:
            s = await resolve_scorer("judge").score(
                "Paris", "Paris", Row(id="1"), RowRunner(session, RunConfig())
            )
        assert "Reference answer:\nParis" in backend.prompts[0]
        return s.value

    assert asyncio.run(go("GRADE: C")) == 1.0
    assert asyncio.run(go("grade: p")) == 0.5
    assert asyncio.run(go("GRADE: I")) == 0.0
    assert asyncio.run(go("SCORE: 7")) == 0.7
    with pytest.raises(ModelError, match="no grade"):  # no verdict: an error, never a 0
        asyncio.run(go("no idea"))


def test_unknown_scorer_suggests_a_name() -> None:
    with pytest.raises(ScorerError, match="Did you mean 'numeric'"):
        resolve_scorer("numerc")


def test_intervals_hand_checked() -> None:
    # Wilson for 8/10 (z = 1.95996): [0.4902, 0.9433] (standard tables)
    lo, hi = wilson_interval(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-4) and hi == pytest.approx(0.9433, abs=1e-4)
    assert wilson_interval(0, 10)[0] == 0.0
    # Student t quantiles (tables): t(0.975, 4) = 2.7764, t(0.975, 29) = 2.0452
    assert t_quantile(0.975, 4) == pytest.approx(2.7764, abs=1e-4)
    assert t_quantile(0.975, 29) == pytest.approx(2.0452, abs=1e-4)
    # mean 0.5, sd 0.1 over 5 values: 0.5 ± 2.7764 * 0.1 / sqrt(5)
    lo, hi = mean_interval([0.4, 0.45, 0.5, 0.55, 0.6])
    half = 2.7764 * 0.0790569 / 5**0.5
    assert (lo, hi) == (pytest.approx(0.5 - half, abs=1e-4), pytest.approx(0.5 + half, abs=1e-4))


def test_pass_at_k_unbiased_estimator() -> None:
    assert pass_at_k(5, 0, 1) == 0.0
    assert pass_at_k(5, 5, 3) == 1.0
    assert pass_at_k(5, 2, 1) == pytest.approx(0.4)  # c/n for k=1
    assert pass_at_k(5, 2, 2) == pytest.approx(1 - 3 / 10)  # 1 - C(3,2)/C(5,2)


# ---------------------------------------------------------------- properties

words = st.lists(st.sampled_from(["a", "the", "cat", "Sat", "on", "mat", "42", "blue!", "x"]),
                 max_size=8).map(" ".join)  # fmt: skip


@given(words, words)
@settings(max_examples=300, deadline=None)
def test_f1_is_symmetric_and_in_unit_interval(a: str, b: str) -> None:
    x, y = f1_score(a, b), f1_score(b, a)
    assert x == pytest.approx(y)
    assert 0.0 <= x <= 1.0


@given(words, words)
@settings(max_examples=300, deadline=None)
def test_exact_match_implies_f1_of_one(a: str, b: str) -> None:
    if normalize(a) == normalize(b):
        assert f1_score(a, b) == 1.0


@given(st.integers(min_value=1, max_value=500).flatmap(
    lambda n: st.tuples(st.integers(min_value=0, max_value=n), st.just(n))))  # fmt: skip
@settings(max_examples=300, deadline=None)
def test_wilson_contains_the_proportion(kn: tuple[int, int]) -> None:
    k, n = kn
    lo, hi = wilson_interval(k, n)
    assert 0.0 <= lo <= k / n <= hi <= 1.0


@given(st.text(max_size=30), st.floats(allow_nan=False, allow_infinity=False, width=32))
@settings(max_examples=200, deadline=None)
def test_last_number_reads_the_number_it_is_given(prefix: str, x: float) -> None:
    assert last_number(x) == float(x)
    text = prefix.replace("-", " ").replace(".", " ") + f" {abs(int(x))}"
    assert last_number(text) == float(abs(int(x)))
