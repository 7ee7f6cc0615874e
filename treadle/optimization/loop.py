"""`optimize(seeds, data, ...)`: the search loop of the seeds' method, composed of what treadle
already has (evaluate, rank's surrogate, attribute --prune, generate's decoding and judge,
eval compare's coverage).

Round 0 runs each seed on the whole validation split. Each later round: the strategy picks a
parent; proposals come (deterministic prune first where attribution found steps that carry
nothing, then the optimizer model, then the text moves) until one passes the gate; the child
is scored (in full in the warm-up rounds, by the surrogate after, in full again only if it
could reach the top K) and accepted by a paired comparison with its parent. The record is on
disk after every step; the search stops on the rounds, the budget, the wall time, patience,
or Ctrl-C (after the current evaluation). At the end the top K run once on the test split.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Unpack

from pydantic import ValidationError

from treadle.errors import InputError, TreadleError
from treadle.eval.compare import load_report
from treadle.eval.evaluate import DataSource, dataset_digest, open_study, scorer_specs, select_rows
from treadle.eval.executors import Executor, RayExecutor
from treadle.eval.options import Epochs, RowSelection, RunConfig, Scoring, Shortcuts, settle
from treadle.eval.progress import Progress
from treadle.eval.report import EvalReport
from treadle.generation.generator import GenerationSettings
from treadle.optimization.budget import ROW_MARGIN, Budget, prompt_bound
from treadle.optimization.evaluation import Evaluator, Surrogate, accept, copy_results, row_bound
from treadle.optimization.moves import TEXT_MOVES
from treadle.optimization.output import OptimizeResult, PortfolioEntry, lineage, pareto_front, top_k
from treadle.optimization.proposals import (
    PromptContext,
    Proposal,
    failure_rows,
    gate,
    model_proposal,
    optimizer_messages,
    text_candidate,
)
from treadle.optimization.record import Experience, Node, Record, State, write_json
from treadle.optimization.settings import OptimizeSettings
from treadle.optimization.splits import Splits, split
from treadle.optimization.strategies import Strategy, by_score, strategy_for
from treadle.runtime.models.base import ModelBackend
from treadle.studies.ranking import PROMPT as PREDICT_PROMPT
from treadle.studies.ranking import coverage_of_reports

DEFAULT_DIR = Path(".treadle") / "optimize"


async def optimize(
    seeds: str | Path | Sequence[str | Path],
    data: DataSource,
    *,
    settings: OptimizeSettings | None = None,
    test: DataSource | None = None,
    scoring: Scoring | None = None,
    rows: RowSelection | None = None,
    run: RunConfig | None = None,
    executor: Executor | None = None,
    out: str | Path | None = None,
    resume: str | Path | None = None,
    display: str | Progress | None = None,
    **shortcuts: Unpack[Shortcuts],
) -> OptimizeResult:
    """Search for better workflows than `seeds` on `data` (see the module doc and
    `OptimizeSettings`). `test`: held-out rows (default: a seeded share of `data`, see
    `val_split`); `scoring`, `rows`, `run` and the shortcuts as `evaluate`; `executor`:
    `RayExecutor` to run rows on a cluster; `out`: the record's directory (default
    `.treadle/optimize/<time>`); `resume`: continue the search recorded there."""
    cfg = settings or OptimizeSettings()
    scoring, rows, run = settle(scoring, rows, run, shortcuts)
    if isinstance(executor, RayExecutor):
        run = executor.check(run)
    paths = [Path(seeds)] if isinstance(seeds, str | Path) else [Path(s) for s in seeds]
    if not paths:
        raise InputError("optimize needs at least one seed flow.")
    for p in paths:
        if not p.is_file():
            raise InputError(f"There is no flow file {p}.")
    root = (
        Path(resume)
        if resume is not None
        else (Path(out) if out is not None else DEFAULT_DIR / time.strftime("%Y%m%d-%H%M%S"))
    )
    all_rows = select_rows(data, scoring, rows)
    test_rows = select_rows(test, scoring, RowSelection()) if test is not None else None
    splits = split(all_rows, test_rows, cfg.val_split, run.seed)
    texts = [_canonical(p) for p in paths]
    specs, _ = scorer_specs(scoring)
    identity = {
        "seeds": [hashlib.sha256(t.encode()).hexdigest()[:24] for t in texts],
        "dataset": dataset_digest(data),
        "test": dataset_digest(test) if test is not None else None,
        "scorers": [s.model_dump() for s in specs],
        "seed": run.seed,
        "model": run.model_name,
        "strategy": cfg.strategy,
        "val_split": cfg.val_split,
    }
    record = Record(root)
    if resume is not None:
        record.check_identity(identity)
        state = record.load()
        if state.done:
            return OptimizeResult.model_validate_json((root / "result.json").read_text())
        record.clear_after(state.round)
    else:
        record.start(identity)
        state = State()
    search = _Search(cfg, scoring, run, executor, record, state, splits, texts, paths)
    async with open_study(
        "optimize",
        splits.val,
        scoring=scoring,
        rows=RowSelection(),
        run=run,
        work_dir=root,
        display=display,
    ) as st:
        return await search.go(st)


def optimize_sync(*args: Any, **kwargs: Any) -> OptimizeResult:
    """`optimize` for code without an event loop."""
    return asyncio.run(optimize(*args, **kwargs))


def settings_of(**values: Any) -> OptimizeSettings:
    """`OptimizeSettings` from keyword values, a bad one an `InputError` (for the CLI)."""
    try:
        return OptimizeSettings(**values)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(x) for x in first["loc"]) or "settings"
        raise InputError(f"--{where.replace('_', '-')}: {first['msg']}.") from None


def _canonical(path: Path) -> str:
    from treadle.compiler import compile_file
    from treadle.compiler.formatter import format_source

    compile_file(path)  # a seed that does not compile is the user's to fix: CompileError
    return format_source(path.read_text(encoding="utf-8"))


@dataclass
class _Search:
    cfg: OptimizeSettings
    scoring: Scoring
    run: RunConfig
    executor: Executor | None
    record: Record
    state: State
    splits: Splits
    seed_texts: list[str]
    seed_paths: list[Path]
    strategy: Strategy = field(init=False)
    interrupted: bool = False

    def __post_init__(self) -> None:
        self.strategy = strategy_for(self.cfg)
        self.seen = {h: i for i, h in enumerate(self.state.seen)}
        self.started = time.monotonic()

    # ------------------------------------------------------------ the loop

    async def go(self, st: Any) -> OptimizeResult:
        cfg, state = self.cfg, self.state
        self.study = st
        self.budget = Budget(
            tokens=cfg.budget_tokens,
            seconds=cfg.budget_seconds,
            spent=state.spent.model_copy(),
            seconds_before=state.seconds,
        )
        self._reserve()  # a resumed search keeps back what its top K need
        self.evaluator = Evaluator(
            st,
            self.budget,
            self.run,
            self.executor,
            chunk=self.run.row_concurrency,
            interrupted=lambda: self.interrupted,
        )
        self.optimizer = await self._optimizer_backend()
        val_ids = [r.id for r in self.splits.val.rows]
        self.context = PromptContext(
            cfg.task or _describe(self.splits),
            cfg.library,
            {r.id: r.columns for r in self.splits.val.rows},
        )
        self.surrogate = Surrogate(cfg.few_ratio, cfg.min_rows, self.run.seed)
        signature = self._seed_signature()
        with self._ctrl_c():
            if state.round < 0:
                self._estimate(len(val_ids))
                await self._round_zero(val_ids)
            while not self._stop():
                r = state.round + 1
                t0 = time.monotonic()
                await self._round(r, val_ids, signature)
                if self.interrupted or self._budget_cut:
                    state.stopped = state.stopped or (
                        "interrupted (Ctrl-C); --resume continues"
                        if self.interrupted
                        else "token budget"
                    )
                    break
                self._progress(r, time.monotonic() - t0)
            result = await self._finish()
        with contextlib.suppress(Exception):
            if isinstance(self.optimizer, ModelBackend) and self._own_optimizer:
                await self.optimizer.aclose()
        return result

    _budget_cut: bool = False
    _own_optimizer: bool = False
    _round_seconds: list[float] = field(default_factory=list)

    def _stop(self) -> bool:
        cfg, state = self.cfg, self.state
        if self.interrupted:
            state.stopped = "interrupted (Ctrl-C); --resume continues"
        elif state.round >= cfg.rounds:
            state.stopped = f"{cfg.rounds} rounds"
        elif state.converged:
            state.stopped = "converged: no flow has a valid change left that was not seen before"
        elif self.budget.out_of_time():
            state.stopped = f"wall time ({cfg.budget_seconds:g} s)"
        elif self.budget.left() <= 0:
            state.stopped = "token budget"
        elif len(state.top3) > cfg.patience and state.top3[-1] <= state.top3[-1 - cfg.patience]:
            state.stopped = f"no better top-3 mean for {cfg.patience} rounds"
        else:
            return False
        return True

    # ------------------------------------------------------------ round 0: the seeds

    async def _round_zero(self, val_ids: list[str]) -> None:
        state = self.state
        d = self.record.round_dir(0)
        for i, text in enumerate(self.seed_texts):
            path = d / f"seed-{i}.flow"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            proposal = await gate(
                text_candidate(text), "seed", self._signature_of(text), self.seen, d, False
            )
            node = Node(
                id=len(state.nodes),
                round=0,
                path=str(path),
                ir_hash=proposal.ir_hash or "",
                cost_calls=proposal.cost_calls,
            )
            self._remember(proposal)
            bound = row_bound(node, None, len(text), self._input_chars())
            self.study.say(f"round 0: seed {self.seed_paths[i]} on {len(val_ids)} validation rows")
            outcome = await self.evaluator.rows(path, d / f"seed-{i}.jsonl", val_ids, bound)
            if outcome.report is None or not outcome.complete:
                self._budget_cut = True
                raise TreadleError(
                    "The budget does not cover one full validation run of the seed "
                    f"{self.seed_paths[i]} ({self.budget.describe()}); raise --budget-tokens."
                )
            self._fill(node, outcome.report)
            state.nodes.append(node)
        state.round = 0
        state.top3.append(self._top3())
        self._reserve()
        self._save()

    # ------------------------------------------------------------ one round

    async def _round(self, r: int, val_ids: list[str], signature: tuple[Any, ...]) -> None:
        cfg, state = self.cfg, self.state
        rng = random.Random(f"{self.run.seed}:{r}")
        frontier = self._frontier()
        evaluated = [n for n in state.nodes if n.val is not None]
        chosen = self.strategy.parent(frontier, evaluated, rng)
        d = self.record.round_dir(r)
        d.mkdir(parents=True, exist_ok=True)
        # a parent with nothing new left to try gives way to the others (best first), so a
        # round ends without a child only when no flow has anything left, or the budget says so
        others = [n for n in by_score(evaluated) if n.id != chosen.id]
        proposal, parent = None, chosen
        for parent in [chosen, *others]:
            self.context.note = self.strategy.note(parent)
            # the optimizer model writes for the chosen parent; the others get the moves only
            proposal = await self._propose(r, parent, rng, signature, d, parent is chosen)
            if proposal is not None or self._budget_cut:
                break
        if proposal is None:
            if not self._budget_cut:
                # no flow has a change left that is valid and new: the search has converged
                state.wasted_rounds += 1
                state.converged = True
            self._end_round(r, parent, None, "no valid proposal", "invalid")
            return
        child_path = d / "child.flow"
        child_path.write_text(proposal.text or "", encoding="utf-8")
        node = Node(
            id=len(state.nodes),
            round=r,
            parent=parent.id,
            move=proposal.move,
            path=str(child_path),
            ir_hash=proposal.ir_hash or "",
            cost_calls=proposal.cost_calls,
            status="incomplete",
        )
        node.leaks = self.splits.leaks(proposal.text or "")
        bound = row_bound(node, parent, len(proposal.text or ""), self._input_chars())
        results = d / "results.jsonl"
        full_now = not cfg.surrogate or r <= cfg.warmup
        if not full_now:
            few_ids, row_strata = self.surrogate.sample(
                [n for n in state.nodes if n.val is not None], val_ids
            )
            outcome = await self.evaluator.rows(child_path, results, few_ids, bound)
            if outcome.report is None or not outcome.complete:
                return self._cut(r, parent, node)
            examples = [
                (Path(n.path).read_text(encoding="utf-8"), n.val or 0.0) for n in top_k(frontier, 3)
            ]
            predict_bound = prompt_bound(
                len(PREDICT_PROMPT)
                + len(proposal.text or "")
                + sum(len(t) for t, _ in examples)
                + len(self.context.task),
                12,
                1,
            )
            if not self.budget.admits(predict_bound):
                return self._cut(r, parent, node)
            tokens = await self.surrogate.score(
                node,
                outcome.report,
                row_strata,
                proposal.text or "",
                (self.study, self.optimizer, self.context.task, examples),
            )
            self.budget.charge("optimizer", tokens)
            kth = sorted((n.val or 0.0 for n in frontier), reverse=True)[: cfg.top_k]
            contender = len(kth) < cfg.top_k or (node.surrogate or 0.0) >= kth[-1]
            if not contender:
                node.status = "screened-out"
                node.tokens = outcome.report.tokens_in + outcome.report.tokens_out
                state.nodes.append(node)
                self._end_round(r, parent, node, _summary(proposal), "screened out")
                return
        outcome = await self.evaluator.rows(child_path, results, val_ids, bound)
        if outcome.report is None or not outcome.complete:
            return self._cut(r, parent, node)
        self._fill(node, outcome.report)
        parent_report = load_report(_report_path(parent))
        node.comparison = accept(parent_report, outcome.report, cfg.resamples, self.run.seed)
        node.status = "accepted" if node.comparison.verdict == "better" else "rejected"
        state.nodes.append(node)
        verdict = node.comparison.verdict
        outcome_label = "no significant change" if verdict not in ("better", "worse") else verdict
        self._end_round(r, parent, node, _summary(proposal), outcome_label)

    def _cut(self, r: int, parent: Node, node: Node) -> None:
        """The budget (or Ctrl-C) stopped this round's evaluation: the round is not recorded
        as done (a resume with more budget redoes it)."""
        self._budget_cut = not self.interrupted
        self.state.stopped = "token budget" if self._budget_cut else "interrupted"

    def _end_round(
        self, r: int, parent: Node, node: Node | None, summary: str, outcome: Any
    ) -> None:
        state = self.state
        self.record.add_experience(
            Experience(
                round=r,
                parent=parent.id,
                child=node.id if node else None,
                move=node.move if node else "-",
                summary=summary,
                before=parent.val,
                after=node.val if node else None,
                outcome=outcome,
            )
        )
        if node is not None:
            write_json(self.record.round_dir(r) / "node.json", node)
        state.round = r
        state.top3.append(self._top3())
        self._reserve()
        self._save()

    # ------------------------------------------------------------ proposals

    async def _propose(
        self,
        r: int,
        parent: Node,
        rng: random.Random,
        signature: tuple[Any, ...],
        d: Path,
        ask_model: bool = True,
    ) -> Proposal | None:
        """The first proposal that passes the gate: prune (where attribution says some step
        carries nothing), the optimizer model (`attempts` times), then the text moves."""
        cfg, state = self.cfg, self.state
        parent_text = Path(parent.path).read_text(encoding="utf-8")
        tried: list[dict[str, Any]] = []
        for attempt in range(cfg.attempts if ask_model else 0):
            report = load_report(_report_path(parent))
            failures = failure_rows(report.rows, cfg.failures, rng)
            msgs = optimizer_messages(
                parent, parent_text, report, failures, self.record.experience(), self.context
            )
            bound = prompt_bound(sum(len(m.content) for m in msgs), cfg.max_tokens, cfg.repairs + 1)
            if not self.budget.admits(bound):
                self._budget_cut = True
                break
            gen = GenerationSettings(
                n=1,
                repairs=cfg.repairs,
                max_tokens=cfg.max_tokens,
                seed=self.run.seed + 1000 * r + attempt,
                examples=0,
                temperature=0.0 if attempt == 0 else 0.7,
            )
            try:
                cand = await model_proposal(self.optimizer, msgs, gen, cfg.library, d)
            except TreadleError as e:  # the optimizer failed (a dead server): try the moves
                tried.append(
                    {"move": "model", "attempt": attempt, "verdict": "error", "reason": e.message}
                )
                break
            if attempt == 0 and cand.attempts:
                cand.index = 10**6 + r  # seen-map entries name the round that proposed them
            proposal = await gate(cand, "model", signature, self.seen, d, cfg.dry_run)
            proposal.attempt = attempt
            proposal.messages = [{"role": m.role, "content": m.content} for m in msgs]
            self.budget.charge("optimizer", proposal.tokens)
            tried.append(proposal.model_dump())
            self._remember(proposal)
            if proposal.verdict == "valid":
                return self._chosen(d, proposal, tried)
            state.invalid_proposals += 1
        wf = _entry(parent_text)
        for name, move in TEXT_MOVES.items():
            if name not in cfg.moves:
                continue
            text = move(parent_text, wf)
            if text is None:
                continue
            proposal = await gate(text_candidate(text), name, signature, self.seen, d, cfg.dry_run)
            tried.append(proposal.model_dump())
            self._remember(proposal)
            if proposal.verdict == "valid":
                return self._chosen(d, proposal, tried)
            if proposal.verdict != "duplicate":
                state.invalid_proposals += 1
        write_json(d / "proposal.json", {"chosen": None, "tried": tried})
        return None

    def _chosen(self, d: Path, proposal: Proposal, tried: list[dict[str, Any]]) -> Proposal:
        write_json(d / "proposal.json", {"chosen": proposal.model_dump(), "tried": tried})
        return proposal

    def _remember(self, proposal: Proposal) -> None:
        if proposal.ir_hash and proposal.ir_hash not in self.state.seen:
            self.state.seen.append(proposal.ir_hash)
            self.seen[proposal.ir_hash] = len(self.state.seen) - 1

    # ------------------------------------------------------------ the end

    async def _finish(self) -> OptimizeResult:
        cfg, state = self.cfg, self.state
        chosen = top_k(self._frontier(), cfg.top_k)
        test_ids = [r.id for r in self.splits.test.rows]
        final = not self.interrupted
        if final:
            for n in chosen:
                if n.test is not None:
                    continue
                self.study.say(f"test split: node {n.id} on {len(test_ids)} rows (once)")
                test_dir = self.record.root / "test"
                outcome = await self.evaluator.rows(
                    Path(n.path),
                    test_dir / f"node-{n.id}.jsonl",
                    test_ids,
                    max(n.tokens_per_row * ROW_MARGIN, 1.0),
                    final=True,
                    dataset=self.splits.test,
                )
                if outcome.report is not None:
                    n.test = outcome.report.mean
        coverage = None
        reports = [load_report(_report_path(n)) for n in chosen]
        if reports:
            coverage = coverage_of_reports(reports, len(reports))
            best = chosen[0]
            if final and len(chosen) > 1:
                rep_path = self.record.root / "coverage" / "best-repeat.jsonl"
                if not rep_path.exists():
                    copy_results(
                        Path(_report_path(best)).with_suffix("").with_suffix(".jsonl"), rep_path
                    )
                k = len(chosen)
                outcome = await self.evaluator.rows(
                    Path(best.path),
                    rep_path,
                    [r.id for r in self.splits.val.rows],
                    best.tokens_per_row * ROW_MARGIN,
                    final=True,
                    epochs=Epochs(k, "max"),
                )
                if outcome.complete and outcome.report is not None:
                    solved = sum(1 for r in outcome.report.rows if (r.score or 0) >= 1.0)
                    coverage.best_repeat_share = solved / max(1, len(self.splits.val.rows))
        top = chosen[0] if chosen else None
        if top is not None:
            (self.record.root / "best.flow").write_text(
                Path(top.path).read_text(encoding="utf-8"), encoding="utf-8"
            )
        state.spent = self.budget.spent.model_copy()
        state.done = final
        result = OptimizeResult(
            out=str(self.record.root),
            best=str(self.record.root / "best.flow") if top else None,
            best_node=top.id if top else None,
            best_val=top.val if top else None,
            best_test=top.test if top else None,
            portfolio=[
                PortfolioEntry(
                    node=n.id,
                    path=n.path,
                    val=n.val,
                    test=n.test,
                    test_rows=len(test_ids) if n.test is not None else 0,
                    cost_calls=n.cost_calls,
                    tokens_per_row=n.tokens_per_row,
                )
                for n in chosen
            ],
            coverage=coverage,
            pareto=pareto_front(state.nodes),
            lineage=lineage(state.nodes),
            rounds=state.round,
            evaluations_full=sum(1 for n in state.nodes if n.val is not None),
            evaluations_few=sum(1 for n in state.nodes if n.s_few is not None),
            invalid_proposals=state.invalid_proposals,
            wasted_rounds=state.wasted_rounds,
            spent=self.budget.spent.model_copy(),
            budget_tokens=cfg.budget_tokens,
            stopped=state.stopped,
            leaks={n.id: n.leaks for n in state.nodes if n.leaks},
            wall_s=round(time.monotonic() - self.started, 3),
        )
        write_json(self.record.root / "result.json", result)
        self._save()
        return result

    # ------------------------------------------------------------ helpers

    def _frontier(self) -> list[Node]:
        return [
            n for n in self.state.nodes if n.status in ("seed", "accepted") and n.val is not None
        ]

    def _top3(self) -> float:
        vals = sorted((n.val or 0.0 for n in self._frontier()), reverse=True)[:3]
        return round(sum(vals) / len(vals), 6) if vals else 0.0

    def _fill(self, node: Node, report: EvalReport) -> None:
        node.val = report.mean
        node.val_rows = report.scored
        node.tokens = report.tokens_in + report.tokens_out
        node.tokens_per_row = round(node.tokens / max(1, report.n), 3)
        node.scores = {r.id: r.score for r in report.rows if r.score is not None}
        if report.rows:
            dearest = max(r.tokens_in + r.tokens_out for r in report.rows)
            node.tokens_per_row = max(node.tokens_per_row, float(dearest))

    def _reserve(self) -> None:
        """Keep back what the end needs: the current top K once on the test split (a rejected
        child, however dear, is not among them)."""
        chosen = top_k(self._frontier(), self.cfg.top_k)
        n_test = len(self.splits.test.rows)
        self.budget.reserve = int(sum(n.tokens_per_row for n in chosen) * n_test * ROW_MARGIN)

    def _save(self) -> None:
        self.state.spent = self.budget.spent.model_copy()
        self.record.save(self.state)

    def _seed_signature(self) -> tuple[Any, ...]:
        sigs = {self._signature_of(t) for t in self.seed_texts}
        if len(sigs) != 1:
            raise InputError("The seed flows must share one signature (inputs and outputs).")
        return sigs.pop()

    @staticmethod
    def _signature_of(text: str) -> tuple[Any, ...]:
        wf = _entry(text)
        return (
            tuple((f.name, f.type) for f in wf.inputs),
            tuple((f.name, f.type) for f in wf.outputs),
        )

    def _input_chars(self) -> int:
        return max((len(str(r.columns)) for r in self.splits.val.rows), default=0)

    def _estimate(self, n_val: int) -> None:
        """The spend, estimated from the seeds' static bounds before anything runs."""
        from treadle.compiler import compile_source
        from treadle.generation.cost import cost_bound

        cfg = self.cfg
        calls = max(cost_bound(compile_source(t)).bound()[0] for t in self.seed_texts)
        per_call = max(len(t) for t in self.seed_texts) / 4 + self._input_chars() / 4 + 128
        per_row = max(1, calls) * per_call
        full_rounds = cfg.rounds if not cfg.surrogate else min(cfg.rounds, cfg.warmup)
        few = max(cfg.min_rows, round(cfg.few_ratio * n_val))
        rows = (len(self.seed_texts) + full_rounds) * n_val + (cfg.rounds - full_rounds) * (
            few + n_val / 3
        )
        optimizer = cfg.rounds * (3000 / 4 + cfg.max_tokens)
        test = cfg.top_k * len(self.splits.test.rows)
        est = int(rows * per_row + optimizer + test * per_row)
        cap = f"{cfg.budget_tokens:,}" if cfg.budget_tokens else "no cap"
        self.study.say(
            f"estimate: ~{est:,} tokens for {cfg.rounds} rounds "
            f"(executor ~{int(rows * per_row):,}, "
            f"optimizer ~{int(optimizer):,}, test ~{int(test * per_row):,}); budget {cap}"
        )
        self.estimate = est

    def _progress(self, r: int, seconds: float) -> None:
        self._round_seconds.append(seconds)
        left = self.cfg.rounds - r
        eta = sum(self._round_seconds) / len(self._round_seconds) * left
        best = max((n.val or 0.0 for n in self._frontier()), default=0.0)
        cap = self.cfg.budget_tokens
        used = self.budget.spent.total
        share = f" ({100 * used / cap:.0f}%)" if cap else ""
        self.study.say(
            f"round {r}/{self.cfg.rounds}  best {best:.3f}  budget {used:,}"
            + (f"/{cap:,}" if cap else "")
            + f"{share}  ETA {_duration(eta)}"
        )

    async def _optimizer_backend(self) -> str | ModelBackend | None:
        """The optimizer model, loaded once (a server spec with a grammar option stays a spec:
        `generate` builds the grammar-carrying backend from it)."""
        spec = self.cfg.optimizer_model if self.cfg.optimizer_model is not None else self.run.model
        if isinstance(spec, ModelBackend):
            return spec
        from treadle.runtime.models.spec import load_model, parse_spec

        parsed = parse_spec(spec)
        if parsed.kind == "openai" and parsed.options.grammar not in (None, "none"):
            return spec
        options = {"n_threads": 1} if parsed.kind == "llama" else {}
        self._own_optimizer = True
        return load_model(parsed, **options)

    @contextlib.contextmanager
    def _ctrl_c(self) -> Any:
        """The first Ctrl-C stops the search after the current evaluation; a second one
        interrupts at once (everything done so far is on disk either way)."""
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()

        def on_int() -> None:
            if self.interrupted and task is not None:
                task.cancel()
                return
            self.interrupted = True
            self.study.say("Ctrl-C: stopping after the current evaluation (again to stop now)")

        try:
            loop.add_signal_handler(signal.SIGINT, on_int)
            installed = True
        except (NotImplementedError, RuntimeError, ValueError):
            installed = False
        try:
            yield
        finally:
            if installed:
                loop.remove_signal_handler(signal.SIGINT)
            self.state.seconds = self.budget.elapsed


def _entry(text: str) -> Any:
    from treadle.compiler import compile_source

    program = compile_source(text)
    return program.workflows[program.entry]


def _report_path(node: Node) -> Path:
    """The report beside a node's validation results file."""
    p = Path(node.path)
    if node.move == "seed":
        return p.with_suffix(".report.json")
    return p.parent / "results.report.json"


def _summary(p: Proposal) -> str:
    if p.move == "model":
        return f"the optimizer's rewrite ({p.cost_text or '-'}, {p.repairs} repairs)"
    return f"the move {p.move} ({p.cost_text or '-'})"


def _describe(splits: Splits) -> str:
    first = splits.val.rows[0] if splits.val.rows else None
    example = str(first.columns)[:300] if first else "{}"
    return f"the rows of {splits.val.name}, such as {example}"


def _duration(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


__all__ = ["optimize", "optimize_sync", "settings_of"]
