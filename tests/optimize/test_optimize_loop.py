"""`treadle optimize` on the simulated task, where every shape's accuracy is known and every
model is scripted, so exact properties hold: the search finds the best shape, the budget is
never exceeded, a broken proposal never reaches evaluation, the test split runs once."""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import pytest
import simulated_task as sim

from treadle.errors import InputError
from treadle.eval.options import RunConfig
from treadle.optimization import OptimizeSettings, optimize


@pytest.fixture
def seed(tmp_path: Path) -> Path:
    p = tmp_path / "seed.flow"
    p.write_text(sim.SEED_FLOW)
    return p


def _run(executor: object) -> RunConfig:
    return RunConfig(model=executor, cache=False, sandbox="process")  # type: ignore[arg-type]


async def test_the_search_finds_the_known_best_shape(seed: Path, tmp_path: Path) -> None:
    ex, opt = sim.executor(), sim.optimizer(broken_every=3)
    settings = OptimizeSettings(rounds=6, warmup=1, optimizer_model=opt)
    res = await optimize(
        seed,
        sim.rows(60),
        test=sim.rows(60, 1000),
        scorer="exact",
        settings=settings,
        run=_run(ex),
        out=tmp_path / "out",
    )
    shapes = [sim.SEED_FLOW, "step by step", "samples 5", "step by step samples 5"]
    true_best = max(sim.true_accuracy(s) for s in shapes)
    assert res.best is not None
    best_text = Path(res.best).read_text()
    assert sim.true_accuracy(best_text) == pytest.approx(true_best)
    assert "step by step" in best_text and "samples 5" in best_text
    assert res.wasted_rounds == 0
    # the record: every round's child, its proposal and results; lineage back to the seed
    out = tmp_path / "out"
    for entry in res.lineage[1:]:
        d = out / "rounds" / f"{entry.round:03d}"
        assert (d / "child.flow").is_file() and (d / "proposal.json").is_file()
        assert (d / "results.jsonl").is_file()
        assert entry.parent is not None
    assert len((out / "experience.jsonl").read_text().splitlines()) == res.rounds
    assert res.pareto and res.coverage is not None


async def test_the_budget_is_never_exceeded(seed: Path, tmp_path: Path) -> None:
    ex, opt = sim.executor(), sim.optimizer()
    cap = 12_000
    settings = OptimizeSettings(rounds=20, warmup=1, optimizer_model=opt, budget_tokens=cap)
    res = await optimize(
        seed,
        sim.rows(40),
        test=sim.rows(20, 1000),
        scorer="exact",
        settings=settings,
        run=_run(ex),
        out=tmp_path / "out",
    )
    # what the models were really asked (no cache: every token reached a backend)
    assert ex.tokens + opt.tokens <= cap
    assert res.spent.total == ex.tokens + opt.tokens
    assert res.stopped is not None and "budget" in res.stopped
    assert res.rounds < 20


async def test_a_broken_proposal_never_reaches_evaluation(seed: Path, tmp_path: Path) -> None:
    ex, opt = sim.executor(), sim.broken_optimizer()
    settings = OptimizeSettings(rounds=3, optimizer_model=opt, moves=(), attempts=2, repairs=1)
    res = await optimize(
        seed,
        sim.rows(10),
        test=sim.rows(5, 1000),
        scorer="exact",
        settings=settings,
        run=_run(ex),
        out=tmp_path / "out",
    )
    # the seed's prompt is the only one the executor ever saw: 10 validation rows, then the
    # seed once on the 5 test rows
    assert ex.calls == 15
    assert all(p.startswith("Answer briefly.") for p in ex.prompts)
    # round 1 finds nothing valid for any flow: the search has converged and stops
    assert res.invalid_proposals == 2
    assert res.wasted_rounds == 1 and res.rounds == 1 and res.evaluations_full == 1
    assert res.stopped is not None and res.stopped.startswith("converged")
    proposal = orjson.loads((tmp_path / "out" / "rounds" / "001" / "proposal.json").read_bytes())
    assert proposal["chosen"] is None
    assert {t["verdict"] for t in proposal["tried"]} == {"errors"}
    assert not (tmp_path / "out" / "rounds" / "001" / "results.jsonl").exists()


async def test_the_test_split_runs_once_and_never_reaches_the_optimizer(
    seed: Path, tmp_path: Path
) -> None:
    ex, opt = sim.executor(), sim.optimizer()
    settings = OptimizeSettings(rounds=3, warmup=1, optimizer_model=opt, top_k=2)
    res = await optimize(
        seed,
        sim.rows(30),
        test=sim.rows(10, 1000),
        scorer="exact",
        settings=settings,
        run=_run(ex),
        out=tmp_path / "out",
    )
    test_row = re.compile(r"What is item 10\d\d\?")
    test_prompts = [p for p in ex.prompts if test_row.search(p)]
    assert not any(test_row.search(p) for p in opt.prompts)
    files = sorted((tmp_path / "out" / "test").glob("node-*.jsonl"))
    assert len(files) == len(res.portfolio) >= 1
    for f in files:
        lines = [orjson.loads(x) for x in f.read_bytes().splitlines()]
        assert sum(1 for x in lines if x["kind"] == "header") == 1
        assert sorted(x["id"] for x in lines if x["kind"] == "row") == sorted(
            f"r{i}" for i in range(1000, 1010)
        )
    assert test_prompts  # the executor did see the test rows, at the end
    assert all(p.test is not None for p in res.portfolio)


async def test_overlapping_splits_are_refused(seed: Path, tmp_path: Path) -> None:
    overlap = sim.rows(5, 3)  # rows 3..7: the same content as 3..7 of the validation rows
    for r in overlap:
        r["id"] = "t" + r["id"]
    with pytest.raises(InputError, match="overlap"):
        await optimize(
            seed,
            sim.rows(10),
            test=overlap,
            scorer="exact",
            settings=OptimizeSettings(rounds=1),
            run=_run(sim.executor()),
            out=tmp_path / "out",
        )
