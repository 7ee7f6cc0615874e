"""Counterfactual attribution: remove each step (or operator, or capability call) in turn, re-run
the same rows with the same seeds, and credit each part with the score it carries.

Why this shape (Learning to Compose, arXiv 2602.11114): a workflow's score says nothing about
which of its parts earn it. Removing a part and comparing per-row scores with the baseline on
the same rows gives each part an effect with a paired interval, a sign, and the share of the
baseline's successes that depend on it.

Cheap by construction: the baseline and every ablation run in ONE `Session` (one set of
backends, one cache, one sandbox pool) with the same seeds, so every model call upstream of a
removed step is a cache hit. The report counts calls made against what re-running every
ablation without the cache would make (`model_calls_naive`).

How a step is removed is the operator's declaration (`treadle ops`); the ablated program is
built by `treadle.compiler.ablate`, which reports removals that leave the program ill-typed
instead of running them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Unpack

from pydantic import BaseModel, Field

from treadle.compiler import compile_file
from treadle.compiler.ablate import AblationError, Unit, UnitKind, ablate, list_units
from treadle.errors import InputError
from treadle.eval.evaluate import DataSource, Study, open_study
from treadle.eval.options import RowSelection, RunConfig, Scoring, Shortcuts, settle
from treadle.eval.progress import Progress
from treadle.eval.report import EvalReport
from treadle.eval.stats import paired_bootstrap
from treadle.runtime.session import Session

#: "breaks": without the unit rows fail (or none can be scored); no effect is computed from
#: those zeros
Sign = Literal["helps", "hurts", "none", "breaks"]


class UnitReport(BaseModel):
    """One removable (or not) part and what removing it did."""

    unit: str
    kind: str
    #: the operator, or the called workflow
    target: str
    removable: bool
    reason: str = ""
    line: int | None = None
    #: mean over paired rows of (baseline − ablated); positive: the unit helps
    effect: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    sign: Sign | None = None
    #: the share of the baseline's successes that fail without this unit
    share: float | None = None
    #: the ablated program's mean score, and how many rows were paired
    mean: float | None = None
    rows: int = 0
    #: the ablated runs' rows that failed (the workflow's own failure) or ended in an error
    failed: int = 0
    errors: int = 0
    model_calls: int = 0
    cached_calls: int = 0
    tokens: int = 0
    #: rank among removable units by effect (1 = carries the most); None when not measured
    rank: int | None = None
    #: flows the unit was measured in (`--library`)
    flows: list[str] = Field(default_factory=list)


class CumulativeShare(BaseModel):
    units: int
    fraction_of_units: float
    share: float


class PruneReport(BaseModel):
    path: str
    removed: list[str]
    kept_candidates: dict[str, str] = Field(default_factory=dict)
    #: removals undone (latest first) because the pruned flow scored below the original, why
    backed_off: dict[str, str] = Field(default_factory=dict)
    score: float | None
    baseline: float | None
    model_calls: int
    model_calls_baseline: int
    tokens: int
    tokens_baseline: int


class AttributionReport(BaseModel):
    flows: list[str]
    dataset: str
    scorer: str
    by: str
    n: int
    baseline: float | None
    baseline_ci: tuple[float | None, float | None] = (None, None)
    #: a row is a success when its score is at least this
    success: float
    successes: int
    units: list[UnitReport]
    cumulative: list[CumulativeShare] = Field(default_factory=list)
    model_calls: int
    model_calls_naive: int
    cached_calls: int
    tokens: int
    wall_s: float = 0.0
    prune: PruneReport | None = None

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)


def _scores(report: EvalReport) -> dict[str, float]:
    return {r.id: r.score for r in report.rows if r.status != "error" and r.score is not None}


def _made(report: EvalReport) -> int:
    return report.model_calls - report.cached_calls


def _failed(report: EvalReport) -> set[str]:
    return {r.id for r in report.rows if r.status == "failed"}


@dataclass
class _Pairing:
    """The rows a unit's effect is computed on, and the rows its removal broke."""

    #: rows scored in both runs, none of them broken
    ids: list[str]
    #: rows that did not fail in the baseline and fail without the unit
    broken: list[str]
    #: without the unit, no row could be scored at all
    nothing_scored: bool

    @property
    def breaks(self) -> bool:
        return bool(self.broken) or self.nothing_scored


def _pair(base: Mapping[str, float], base_failed: set[str], ablated: EvalReport) -> _Pairing:
    """Pair the baseline's scored rows with the ablated run's; a row that fails only without
    the unit is broken, not a 0 to average."""
    after = _scores(ablated)
    broken = sorted(i for i in _failed(ablated) - base_failed if i in base)
    ids = [i for i in base if i in after and i not in broken]
    return _Pairing(ids, broken, nothing_scored=bool(ablated.rows) and not after)


def measure(
    unit: UnitReport,
    base: dict[str, float],
    ablated: EvalReport,
    success: float,
    seed: int,
    base_failed: set[str] | None = None,
) -> None:
    """Fill the unit's effect, interval, sign and share from paired per-row scores; a unit
    whose removal makes rows fail (or leaves none scored) breaks the flow and gets no effect."""
    after = _scores(ablated)
    p = _pair(base, base_failed or set(), ablated)
    unit.rows = len(p.ids)
    unit.failed = ablated.failed
    unit.errors = ablated.errors
    unit.mean = ablated.mean
    unit.model_calls = ablated.model_calls
    unit.cached_calls = ablated.cached_calls
    unit.tokens = ablated.tokens_in + ablated.tokens_out
    if p.breaks:
        unit.sign = "breaks"
        return
    if not p.ids:
        unit.reason = unit.reason or "no row ran both with and without it"
        return
    diffs = [base[i] - after[i] for i in p.ids]
    unit.effect = sum(diffs) / len(diffs)
    low, high = paired_bootstrap(diffs, seed=seed)
    unit.ci_low, unit.ci_high = low, high
    unit.sign = "helps" if low > 0 else "hurts" if high < 0 else "none"
    wins = [i for i in p.ids if base[i] >= success]
    lost = [i for i in wins if after[i] < success]
    unit.share = len(lost) / len(wins) if wins else 0.0


def _rank(units: list[UnitReport]) -> list[UnitReport]:
    measured = sorted(
        (u for u in units if u.effect is not None),
        key=lambda u: (-(u.effect or 0.0), -(u.share or 0.0), u.unit),
    )
    for i, u in enumerate(measured, 1):
        u.rank = i
    breaking = [u for u in units if u.sign == "breaks"]
    return measured + breaking + [u for u in units if u.effect is None and u.sign != "breaks"]


def cumulative_shares(
    ranked: Sequence[UnitReport],
    base: Mapping[str, float],
    lost: Mapping[str, set[str]],
    success: float,
) -> list[CumulativeShare]:
    """For the top k units, the share of baseline successes that at least one of them carries
    (the paper's "15% of capabilities carry 80% of successes")."""
    wins = {i for i, s in base.items() if s >= success}
    measured = [u for u in ranked if u.rank is not None]
    out: list[CumulativeShare] = []
    carried: set[str] = set()
    for k, u in enumerate(measured, 1):
        carried |= lost.get(u.unit, set()) & wins
        out.append(
            CumulativeShare(
                units=k,
                fraction_of_units=k / len(measured),
                share=len(carried) / len(wins) if wins else 0.0,
            )
        )
    return out


async def attribute(
    flow: str | Path,
    data: DataSource,
    *,
    by: UnitKind = "step",
    scoring: Scoring | None = None,
    rows: RowSelection | None = None,
    run: RunConfig | None = None,
    session: Session | None = None,
    success: float = 0.5,
    prune: str | Path | None = None,
    report: str | Path | None = None,
    work_dir: str | Path | None = None,
    display: str | Progress | None = None,
    **shortcuts: Unpack[Shortcuts],
) -> AttributionReport:
    """Attribute the score of `flow` on `data` to its units (`by` step, operator or call);
    `scoring`, `rows`, `run`, `session` and the keyword shortcuts as `evaluate`. Every
    evaluation runs in one session. `prune=OUT.flow` also writes and scores the pruned flow.
    `success`: the score that counts a row as solved (for the shares of successes).
    """
    started = time.monotonic()
    path = Path(flow)
    if not path.is_file():
        raise InputError(f"There is no flow file {path}.")
    text = path.read_text(encoding="utf-8")
    program = compile_file(path)
    units = list_units(program, text, by=by)
    if not units:
        raise InputError(f"{path} has no {by} to attribute.")
    scoring, rows, run = settle(scoring, rows, run, shortcuts)
    seed = run.seed
    async with open_study(
        "attribution", data, scoring=scoring, rows=rows, run=run, session=session,
        work_dir=work_dir, display=display,
    ) as st:  # fmt: skip
        ds, say = st.dataset, st.say
        say(f"baseline: {path} on {len(ds.rows)} rows")
        baseline = await st.evaluate(path, "baseline")
        base = _scores(baseline)
        reports, lost = await _ablations(
            program, text, path, units, st, baseline, success, seed, say
        )
        pruned = None
        if prune is not None:
            say(f"pruned flow: {prune}")
            pruned = await _prune(program, text, path, Path(prune), reports, baseline, st, seed)
    ranked = _rank(reports)
    out = AttributionReport(
        flows=[str(path)],
        dataset=ds.name,
        scorer=baseline.scorer,
        by=by,
        n=baseline.n,
        baseline=baseline.mean,
        baseline_ci=(baseline.ci_low, baseline.ci_high),
        success=success,
        successes=sum(1 for s in base.values() if s >= success),
        units=ranked,
        cumulative=cumulative_shares(ranked, base, lost, success),
        model_calls=_made(baseline) + sum(u.model_calls - u.cached_calls for u in reports),
        model_calls_naive=baseline.model_calls + sum(u.model_calls for u in reports),
        cached_calls=baseline.cached_calls + sum(u.cached_calls for u in reports),
        tokens=baseline.tokens_in + baseline.tokens_out + sum(u.tokens for u in reports),
        prune=pruned,
    )
    out.wall_s = round(time.monotonic() - started, 3)
    if report is not None:
        Path(report).parent.mkdir(parents=True, exist_ok=True)
        Path(report).write_text(out.to_json() + "\n", encoding="utf-8")
    return out


def _ablated_flow(program: Any) -> Any:
    """A `Flow` of an ablated program, run from its Graph IR (no source text, no path: the
    runner must not recompile the original file)."""
    from treadle.flow import Flow

    return Flow(program.model_copy(update={"source": None}))


async def _ablations(
    program: Any,
    text: str,
    path: Path,
    units: list[Unit],
    st: Study,
    baseline: EvalReport,
    success: float,
    seed: int,
    say: Callable[[str], None],
) -> tuple[list[UnitReport], dict[str, set[str]]]:
    base, base_failed = _scores(baseline), _failed(baseline)
    reports: list[UnitReport] = []
    lost: dict[str, set[str]] = {}
    for i, u in enumerate(units):
        ur = UnitReport(
            unit=u.unit, kind=u.kind, target=u.target, removable=u.removable, reason=u.reason,
            line=u.line, flows=[str(path)],
        )  # fmt: skip
        reports.append(ur)
        if not u.removable:
            say(f"[{i + 1}/{len(units)}] {u.unit}: not removable ({u.reason})")
            continue
        try:
            ablated = ablate(program, text, u.nodes, path=path)
        except AblationError as e:
            ur.removable = False
            ur.reason = e.message
            say(f"[{i + 1}/{len(units)}] {u.unit}: not run ({e.message})")
            continue
        say(f"[{i + 1}/{len(units)}] without {u.unit} ({u.target}: {u.reason})")
        rep = await st.evaluate(_ablated_flow(ablated.program), f"u{i:03d}")
        measure(ur, base, rep, success, seed, base_failed)
        after = _scores(rep)
        lost[u.unit] = {r for r, s in base.items() if s >= success and after.get(r, s) < success}
    return reports, lost


async def _prune(
    program: Any,
    text: str,
    path: Path,
    out: Path,
    reports: list[UnitReport],
    baseline: EvalReport,
    st: Study,
    seed: int,
) -> PruneReport:
    """Write the flow without the units whose removal does not lower the score (interval
    includes 0 or is below it), least useful first, each joint removal checked on the same
    rows; check the result compiles and score it on the same rows, backing off removals while
    it scores below the original, so what is written never does."""
    candidates = [
        r for r in reports if r.removable and r.effect is not None and (r.ci_low or 0.0) <= 0.0
    ]
    units = {u.unit: u for u in list_units(program, text, by=_by(reports))}
    base = _scores(baseline)
    removed: list[str] = []
    kept: dict[str, str] = {}
    #: the flow's text after each kept removal, the original first
    texts = [text]
    for c in sorted(candidates, key=lambda r: r.effect or 0.0):
        nodes = [n for r in removed for n in units[r].nodes] + list(units[c.unit].nodes)
        try:
            ab = ablate(program, text, nodes, path=path)
        except AblationError as e:
            kept[c.unit] = e.message
            continue
        if ab.text is None:
            kept[c.unit] = "its removal has no .flow text (a constant or a list item stands in)"
            continue
        if removed:
            # units that are each dispensable may not be dispensable together (two steps that
            # both fix the answer): check the joint removal on the same rows before keeping it
            rep = await st.evaluate(_ablated_flow(ab.program), f"prune{len(removed)}")
            after = _scores(rep)
            diffs = [base[i] - after[i] for i in base if i in after]
            low = paired_bootstrap(diffs, seed=seed)[0] if diffs else 1.0
            if low > 0:
                kept[c.unit] = (
                    f"removing it together with {', '.join(removed)} lowers the score "
                    f"(interval [{low:+.3f}, ...])"
                )
                continue
        removed.append(c.unit)
        texts.append(ab.text)
    out.parent.mkdir(parents=True, exist_ok=True)
    backed_off: dict[str, str] = {}
    while True:
        out.write_text(texts[-1], encoding="utf-8")
        if not removed:
            rep = baseline  # the original itself: what it scores is the baseline
            break
        compile_file(out)  # it compiles: a CompileError here is a bug worth surfacing
        rep = await st.evaluate(out, f"pruned{len(backed_off) or ''}")
        why = _scores_lower(rep, baseline)
        if why is None:
            break
        # the candidates' intervals allow a loss the joint removal may add up to: undo the
        # latest removal and score again, down to the original
        backed_off[removed.pop()] = why
        texts.pop()
    return PruneReport(
        path=str(out),
        removed=removed,
        kept_candidates=kept,
        backed_off=backed_off,
        score=rep.mean,
        baseline=baseline.mean,
        model_calls=rep.model_calls,
        model_calls_baseline=baseline.model_calls,
        tokens=rep.tokens_in + rep.tokens_out,
        tokens_baseline=baseline.tokens_in + baseline.tokens_out,
    )


def _scores_lower(rep: EvalReport, baseline: EvalReport) -> str | None:
    """Why `rep` scores below `baseline` on the rows the baseline scored (None: it does not):
    a row it leaves unscored counts against it."""
    base, after = _scores(baseline), _scores(rep)
    missing = [i for i in base if i not in after]
    if missing:
        return f"the pruned flow leaves {len(missing)} measured rows unscored ({missing[0]}, ...)"
    old, new = sum(base.values()), sum(after[i] for i in base)
    if new < old - 1e-9 or (rep.mean or 0.0) < (baseline.mean or 0.0) - 1e-9:
        n = max(1, len(base))
        return f"the pruned flow scored {new / n:.3f} against the original's {old / n:.3f}"
    return None


def _by(reports: list[UnitReport]) -> UnitKind:
    kinds = {r.kind for r in reports}
    return "operator" if "operator" in kinds else "call" if "call" in kinds else "step"


async def attribute_library(
    library: str | Path,
    flows: Sequence[str | Path],
    data: DataSource,
    *,
    scoring: Scoring | None = None,
    rows: RowSelection | None = None,
    run: RunConfig | None = None,
    session: Session | None = None,
    success: float = 0.5,
    report: str | Path | None = None,
    work_dir: str | Path | None = None,
    display: str | Progress | None = None,
    **shortcuts: Unpack[Shortcuts],
) -> AttributionReport:
    """Credit each capability of `library` across every flow that calls it: per flow, remove
    each call of the capability; pool the paired per-row differences over all flows."""
    started = time.monotonic()
    lib = Path(library).resolve()
    lib_names = {wf.name for wf in _parse(lib.read_text(encoding="utf-8"))}
    scoring, rows, run = settle(scoring, rows, run, shortcuts)
    seed = run.seed
    pooled: dict[str, UnitReport] = {}
    diffs: dict[str, list[float]] = {}
    wins_lost: dict[str, list[int]] = {}
    made = naive = cached = tokens = 0
    base_scores: list[float] = []
    scorer = ""
    async with open_study(
        "attribution", data, scoring=scoring, rows=rows, run=run, session=session,
        work_dir=work_dir, display=display,
    ) as st:  # fmt: skip
        ds = st.dataset
        for fi, f in enumerate(flows):
            path = Path(f)
            text = path.read_text(encoding="utf-8")
            program = compile_file(path)
            units = [
                u for u in list_units(program, text, by="call") if u.unit in lib_names
                and _same_file(program, u.target, path, lib)
            ]  # fmt: skip
            if not units:
                continue
            st.say(f"baseline: {path} ({len(units)} calls of the library)")
            baseline = await st.evaluate(path, f"f{fi}-baseline")
            scorer = baseline.scorer
            base = _scores(baseline)
            base_scores += list(base.values())
            made += _made(baseline)
            naive += baseline.model_calls
            cached += baseline.cached_calls
            tokens += baseline.tokens_in + baseline.tokens_out
            for ui, u in enumerate(units):
                ur = pooled.setdefault(
                    u.unit,
                    UnitReport(unit=u.unit, kind="call", target=str(library), removable=u.removable,
                               reason=u.reason),
                )  # fmt: skip
                ur.flows.append(str(path))
                if not u.removable:
                    continue
                try:
                    ab = ablate(program, text, u.nodes, path=path)
                except AblationError as e:
                    ur.reason = e.message
                    continue
                st.say(f"{path}: without {u.unit}")
                rep = await st.evaluate(_ablated_flow(ab.program), f"f{fi}-u{ui}")
                after = _scores(rep)
                p = _pair(base, _failed(baseline), rep)
                if p.breaks:
                    ur.sign = "breaks"
                pairs = p.ids
                diffs.setdefault(u.unit, []).extend(base[i] - after[i] for i in pairs)
                w = [i for i in pairs if base[i] >= success]
                counts = wins_lost.setdefault(u.unit, [0, 0])
                counts[0] += len(w)
                counts[1] += sum(1 for i in w if after[i] < success)
                made += _made(rep)
                naive += rep.model_calls
                cached += rep.cached_calls
                tokens += rep.tokens_in + rep.tokens_out
                ur.model_calls += rep.model_calls
                ur.cached_calls += rep.cached_calls
                ur.failed += rep.failed
                ur.errors += rep.errors
    for name, d in diffs.items():
        ur = pooled[name]
        ur.rows = len(d)
        if d and ur.sign != "breaks":
            ur.effect = sum(d) / len(d)
            ur.ci_low, ur.ci_high = paired_bootstrap(d, seed=seed)
            ur.sign = "helps" if ur.ci_low > 0 else "hurts" if ur.ci_high < 0 else "none"
            n_wins, n_lost = wins_lost[name]
            ur.share = n_lost / n_wins if n_wins else 0.0
    ranked = _rank(list(pooled.values()))
    out = AttributionReport(
        flows=[str(f) for f in flows],
        dataset=ds.name,
        scorer=scorer,
        by="call",
        n=len(base_scores),
        baseline=sum(base_scores) / len(base_scores) if base_scores else None,
        success=success,
        successes=sum(1 for s in base_scores if s >= success),
        units=ranked,
        model_calls=made,
        model_calls_naive=naive,
        cached_calls=cached,
        tokens=tokens,
    )
    out.wall_s = round(time.monotonic() - started, 3)
    if report is not None:
        Path(report).parent.mkdir(parents=True, exist_ok=True)
        Path(report).write_text(out.to_json() + "\n", encoding="utf-8")
    return out


def _parse(text: str) -> list[Any]:
    from treadle.compiler.parsing import parse

    return parse(text)[0].workflows


def _same_file(program: Any, key: str, flow: Path, lib: Path) -> bool:
    """Whether the called workflow comes from the library file (by its spans' file)."""
    wf = program.workflows[key]
    for n in wf.graph.nodes:
        if n.span is not None and n.span.file:
            p = Path(n.span.file)
            p = p if p.is_absolute() else (flow.parent / p)
            return p.resolve() == lib or Path(n.span.file).resolve() == lib
    return True


def attribute_sync(*args: Any, **kwargs: Any) -> AttributionReport:
    """`attribute` for code without an event loop."""
    return asyncio.run(attribute(*args, **kwargs))
