"""Calibrated ranking (SCALE, arXiv 2601.11147): rank candidate workflows without running each
on the whole dataset.

1. Warm-up: the first M flows (or `warmup_flows`) run in full; each row gets a difficulty
   (`stratify.difficulty`) and a stratum.
2. Every other flow runs on a stratified few-shot sample (`few_ratio` of the rows, at least
   `min_rows` and one per non-empty stratum): S_few, the stratum-weighted mean.
3. The optimizer model reads the flow's text, the task and the warm-up flows with their scores,
   and answers a probability of success: S_pred, parsed strictly (`parse_probability`); an
   unreadable reply is an error in the report (S_pred None, α = 1), never a silent 0.5.
4. Ŝ = (1 − α)·S_pred + α·S_few, with α from `alpha_for` (below).

The α rule (documented in docs/analysis.md): α = α₀ while |S_pred − S_few| ≤ τ; beyond τ it
grows in proportion to the disagreement, α = min(α_max, α₀·|S_pred − S_few| / τ): continuous at
τ, monotone, capped. A self-prediction that disagrees with measured rows loses weight.

Everything runs in one `Session` (shared backends, cache and sandbox), and every
figure of cost is tokens as a fresh run would spend them (cache hits counted at their tokens).
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Unpack

import orjson
from pydantic import BaseModel, Field

from treadle.errors import InputError, RunError, TreadleError
from treadle.eval.datasets import Dataset
from treadle.eval.evaluate import DataSource, Study, open_study
from treadle.eval.options import Epochs, RowSelection, RunConfig, Scoring, Shortcuts, settle
from treadle.eval.progress import Progress
from treadle.eval.report import EvalReport
from treadle.runtime.models.base import ModelBackend
from treadle.runtime.session import Session
from treadle.studies.stratify import (
    difficulty,
    sample_size,
    strata,
    stratified_mean,
    stratified_sample,
)


class PredictionError(TreadleError):
    """The optimizer model's reply is not a probability."""


_NUMBER = re.compile(r"^(?:0(?:\.\d+)?|1(?:\.0+)?|\.\d+)$")
_PERCENT = re.compile(r"^(\d{1,3}(?:\.\d+)?)\s*%$")


def parse_probability(reply: str) -> float:
    """A probability in [0, 1] from a reply that is only that: `0.7`, `.7`, `70%`, or JSON
    `{"probability": 0.7}` (surrounding whitespace, one trailing period and a code fence
    allowed). Anything else (words around it, two numbers, out of range) raises
    `PredictionError` quoting the reply."""
    text = reply.strip()
    if text.startswith("```") and text.endswith("```") and len(text) > 6:
        text = text[3:-3].removeprefix("json").strip()
    if text.endswith(".") and not text.endswith(".."):
        text = text[:-1].rstrip()
    if text.startswith("{"):
        try:
            data = orjson.loads(text)
        except orjson.JSONDecodeError:
            raise PredictionError(f"the reply is not valid JSON: {reply[:200]!r}") from None
        if not isinstance(data, dict) or set(data) != {"probability"}:
            raise PredictionError(f'expected {{"probability": P}}, got {reply[:200]!r}')
        value = data["probability"]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise PredictionError(f"the probability is not a number: {reply[:200]!r}")
        p = float(value)
    elif m := _PERCENT.match(text):
        p = float(m.group(1)) / 100
    elif _NUMBER.match(text):
        p = float(text)
    else:
        raise PredictionError(
            f"expected one probability between 0 and 1 and nothing else, got {reply[:200]!r}"
        )
    if not 0.0 <= p <= 1.0 or math.isnan(p):
        raise PredictionError(f"the probability {p} is outside [0, 1]: {reply[:200]!r}")
    return p


def alpha_for(
    s_pred: float | None, s_few: float, *, alpha: float = 0.5, tau: float = 0.15,
    alpha_max: float = 0.9,
) -> float:  # fmt: skip
    """The weight of the few-shot score: `alpha` while the two agree within `tau`, then
    `alpha · gap / tau`, capped at `alpha_max`; 1 when there is no prediction."""
    if s_pred is None:
        return 1.0
    gap = abs(s_pred - s_few)
    if gap <= tau:
        return alpha
    raised = alpha * gap / tau if tau > 0 else alpha_max
    return max(alpha, min(alpha_max, raised))


def calibrated(s_pred: float | None, s_few: float, a: float) -> float:
    """Ŝ = (1 − α)·S_pred + α·S_few (S_few alone without a prediction)."""
    return s_few if s_pred is None else (1 - a) * s_pred + a * s_few


# ---------------------------------------------------------------- correlation


def pearson(x: Sequence[float], y: Sequence[float]) -> float | None:
    n = len(x)
    if n < 2:
        return None
    mx, my = sum(x) / n, sum(y) / n
    sxx = sum((a - mx) ** 2 for a in x)
    syy = sum((b - my) ** 2 for b in y)
    if sxx == 0 or syy == 0:
        return None
    return sum((a - mx) * (b - my) for a, b in zip(x, y, strict=True)) / math.sqrt(sxx * syy)


def _ranks(v: Sequence[float]) -> list[float]:
    order = sorted(range(len(v)), key=lambda i: v[i])
    ranks = [0.0] * len(v)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and v[order[j + 1]] == v[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Pearson correlation of the ranks (ties get their mean rank)."""
    return pearson(_ranks(x), _ranks(y))


# ---------------------------------------------------------------- reports


class FlowRank(BaseModel):
    path: str
    warmup: bool = False
    s_pred: float | None = None
    s_few: float | None = None
    alpha: float | None = None
    #: Ŝ (the full score for a warm-up flow)
    score: float | None = None
    rank: int | None = None
    #: tokens this flow cost the ranking (warm-up: its full run; else few-shot + prediction)
    tokens: int = 0
    few_rows: int = 0
    prediction_tokens: int = 0
    prediction_reply: str | None = None
    #: the self-prediction could not be read, or the few-shot run failed
    error: str | None = None
    #: with verify: the full evaluation's mean and tokens
    full: float | None = None
    full_tokens: int | None = None


class Coverage(BaseModel):
    k: int
    flows: list[str]
    #: the share of rows at least one of the top K flows solves
    union: float
    best: str
    best_share: float
    #: the best flow run K times (epochs, different seeds): rows solved at least once
    best_repeat_share: float | None = None

    def summary(self) -> str:
        """One line for a person: does per-query choice among the top K buy anything?"""
        repeat = (
            f", repeated {self.k} times {100 * self.best_repeat_share:.0f}%"
            if self.best_repeat_share is not None
            else ""
        )
        return (
            f"coverage: the top {self.k} flows solve {100 * self.union:.0f}% of rows together; "
            f"the best ({Path(self.best).name}) {100 * self.best_share:.0f}%{repeat}"
        )


class RankReport(BaseModel):
    dataset: str
    scorer: str
    n: int
    flows: list[FlowRank]
    strata: dict[str, int] = Field(default_factory=dict)
    few_ids: list[str] = Field(default_factory=list)
    tau: float
    alpha: float
    alpha_max: float
    tokens_spent: int
    tokens_full: int
    #: True when tokens_full was measured (verify), False when estimated from the warm-up
    tokens_full_measured: bool
    saving: float
    pearson: float | None = None
    spearman: float | None = None
    mae: float | None = None
    coverage: Coverage | None = None
    wall_s: float = 0.0

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)


def _tokens(r: EvalReport) -> int:
    return r.tokens_in + r.tokens_out


def _scores(r: EvalReport) -> dict[str, float]:
    return {x.id: x.score for x in r.rows if x.status != "error" and x.score is not None}


PROMPT = """\
You predict how well a workflow will do on a task before it runs.

Task: {task}

Workflows already measured on this task, with the share of rows each solved:
{examples}

The new workflow:
```
{flow}
```

What share of the task's rows will the new workflow solve? Reply with one number between 0 \
and 1 and nothing else."""


#: the reply a constrained decoder may produce: a probability with at most two decimals
PROBABILITY_GBNF = 'root ::= "0" ("." [0-9] [0-9]?)? | "1" (".0" "0"?)?'


async def predict(
    session: Session,
    spec: str | ModelBackend | None,
    flow_text: str,
    task: str,
    examples: Sequence[tuple[str, float]],
    *,
    seed: int = 0,
) -> tuple[float | None, str, int, str | None]:
    """The optimizer model's self-prediction: (probability or None, reply, tokens, error). The
    call goes through the evaluation's model cache (a greedy call: a re-run replays it)."""
    from treadle.runtime.models.base import GenParams, Message

    backend = spec if isinstance(spec, ModelBackend) else await session.model(spec)
    shown = "\n\n".join(
        f"```\n{text.strip()}\n```\nsolved: {score:.2f}" for text, score in examples
    )
    prompt = PROMPT.format(task=task, examples=shown or "(none)", flow=flow_text.strip())
    # a backend that can constrain the reply admits only a probability; for the others the
    # strict parser judges the free reply
    grammar = PROBABILITY_GBNF if backend.takes_grammar else None
    params = GenParams(temperature=0.0, max_tokens=12, seed=seed, stop=("\n",), grammar=grammar)
    messages = [Message(role="user", content=prompt)]
    try:
        completion = await backend.complete(messages, params)
    except RunError as e:  # this flow's prediction is lost, not the ranking
        return None, "", 0, f"the self-prediction failed: {e.message}"
    tokens = completion.usage.input_tokens + completion.usage.output_tokens
    try:
        return parse_probability(completion.text), completion.text, tokens, None
    except PredictionError as e:
        return None, completion.text, tokens, f"unreadable self-prediction: {e.message}"


@dataclass(frozen=True)
class RankSettings:
    """How a ranking calibrates (SCALE): `warmup` flows run in full (or `warmup_flows`), rows
    fall into `n_strata` difficulty strata, each other flow runs on a stratified `few_ratio`
    sample (at least `min_rows`) and the `optimizer_model` predicts its score from the `task`
    description; α starts at `alpha` and grows to `alpha_max` when prediction and few-shot
    differ by more than `tau`. `verify` also runs every flow in full (to measure the ranking);
    `coverage` K reports the share of rows the top K flows solve together."""

    optimizer_model: str | ModelBackend | None = None
    task: str | None = None
    few_ratio: float = 0.03
    min_rows: int = 5
    warmup: int = 2
    n_strata: int = 3
    tau: float = 0.15
    alpha: float = 0.5
    alpha_max: float = 0.9
    verify: bool = False
    coverage: int | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.alpha <= self.alpha_max <= 1:
            raise InputError(
                f"need 0 <= alpha ({self.alpha}) <= alpha_max ({self.alpha_max}) <= 1."
            )
        if not 0 < self.few_ratio <= 1:
            raise InputError(f"--few-ratio must be in (0, 1], got {self.few_ratio}.")
        if self.warmup < 1:
            raise InputError(f"--warmup must be at least 1, got {self.warmup}.")


async def rank(
    flows: Sequence[str | Path],
    data: DataSource,
    *,
    settings: RankSettings | None = None,
    warmup_flows: Sequence[str | Path] | None = None,
    scoring: Scoring | None = None,
    rows: RowSelection | None = None,
    run: RunConfig | None = None,
    session: Session | None = None,
    report: str | Path | None = None,
    work_dir: str | Path | None = None,
    display: str | Progress | None = None,
    **shortcuts: Unpack[Shortcuts],
) -> RankReport:
    """Rank `flows` on `data` by calibrated score; see the module docstring and `RankSettings`
    (the optimizer model defaults to the run's model). Every evaluation runs in one session;
    `scoring`, `rows`, `run`, `session` and the shortcuts as `evaluate`."""
    started = time.monotonic()
    cfg = settings or RankSettings()
    scoring, rows, run = settle(scoring, rows, run, shortcuts)
    seed = run.seed
    paths = [Path(f) for f in flows]
    warm = [Path(f) for f in warmup_flows] if warmup_flows else paths[: cfg.warmup]
    others = [p for p in paths if p not in warm]
    if not warm:
        raise InputError("Ranking needs at least one warm-up flow (--warmup M).")
    for p in [*warm, *others]:
        if not p.is_file():
            raise InputError(f"There is no flow file {p}.")
    async with open_study(
        "rank", data, scoring=scoring, rows=rows, run=run, session=session, work_dir=work_dir,
        display=display,
    ) as st:  # fmt: skip
        return await _rank_in(st, cfg, warm, others, seed, report, started)


async def _rank_in(
    st: Study,
    cfg: RankSettings,
    warm: list[Path],
    others: list[Path],
    seed: int,
    report: str | Path | None,
    started: float,
) -> RankReport:
    ds = st.dataset
    tau, alpha, alpha_max, verify = cfg.tau, cfg.alpha, cfg.alpha_max, cfg.verify
    all_ids = [r.id for r in ds.rows]
    description = cfg.task or _describe(ds)
    say = st.say
    results: list[FlowRank] = []
    full_reports: dict[Path, EvalReport] = {}
    scorer = ""
    warm_scores = []
    examples = []
    for i, p in enumerate(warm):
        say(f"warm-up {i + 1}/{len(warm)}: {p} on all {len(all_ids)} rows")
        rep, failure = await _evaluate(st, p, f"warmup{i}")
        if rep is None:
            results.append(FlowRank(path=str(p), warmup=True, error=failure))
            continue
        scorer = rep.scorer
        full_reports[p] = rep
        warm_scores.append(_scores(rep))
        examples.append((p.read_text(encoding="utf-8"), rep.mean or 0.0))
        results.append(
            FlowRank(path=str(p), warmup=True, score=rep.mean, tokens=_tokens(rep),
                     full=rep.mean, full_tokens=_tokens(rep))
        )  # fmt: skip
    if not warm_scores:
        errors = "; ".join(f"{r.path}: {r.error}" for r in results)
        raise RunError(f"No warm-up flow could be evaluated, so there is nothing to calibrate "
                       f"against: {errors}")  # fmt: skip
    row_strata = strata(difficulty(warm_scores, all_ids), cfg.n_strata)
    n_few = sample_size(len(all_ids), cfg.few_ratio, cfg.min_rows, len(set(row_strata.values())))
    few = stratified_sample(row_strata, n_few, seed=seed)
    spec = cfg.optimizer_model
    say(f"strata {_counts(row_strata)}; few-shot sample: {len(few)} rows")
    for i, p in enumerate(others):
        text = p.read_text(encoding="utf-8")
        entry = FlowRank(path=str(p))
        say(f"[{i + 1}/{len(others)}] {p}: few-shot on {len(few)} rows + self-prediction")
        rep, failure = await _evaluate(st, p, f"few{i}", ids=few)
        if rep is None:
            entry.error = failure
            results.append(entry)
            continue
        scorer = scorer or rep.scorer
        entry.few_rows = rep.scored
        entry.s_few = stratified_mean(_scores(rep), row_strata)
        s_pred, reply, ptokens, error = await predict(
            st.session, spec, text, description, examples, seed=seed
        )
        entry.s_pred, entry.prediction_reply = s_pred, reply
        entry.prediction_tokens, entry.error = ptokens, error
        entry.tokens = _tokens(rep) + ptokens
        if entry.s_few is None:
            entry.error = entry.error or "no few-shot row could be scored"
            entry.s_few = s_pred
        if entry.s_few is not None:
            entry.alpha = alpha_for(s_pred, entry.s_few, alpha=alpha, tau=tau,
                                    alpha_max=alpha_max)  # fmt: skip
            entry.score = calibrated(s_pred, entry.s_few, entry.alpha)
        if verify:
            say(f"[{i + 1}/{len(others)}] {p}: full evaluation (--verify)")
            full, failure = await _evaluate(st, p, f"full{i}")
            if full is None:
                entry.error = entry.error or failure
            else:
                full_reports[p] = full
                entry.full, entry.full_tokens = full.mean, _tokens(full)
        results.append(entry)
    ordered = sorted(
        (r for r in results if r.score is not None), key=lambda r: (-(r.score or 0), r.path)
    )
    for k, r in enumerate(ordered, 1):
        r.rank = k
    cov = None
    if cfg.coverage:
        cov = await _coverage(cfg.coverage, ordered, full_reports, st)
    spent = sum(r.tokens for r in results)
    if verify:
        total_full = sum(r.full_tokens or 0 for r in results)
    else:
        # a warm-up flow's tokens per row, times every row, for each flow not run in full
        per_row = [
            r.full_tokens / max(1, len(all_ids))
            for r in results
            if r.warmup and r.full_tokens is not None
        ]
        est = sum(per_row) / len(per_row) * len(all_ids) if per_row else 0.0
        total_full = sum(r.full_tokens or 0 for r in results if r.warmup) + round(est * len(others))
    out = RankReport(
        dataset=ds.name,
        scorer=scorer,
        n=len(all_ids),
        flows=sorted(results, key=lambda r: (r.rank or 10**9, r.path)),
        strata={
            str(s): sum(1 for v in row_strata.values() if v == s)
            for s in sorted(set(row_strata.values()))
        },
        few_ids=few,
        tau=tau,
        alpha=alpha,
        alpha_max=alpha_max,
        tokens_spent=spent,
        tokens_full=total_full,
        tokens_full_measured=verify,
        saving=1 - spent / total_full if total_full else 0.0,
        coverage=cov,
    )
    if verify:
        pairs = [(r.score, r.full) for r in results if not r.warmup and r.score is not None
                 and r.full is not None]  # fmt: skip
        if pairs:
            xs, ys = [a for a, _ in pairs], [b for _, b in pairs]
            out.pearson, out.spearman = pearson(xs, ys), spearman(xs, ys)
            out.mae = sum(abs(a - b) for a, b in pairs) / len(pairs)
    out.wall_s = round(time.monotonic() - started, 3)
    if report is not None:
        Path(report).parent.mkdir(parents=True, exist_ok=True)
        Path(report).write_text(out.to_json() + "\n", encoding="utf-8")
    return out


async def _evaluate(
    st: Study, path: Path, name: str, ids: Sequence[str] | None = None
) -> tuple[EvalReport | None, str | None]:
    """One flow's evaluation, or why it failed: a flow that cannot be run (it does not
    compile, its runs fail) is an error of that flow, and the ranking goes on. Input errors
    (the dataset, the options) concern every flow and propagate."""
    try:
        return await st.evaluate(path, name, ids=ids), None
    except InputError:
        raise
    except TreadleError as e:
        return None, f"the evaluation failed: {e.message}"


def _counts(row_strata: Mapping[str, int]) -> dict[str, int]:
    return {
        str(s): sum(1 for v in row_strata.values() if v == s)
        for s in sorted(set(row_strata.values()))
    }


def _describe(ds: Dataset) -> str:
    first = ds.rows[0] if ds.rows else None
    example = orjson.dumps(first.inputs).decode()[:400] if first else "{}"
    return f"the dataset {ds.name} ({len(ds.rows)} rows); one row's inputs: {example}"


async def _coverage(
    k: int,
    ordered: list[FlowRank],
    full: dict[Path, EvalReport],
    st: Study,
) -> Coverage:
    """For the top K flows: the share of rows at least one solves, next to the best flow's
    share and its repeat-K share (K epochs with different seeds, a row solved once counts).
    Flows of the top K not yet run in full are run in full here."""
    top = [Path(r.path) for r in ordered[:k]]
    for i, p in enumerate(top):
        if p not in full:
            full[p] = await st.evaluate(p, f"cov{i}")
    solved = [{i for i, s in _scores(full[p]).items() if s >= 1.0} for p in top]
    n = max(1, len(st.dataset.rows))
    best = max(top, key=lambda p: full[p].mean or 0.0)
    repeat = await st.evaluate(best, "cov-repeat", epochs=Epochs(k, "max"))
    return Coverage(
        k=k,
        flows=[str(p) for p in top],
        union=len(set().union(*solved)) / n if solved else 0.0,
        best=str(best),
        best_share=sum(1 for s in _scores(full[best]).values() if s >= 1.0) / n,
        best_repeat_share=sum(1 for s in _scores(repeat).values() if s >= 1.0) / n,
    )


def coverage_of_reports(reports: Sequence[EvalReport], k: int) -> Coverage:
    """Coverage from finished evaluation reports (for `treadle eval compare`): the top K by
    mean, the share of rows at least one solves, the best one's share. A report made with
    `epochs` > 1 and reducer `max` gives the best flow's repeat share as its own share."""
    if not reports:
        raise InputError("coverage needs at least one report")
    ordered = sorted(reports, key=lambda r: -(r.mean or 0.0))[:k]
    ids = {row.id for r in reports for row in r.rows}
    solved = [{i for i, s in _scores(r).items() if s >= 1.0} for r in ordered]
    n = max(1, len(ids))
    best = ordered[0]
    share = sum(1 for s in _scores(best).values() if s >= 1.0) / n
    return Coverage(
        k=k,
        flows=[r.flow for r in ordered],
        union=len(set().union(*solved)) / n,
        best=best.flow,
        best_share=share,
        best_repeat_share=share if best.epochs > 1 and best.reducer == "max" else None,
    )


def rank_sync(*args: Any, **kwargs: Any) -> RankReport:
    """`rank` for code without an event loop."""
    return asyncio.run(rank(*args, **kwargs))
