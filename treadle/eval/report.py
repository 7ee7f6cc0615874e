"""What an evaluation reports: one `RowReport` per row (epochs reduced) and the `EvalReport`.

The report is a pure function of the per-epoch results (`build_report`), which is why a resumed
run, reading half its rows back from the results file, reports exactly what an uninterrupted
run does. Errors (infrastructure) are counted apart and kept out of `mean`; failures (the
workflow's own) score 0 and stay in.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any, Literal

import orjson
from pydantic import BaseModel, Field

from treadle.eval.stats import (
    mean_interval,
    pass_at_k,
    percentile,
    wilson_interval,
)

__all__ = [
    "EvalReport",
    "RowReport",
    "StepStats",
    "build_report",
    "mean_interval",
    "reduce_epochs",
    "wilson_interval",
]

Status = Literal["ok", "failed", "error"]
REDUCERS = ("mean", "max", "majority", "pass@k")


class StepStats(BaseModel):
    """One step's statistics over the rows: from the run traces."""

    runs: int = 0
    failures: int = 0
    skips: int = 0
    mean_latency_s: float = 0.0
    tokens_in: int = 0
    tokens_out: int = 0
    #: the sum of latencies, so stats of several rows add up exactly
    total_latency_s: float = 0.0

    def add(self, other: StepStats) -> None:
        self.runs += other.runs
        self.failures += other.failures
        self.skips += other.skips
        self.tokens_in += other.tokens_in
        self.tokens_out += other.tokens_out
        self.total_latency_s += other.total_latency_s
        timed = self.runs - self.skips
        self.mean_latency_s = self.total_latency_s / timed if timed > 0 else 0.0


class RowReport(BaseModel):
    """One row (one epoch of it in the results file; epochs reduced in the report)."""

    id: str
    epoch: int = 0
    inputs_digest: str = ""
    #: the scored output (the workflow's `output` field, by default its first declared output)
    output: Any = None
    #: every output of the workflow
    outputs: dict[str, Any] = Field(default_factory=dict)
    target: Any = None
    scores: dict[str, float] = Field(default_factory=dict)
    #: the primary scorer's score; None when status == "error"
    score: float | None = None
    status: Status = "ok"
    error: str | None = None
    #: what kind of failure or error it was (e.g. StepFailed/ModelError, timeout)
    error_kind: str | None = None
    explanations: dict[str, str] = Field(default_factory=dict)
    #: the row's trace: the stream file, the trace id and the offset of its last block
    #: (`read_trace(trace_path, trace_id, offset=trace_offset)`; `treadle trace show`)
    trace_path: str | None = None
    trace_id: str | None = None
    trace_offset: int | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    model_calls: int = 0
    cached_calls: int = 0
    sandbox_runs: int = 0
    latency_s: float = 0.0
    steps: dict[str, StepStats] = Field(default_factory=dict)
    seed: int | None = None
    #: how many epochs were reduced into this row (the report); 1 in the results file
    epochs: int = 1


class EvalReport(BaseModel):
    """The evaluation's summary; `rows` holds one reduced `RowReport` per dataset row."""

    flow: str = ""
    dataset: str = ""
    model: str | None = None
    scorer: str = ""
    epochs: int = 1
    reducer: str = "mean"
    n: int = 0
    scored: int = 0
    failed: int = 0
    errors: int = 0
    mean: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    model_calls: int = 0
    cached_calls: int = 0
    sandbox_runs: int = 0
    latency_p50_s: float = 0.0
    latency_p95_s: float = 0.0
    wall_s: float = 0.0
    scorers: dict[str, float] = Field(default_factory=dict)
    steps: dict[str, StepStats] = Field(default_factory=dict)
    #: the run stopped early: --max-errors was exceeded (rows not run are not in `rows`)
    stopped: str | None = None
    results_path: str | None = None
    rows: list[RowReport] = Field(default_factory=list)

    def to_json(self, *, indent: bool = True) -> bytes:
        option = orjson.OPT_INDENT_2 if indent else 0
        return orjson.dumps(
            self.model_dump(mode="json"), option=option | orjson.OPT_SERIALIZE_NUMPY
        )

    def summary(self) -> dict[str, Any]:
        """The report without its rows (what comparisons and logs print)."""
        return self.model_dump(mode="json", exclude={"rows"})


def _reduce_values(values: list[float], reducer: str, k: int) -> float:
    if reducer == "mean":
        return sum(values) / len(values)
    if reducer == "max":
        return max(values)
    if reducer == "majority":
        counts = Counter(values)
        top = max(counts.values())
        # ties: the lowest of the most common values (a pessimistic, deterministic choice)
        return min(v for v, c in counts.items() if c == top)
    if reducer.startswith("pass@"):
        return pass_at_k(len(values), sum(1 for v in values if v >= 1.0), k)
    raise ValueError(f"unknown reducer {reducer!r}")


def parse_reducer(reducer: str, epochs: int) -> tuple[str, int]:
    """("pass@k", k) for "pass@3"; k defaults to 1 for "pass@k"; (name, 0) for the others."""
    if reducer.startswith("pass@"):
        text = reducer[5:]
        k = 1 if text in ("", "k") else int(text)
        if k < 1 or k > max(1, epochs):
            raise ValueError(f"pass@{k} needs 1 <= k <= epochs ({epochs})")
        return "pass@", k
    if reducer not in REDUCERS:
        raise ValueError(f"unknown reducer {reducer!r}; use mean, max, majority or pass@K")
    return reducer, 0


def reduce_epochs(epochs: Sequence[RowReport], reducer: str = "mean") -> RowReport:
    """One row's epochs → one row: scores reduced over the epochs that were not errors.

    The row is an error only when every epoch was; its counters are sums over all epochs.
    One epoch is the row itself, copied shallowly with its own step counters (deep copies of
    10,000 rows were most of the time a report of them took to build).
    """
    ordered = sorted(epochs, key=lambda r: r.epoch)
    name, k = parse_reducer(reducer, len(ordered))
    if len(ordered) == 1:
        only = ordered[0]
        own = {step: st.model_copy() for step, st in only.steps.items()}
        return only.model_copy(update={"epochs": 1, "steps": own})
    good = [r for r in ordered if r.status != "error"]
    first = good[0] if good else ordered[0]
    row = first.model_copy(deep=True)
    row.epochs = len(ordered)
    row.tokens_in = sum(r.tokens_in for r in ordered)
    row.tokens_out = sum(r.tokens_out for r in ordered)
    row.model_calls = sum(r.model_calls for r in ordered)
    row.cached_calls = sum(r.cached_calls for r in ordered)
    row.sandbox_runs = sum(r.sandbox_runs for r in ordered)
    row.latency_s = sum(r.latency_s for r in ordered)
    steps: dict[str, StepStats] = {}
    for r in ordered:
        for step, st in r.steps.items():
            steps.setdefault(step, StepStats()).add(st)
    row.steps = steps
    if not good:
        return row
    names = list(good[0].scores)
    row.scores = {s: _reduce_values([r.scores.get(s, 0.0) for r in good], name, k) for s in names}
    row.score = row.scores[names[0]] if names else None
    row.status = "ok" if any(r.status == "ok" for r in good) else "failed"
    return row


def build_report(
    epoch_rows: Iterable[RowReport],
    *,
    reducer: str = "mean",
    order: Sequence[str] | None = None,
    **meta: Any,
) -> EvalReport:
    """The report from per-epoch results (a later result of the same (id, epoch) wins)."""
    latest: dict[tuple[str, int], RowReport] = {}
    for r in epoch_rows:
        latest[(r.id, r.epoch)] = r
    by_id: dict[str, list[RowReport]] = {}
    for (rid, _), r in latest.items():
        by_id.setdefault(rid, []).append(r)
    ids = [i for i in order if i in by_id] if order is not None else sorted(by_id, key=_id_key)
    rows = [reduce_epochs(by_id[i], reducer) for i in ids]
    report = EvalReport(reducer=reducer, **meta)
    report.rows = rows
    report.n = len(rows)
    report.errors = sum(1 for r in rows if r.status == "error")
    report.failed = sum(1 for r in rows if r.status == "failed")
    scored = [r for r in rows if r.status != "error" and r.score is not None]
    report.scored = len(scored)
    if scored:
        values = [float(r.score) for r in scored if r.score is not None]
        report.mean = sum(values) / len(values)
        report.ci_low, report.ci_high = mean_interval(values)
        names = list(scored[0].scores)
        report.scorers = {s: sum(r.scores.get(s, 0.0) for r in scored) / len(scored) for s in names}
    for r in rows:
        report.tokens_in += r.tokens_in
        report.tokens_out += r.tokens_out
        report.model_calls += r.model_calls
        report.cached_calls += r.cached_calls
        report.sandbox_runs += r.sandbox_runs
        for step, st in r.steps.items():
            report.steps.setdefault(step, StepStats()).add(st)
    latencies = [r.latency_s for r in latest.values() if r.status != "error"]
    report.latency_p50_s = round(percentile(latencies, 50), 4)
    report.latency_p95_s = round(percentile(latencies, 95), 4)
    return report


def _id_key(rid: str) -> tuple[int, int | str]:
    return (0, int(rid)) if rid.isdigit() else (1, rid)
