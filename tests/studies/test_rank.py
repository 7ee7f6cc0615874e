"""Calibrated ranking (SCALE): the α rule around τ, the strict self-prediction parser, and a
whole `rank --verify` on a simulated model whose per-flow accuracy is known."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from treadle.runtime.cache import ModelCache
from treadle.runtime.models.base import Message
from treadle.runtime.models.scripted import ScriptedBackend
from treadle.runtime.session import Session
from treadle.studies.ranking import (
    PredictionError,
    RankSettings,
    alpha_for,
    calibrated,
    parse_probability,
    pearson,
    rank,
    spearman,
)
from treadle.studies.stratify import stratified_mean

# ---------------------------------------------------------------- α


def test_alpha_at_and_around_tau() -> None:
    kw = {"alpha": 0.5, "tau": 0.2, "alpha_max": 0.9}
    assert alpha_for(0.5, 0.5, **kw) == 0.5  # agreement
    assert alpha_for(0.7, 0.5, **kw) == pytest.approx(0.5)  # exactly τ apart: not raised
    assert alpha_for(0.5, 0.3, **kw) == pytest.approx(0.5)
    just_above = alpha_for(0.71, 0.5, **kw)
    assert 0.5 < just_above < 0.55  # continuous at τ
    assert alpha_for(0.74, 0.5, **kw) == pytest.approx(0.5 * 0.24 / 0.2)
    assert alpha_for(1.0, 0.0, **kw) == 0.9  # capped
    assert alpha_for(None, 0.3, **kw) == 1.0  # no prediction: the measured rows alone
    assert calibrated(0.8, 0.4, 0.5) == pytest.approx(0.6)
    assert calibrated(None, 0.4, 1.0) == 0.4


@given(st.floats(0, 1), st.floats(0, 1), st.floats(0.01, 0.5), st.floats(0, 1), st.floats(0, 1))
def test_alpha_is_monotone_capped_and_score_between(
    p: float, f: float, tau: float, a0: float, amax: float
) -> None:
    a0, amax = min(a0, amax), max(a0, amax)
    a = alpha_for(p, f, alpha=a0, tau=tau, alpha_max=amax)
    assert a0 <= a <= amax
    wider = alpha_for(min(1.0, p + 0.1) if p >= f else max(0.0, p - 0.1), f, alpha=a0, tau=tau,
                      alpha_max=amax)  # fmt: skip
    assert wider >= a - 1e-12
    s = calibrated(p, f, a)
    assert min(p, f) - 1e-12 <= s <= max(p, f) + 1e-12


# ---------------------------------------------------------------- the parser


@pytest.mark.parametrize(
    ("reply", "value"),
    [("0.7", 0.7), (" 0.35\n", 0.35), (".5", 0.5), ("1", 1.0), ("0", 0.0), ("70%", 0.7),
     ("0.8.", 0.8), ('{"probability": 0.25}', 0.25), ('```json\n{"probability": 1}\n```', 1.0)],
)  # fmt: skip
def test_parser_reads_a_bare_probability(reply: str, value: float) -> None:
    assert parse_probability(reply) == pytest.approx(value)


@pytest.mark.parametrize(
    "reply",
    ["", "   ", "maybe", "I think 0.7", "0.7 or 0.8", "1.5", "-0.2", "150%", "0,7", "seventy",
     '{"probability": "high"}', '{"p": 0.5}', '{"probability": 0.5, "why": "x"}', "{0.5}",
     "0.5 because it is short", "nan", "0.5\n0.6", '{"probability": true}'],
)  # fmt: skip
def test_parser_rejects_everything_else(reply: str) -> None:
    with pytest.raises(PredictionError):
        parse_probability(reply)


def test_correlations() -> None:
    assert pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert spearman([1, 2, 3], [1, 4, 9]) == pytest.approx(1.0)
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert pearson([1, 1], [1, 2]) is None


# ---------------------------------------------------------------- a whole ranking

ACCURACY = {"V1": 0.8, "V2": 0.4, "V3": 0.9, "V4": 0.5, "V5": 0.2}
PREDICTION = {"V3": "0.85", "V4": "0.3", "V5": "probably quite well"}
FILLER = " ".join(["Think about every part of the question carefully."] * 12)
ROWS = [{"id": f"r{i:02d}", "q": f"row {i}", "target": "yes"} for i in range(20)]


def simulated(messages: list[Message]) -> str:
    """Flow Vk answers rows 0 .. 20·accuracy(Vk) − 1 right; the self-prediction is fixed per
    flow (V5's reply is unreadable)."""
    prompt = messages[-1].content
    if prompt.startswith("You predict"):
        new = prompt.split("The new workflow:", 1)[1]
        return PREDICTION[re.search(r"V\d", new).group(0)]  # type: ignore[union-attr]
    m = re.match(r"(V\d): row (\d+)", prompt)
    assert m, prompt
    return "yes" if int(m.group(2)) < 20 * ACCURACY[m.group(1)] else "no"


async def test_rank_verify_on_a_simulated_model(tmp_path: Path) -> None:
    paths = []
    for k in ACCURACY:
        p = tmp_path / f"{k}.flow"
        # a long instruction: a row costs what a real workflow's row costs next to a prediction
        p.write_text(
            "workflow f(q: text) -> answer: text\n"
            f'  answer = generate from "{k}: {{q}}. {FILLER}"\nend\n'
        )
        paths.append(p)
    settings = RankSettings(few_ratio=0.25, warmup=2, verify=True, coverage=2)
    async with Session(model=ScriptedBackend(simulated), cache=ModelCache(tmp_path / "c")) as s:
        rep = await rank(
            paths, ROWS, settings=settings, session=s, report=tmp_path / "rank.json",
            work_dir=tmp_path / "w",
        )  # fmt: skip
    # warm-ups: rows 0-7 solved by both, 8-15 by V1 only, 16-19 by neither → strata 8/8/4
    assert rep.strata == {"0": 8, "1": 8, "2": 4}
    assert len(rep.few_ids) == 5
    by = {Path(f.path).stem: f for f in rep.flows}
    assert by["V1"].warmup and by["V1"].score == pytest.approx(0.8)
    row_strata = {f"r{i:02d}": 0 if i < 8 else 1 if i < 16 else 2 for i in range(20)}
    for k in ("V3", "V4", "V5"):
        f = by[k]
        truth = {i: 1.0 if int(i[1:]) < 20 * ACCURACY[k] else 0.0 for i in rep.few_ids}
        assert f.s_few == pytest.approx(stratified_mean(truth, row_strata))
        assert f.full == pytest.approx(ACCURACY[k])
        assert f.few_rows == 5
    assert by["V3"].s_pred == 0.85 and by["V3"].error is None
    assert by["V3"].score == pytest.approx(calibrated(0.85, by["V3"].s_few, by["V3"].alpha))
    # an unreadable prediction is an error in the report, never a silent 0.5
    assert by["V5"].s_pred is None and by["V5"].alpha == 1.0
    assert by["V5"].error and "unreadable" in by["V5"].error
    assert by["V5"].score == by["V5"].s_few
    assert Path(rep.flows[0].path).stem in ("V3", "V1")
    assert rep.tokens_full_measured and rep.tokens_spent < rep.tokens_full
    assert rep.saving == pytest.approx(1 - rep.tokens_spent / rep.tokens_full)
    # the agreement figures, computed here independently from the flows' own numbers
    import statistics

    pairs = [(f.score, f.full) for f in rep.flows if not f.warmup]
    xs, ys = [float(a) for a, _ in pairs], [float(b) for _, b in pairs]  # type: ignore[arg-type]
    assert rep.pearson == pytest.approx(statistics.correlation(xs, ys))

    def ranks(v: list[float]) -> list[float]:  # average ranks for ties
        return [sum(1 for w in v if w < x) + (sum(1 for w in v if w == x) + 1) / 2 for x in v]

    assert rep.spearman == pytest.approx(statistics.correlation(ranks(xs), ranks(ys)))
    assert rep.mae == pytest.approx(sum(abs(a - b) for a, b in zip(xs, ys, strict=True)) / len(xs))
    assert rep.coverage is not None and rep.coverage.k == 2
    # V3 solves rows 0-17, V1 rows 0-15: the union is V3's 90%
    assert rep.coverage.union == pytest.approx(0.9) == rep.coverage.best_share
    data = json.loads((tmp_path / "rank.json").read_text())
    for key in ("flows", "tokens_spent", "tokens_full", "saving", "pearson", "spearman", "mae"):
        assert key in data
    for key in ("path", "s_pred", "s_few", "alpha", "score", "rank", "tokens"):
        assert key in data["flows"][0]


def test_coverage_of_finished_reports() -> None:
    from treadle.eval.report import EvalReport, RowReport
    from treadle.studies.ranking import coverage_of_reports

    def report(name: str, solved: set[int]) -> EvalReport:
        rows = [RowReport(id=f"r{i}", score=1.0 if i in solved else 0.0) for i in range(4)]
        return EvalReport(flow=name, mean=len(solved) / 4, rows=rows)

    cov = coverage_of_reports([report("a", {0, 1}), report("b", {2}), report("c", {0})], 2)
    assert cov.flows == ["a", "b"] and cov.union == 0.75 and cov.best_share == 0.5
