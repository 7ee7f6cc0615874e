"""Scoring children: full validation in the warm-up rounds, SCALE's calibrated surrogate after
(a stratified few-shot sample plus the optimizer's self-prediction, `treadle rank`'s pieces),
a full run only for a child whose surrogate could reach the top K, and acceptance by a paired
bootstrap against the parent on their common rows.

Rows are admitted under the budget a chunk at a time; a flow's results file grows by
`evaluate(resume=...)`, so the few-shot rows a contender already ran are not run (or paid for)
again when it is run in full.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from treadle.eval.compare import compare
from treadle.eval.evaluate import Study, evaluate, read_results
from treadle.eval.executors import Executor, RayExecutor
from treadle.eval.options import Epochs, RowSelection, RunConfig
from treadle.eval.report import EvalReport
from treadle.optimization.budget import ROW_MARGIN, Budget
from treadle.optimization.record import Comparison, Node
from treadle.runtime.models.base import ModelBackend
from treadle.studies.ranking import alpha_for, calibrated, predict
from treadle.studies.stratify import (
    difficulty,
    sample_size,
    strata,
    stratified_mean,
    stratified_sample,
)

#: difficulty strata of the validation rows (as `treadle rank`)
N_STRATA = 3


@dataclass
class Outcome:
    report: EvalReport | None
    complete: bool


@dataclass
class Evaluator:
    """Runs flows on the validation rows (or the test rows) of one study, under the budget."""

    study: Study
    budget: Budget
    run: RunConfig
    executor: Executor | None = None
    #: a chunk of rows at a time (the budget is checked between chunks)
    chunk: int = 4
    #: set to stop admitting rows (Ctrl-C: stop after the current evaluation)
    interrupted: Callable[[], bool] = lambda: False
    bounds: dict[str, float] = field(default_factory=dict)

    async def rows(
        self,
        flow: Path,
        results: Path,
        ids: Sequence[str],
        row_bound: float,
        *,
        final: bool = False,
        epochs: Epochs | int = 1,
        dataset: object | None = None,
    ) -> Outcome:
        """Run `flow` on `ids` into `results` (continuing it), as far as the budget admits."""
        ids = list(ids)
        epochs = Epochs.of(epochs)
        done: set[str] = set()
        if results.is_file():
            _, prior = read_results(results)
            done = {r.id for r in prior if r.status != "error" and r.epoch == epochs.n - 1}
        report: EvalReport | None = None
        bound = row_bound * max(1, epochs.n)
        while True:
            todo = [i for i in ids if i not in done]
            if not todo and report is not None:
                return Outcome(report, True)
            step = len(todo) if self.budget.tokens is None else min(self.chunk, len(todo))
            n = self.budget.rows_admitted(bound, step or 1, final=final)
            if todo and (n == 0 or self.interrupted()):
                return Outcome(report, False)
            chosen = [i for i in ids if i in done] + todo[:n]
            before = self.study.session.tokens
            report = await self._evaluate(flow, results, chosen, epochs, dataset)
            new = [r for r in report.rows if r.id in set(todo[:n])]
            row_tokens = sum(r.tokens_in + r.tokens_out for r in new)
            self.budget.charge("executor", row_tokens)
            if not isinstance(self.executor, RayExecutor):
                self.budget.charge("judge", self.study.session.tokens - before - row_tokens)
            if new:
                dearest = max(r.tokens_in + r.tokens_out for r in new)
                bound = max(bound, dearest * ROW_MARGIN)
            done.update(r.id for r in new)
            if not todo:
                return Outcome(report, True)

    async def _evaluate(
        self, flow: Path, results: Path, ids: list[str], epochs: Epochs, dataset: object | None
    ) -> EvalReport:
        st = self.study
        resume = results if results.is_file() else None
        common = {
            "scoring": st.scoring,
            "rows": RowSelection(ids=ids),
            "epochs": epochs,
            "results": None if resume else results,
            "resume": resume,
            "display": st.display,
            "report": results.with_suffix(".report.json"),
        }
        data = dataset if dataset is not None else st.dataset
        if isinstance(self.executor, RayExecutor):
            return await evaluate(flow, data, run=self.run, executor=self.executor, **common)  # type: ignore[arg-type]
        return await evaluate(flow, data, run=st.run, session=st.session, **common)  # type: ignore[arg-type]


def row_bound(node: Node, parent: Node | None, flow_chars: int, input_chars: int) -> float:
    """A bound on one row's tokens for a flow not yet run: its parent's dearest rows scaled by
    the static bound's calls; for a seed, its calls times its text and inputs plus a reply."""
    if parent is not None and parent.tokens_per_row > 0:
        ratio = max(1.0, node.cost_calls / max(1, parent.cost_calls))
        return parent.tokens_per_row * ratio * ROW_MARGIN * 1.5
    calls = max(1, node.cost_calls)
    return calls * ((flow_chars + input_chars) / 3 + 512)


@dataclass
class Surrogate:
    """SCALE's surrogate over the validation rows: strata from every flow run in full so far,
    a stratified few-shot sample (fixed for the search, so children are compared on the same
    rows), and the optimizer's self-prediction."""

    few_ratio: float
    min_rows: int
    seed: int

    def sample(self, full: Sequence[Node], ids: Sequence[str]) -> tuple[list[str], dict[str, int]]:
        row_strata = strata(difficulty([n.scores for n in full], list(ids)), N_STRATA)
        n = sample_size(len(ids), self.few_ratio, self.min_rows, len(set(row_strata.values())))
        return stratified_sample(row_strata, n, seed=self.seed), row_strata

    async def score(
        self,
        node: Node,
        few: EvalReport,
        row_strata: dict[str, int],
        text: str,
        context: tuple[Study, str | ModelBackend | None, str, list[tuple[str, float]]],
    ) -> int:
        """Fill the node's S_few, S_pred, α and Ŝ; the prediction's tokens are returned."""
        study, model, task, examples = context
        scores = {r.id: r.score for r in few.rows if r.status != "error" and r.score is not None}
        node.s_few = stratified_mean(scores, row_strata)
        s_pred, _, tokens, _ = await predict(
            study.session, model, text, task, examples, seed=self.seed
        )
        node.s_pred = s_pred
        s_few = node.s_few if node.s_few is not None else (s_pred or 0.0)
        node.alpha = alpha_for(s_pred, s_few)
        node.surrogate = calibrated(s_pred, s_few, node.alpha)
        return tokens


def accept(parent: EvalReport, child: EvalReport, resamples: int, seed: int) -> Comparison:
    """The child against its parent on common rows (paired bootstrap of child − parent): it is
    better when its mean is higher and the 95% interval does not reach below 0, worse when the
    interval lies below 0."""
    c = compare(parent, child, resamples=resamples, seed=seed)
    if c.diff is not None and c.ci_low is not None and c.diff > 0 and c.ci_low >= 0:
        verdict = "better"
    else:
        verdict = {"a": "worse", "b": "better"}.get(c.verdict, c.verdict)
    return Comparison(
        rows=c.common, diff=c.diff, ci_low=c.ci_low, ci_high=c.ci_high, verdict=verdict
    )


def copy_results(src: Path, dst: Path) -> None:
    """Start `dst` from `src`'s rows (a repeat run resumes from the first epoch's rows)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)


__all__ = ["Evaluator", "Outcome", "Surrogate", "accept", "copy_results", "row_bound"]
