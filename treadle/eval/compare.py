"""Compare two evaluation reports on the rows they share: the paired difference of scores with a
95% paired-bootstrap interval, and a verdict (which is better, or not significant).

Paired, because both runs saw the same rows: row difficulty cancels out, so a real difference
shows with far fewer rows than comparing two independent means would need.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import orjson
from pydantic import BaseModel

from treadle.errors import InputError
from treadle.eval.report import EvalReport
from treadle.eval.stats import paired_bootstrap


class Comparison(BaseModel):
    a: str
    b: str
    common: int
    only_a: int
    only_b: int
    mean_a: float | None
    mean_b: float | None
    #: mean of (b - a) over the common scored rows
    diff: float | None
    ci_low: float | None
    ci_high: float | None
    verdict: Literal["a", "b", "not significant", "no common rows"]
    message: str
    wins_b: int = 0
    wins_a: int = 0
    ties: int = 0


def load_report(path: str | Path) -> EvalReport:
    p = Path(path)
    if not p.is_file():
        raise InputError(f"There is no report file {p}.")
    try:
        return EvalReport.model_validate(orjson.loads(p.read_bytes()))
    except (orjson.JSONDecodeError, ValueError) as e:
        first = str(e).splitlines()[0]
        raise InputError(
            f"{p} is not an evaluation report (`treadle eval --report OUT.json` writes one): "
            f"{first}"
        ) from None


def compare(
    a: EvalReport | str | Path,
    b: EvalReport | str | Path,
    *,
    resamples: int = 10_000,
    seed: int = 0,
) -> Comparison:
    """B against A: positive `diff` means B scores higher."""
    name_a = str(a) if not isinstance(a, EvalReport) else (a.flow or "A")
    name_b = str(b) if not isinstance(b, EvalReport) else (b.flow or "B")
    ra = a if isinstance(a, EvalReport) else load_report(a)
    rb = b if isinstance(b, EvalReport) else load_report(b)
    sa = {r.id: r.score for r in ra.rows if r.status != "error" and r.score is not None}
    sb = {r.id: r.score for r in rb.rows if r.status != "error" and r.score is not None}
    common = [i for i in sa if i in sb]
    only_a, only_b = len(set(sa) - set(sb)), len(set(sb) - set(sa))
    if not common:
        return Comparison(
            a=name_a, b=name_b, common=0, only_a=only_a, only_b=only_b, mean_a=None,
            mean_b=None, diff=None, ci_low=None, ci_high=None, verdict="no common rows",
            message="The two reports share no scored rows; nothing to compare.",
        )  # fmt: skip
    diffs = [float(sb[i]) - float(sa[i]) for i in common]
    mean_a = sum(float(sa[i]) for i in common) / len(common)
    mean_b = sum(float(sb[i]) for i in common) / len(common)
    diff = sum(diffs) / len(diffs)
    lo, hi = paired_bootstrap(diffs, resamples=resamples, seed=seed)
    if lo > 0:
        verdict: Literal["a", "b", "not significant"] = "b"
        message = f"B is better by {diff:+.3f} (95% CI [{lo:+.3f}, {hi:+.3f}])."
    elif hi < 0:
        verdict = "a"
        message = f"A is better by {-diff:+.3f} (B - A: 95% CI [{lo:+.3f}, {hi:+.3f}])."
    else:
        verdict = "not significant"
        message = (
            f"The difference B - A = {diff:+.3f} is not significant "
            f"(95% CI [{lo:+.3f}, {hi:+.3f}] contains 0)."
        )
    return Comparison(
        a=name_a, b=name_b, common=len(common), only_a=only_a, only_b=only_b,
        mean_a=mean_a, mean_b=mean_b, diff=diff, ci_low=lo, ci_high=hi, verdict=verdict,
        message=message, wins_b=sum(d > 0 for d in diffs), wins_a=sum(d < 0 for d in diffs),
        ties=sum(d == 0 for d in diffs),
    )  # fmt: skip
