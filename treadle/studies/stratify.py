"""Row difficulty from warm-up runs, difficulty strata, and a stratified few-shot sample.

Why (SCALE, arXiv 2601.11147): a few rows scored by a new workflow predict its full score only
if they span the difficulties of the dataset. Warm-up flows run in full give each row an
empirical difficulty (1 − its mean score over them); rows are binned into strata; the few-shot
sample takes rows from every stratum in proportion to its size.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence


def difficulty(scores: Sequence[Mapping[str, float]], ids: Sequence[str]) -> dict[str, float]:
    """Each row's difficulty in [0, 1]: 1 − its mean score over the warm-up runs that scored it
    (a row no warm-up run scored, because each ended in an error, gets 0.5)."""
    out: dict[str, float] = {}
    for i in ids:
        seen = [s[i] for s in scores if i in s]
        out[i] = 1.0 - sum(seen) / len(seen) if seen else 0.5
    return out


def strata(difficulties: Mapping[str, float], k: int = 3) -> dict[str, int]:
    """Bin rows into `k` equal-width difficulty bands: stratum `min(k − 1, floor(d · k))`
    (with two warm-up flows and 0/1 scores the bands are exactly "both solve", "one solves",
    "neither solves")."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    return {i: min(k - 1, max(0, math.floor(d * k))) for i, d in difficulties.items()}


def sample_size(n_rows: int, ratio: float, minimum: int, n_strata: int) -> int:
    """`ratio` of the rows, at least `minimum` and one per non-empty stratum, at most all."""
    want = max(math.ceil(ratio * n_rows), minimum, n_strata)
    return min(n_rows, want)


def allocate(sizes: Mapping[int, int], n: int) -> dict[int, int]:
    """How many rows each stratum gives: proportional by largest remainder (Hamilton), then
    every non-empty stratum that got none takes one from the stratum most above its quota."""
    total = sum(sizes.values())
    nonempty = {s: c for s, c in sizes.items() if c > 0}
    if n <= 0 or total == 0:
        return dict.fromkeys(sizes, 0)
    n = min(n, total)
    quota = {s: n * c / total for s, c in nonempty.items()}
    alloc = {s: math.floor(q) for s, q in quota.items()}
    left = n - sum(alloc.values())
    for s in sorted(nonempty, key=lambda s: (-(quota[s] - alloc[s]), s))[:left]:
        alloc[s] += 1
    if n >= len(nonempty):
        for s in sorted(nonempty):
            if alloc[s] == 0:
                donor = max(
                    (d for d in alloc if alloc[d] > 1), key=lambda d: (alloc[d] - quota[d], -d)
                )
                alloc[donor] -= 1
                alloc[s] = 1
    return {s: alloc.get(s, 0) for s in sizes}


def stratified_sample(row_strata: Mapping[str, int], n: int, *, seed: int = 0) -> list[str]:
    """`n` row ids drawn without replacement, allocated over strata by `allocate`; the same
    seed gives the same sample. Ids come back in the order of `row_strata`."""
    by: dict[int, list[str]] = {}
    for i, s in row_strata.items():
        by.setdefault(s, []).append(i)
    alloc = allocate({s: len(v) for s, v in by.items()}, n)
    rng = random.Random(seed)
    chosen: set[str] = set()
    for s in sorted(by):
        chosen.update(rng.sample(sorted(by[s]), alloc[s]))
    return [i for i in row_strata if i in chosen]


def stratified_mean(scores: Mapping[str, float], row_strata: Mapping[str, int]) -> float | None:
    """The mean of sampled scores with each stratum weighted by its share of the dataset (so
    the one row forced from a small stratum does not over-count it)."""
    sizes: dict[int, int] = {}
    for s in row_strata.values():
        sizes[s] = sizes.get(s, 0) + 1
    per: dict[int, list[float]] = {}
    for i, v in scores.items():
        if i in row_strata:
            per.setdefault(row_strata[i], []).append(v)
    if not per:
        return None
    weight = sum(sizes[s] for s in per)
    return sum(sizes[s] / weight * (sum(v) / len(v)) for s, v in per.items())
