"""Stratified few-shot sampling (SCALE): proportions, every stratum covered, deterministic."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from treadle.studies.stratify import (
    allocate,
    difficulty,
    sample_size,
    strata,
    stratified_mean,
    stratified_sample,
)

row_strata = st.dictionaries(
    st.text("abcdefgh0123456789", min_size=1, max_size=6), st.integers(0, 3), min_size=1
)


@settings(max_examples=200, deadline=None)
@given(row_strata, st.integers(1, 60), st.integers(0, 10_000))
def test_sample_covers_every_stratum_in_proportion(rows: dict[str, int], n: int, seed: int) -> None:
    sizes: dict[int, int] = {}
    for s in rows.values():
        sizes[s] = sizes.get(s, 0) + 1
    k = min(len(rows), max(n, len(sizes)))  # what sample_size would ask for
    picked = stratified_sample(rows, k, seed=seed)
    assert len(picked) == len(set(picked)) == k
    got: dict[int, int] = {}
    for i in picked:
        got[rows[i]] = got.get(rows[i], 0) + 1
    assert set(got) == set(sizes)  # every non-empty stratum has a row
    for s, c in got.items():
        quota = k * sizes[s] / len(rows)
        assert c <= sizes[s]
        if quota >= 1:
            # proportional: within one row of the quota, except rows given to tiny strata
            bumped = sum(1 for t in sizes if k * sizes[t] / len(rows) < 1)
            assert abs(c - quota) < 1 + bumped
    assert stratified_sample(rows, k, seed=seed) == picked  # deterministic with a seed


@given(st.dictionaries(st.integers(0, 5), st.integers(1, 50), min_size=1), st.integers(1, 100))
def test_allocation_sums_and_respects_sizes(sizes: dict[int, int], n: int) -> None:
    alloc = allocate(sizes, n)
    assert sum(alloc.values()) == min(n, sum(sizes.values()))
    assert all(0 <= alloc[s] <= sizes[s] for s in sizes)
    if n >= len(sizes):
        assert all(alloc[s] >= 1 for s in sizes)


def test_proportional_allocation_exact() -> None:
    assert allocate({0: 50, 1: 30, 2: 20}, 10) == {0: 5, 1: 3, 2: 2}
    assert allocate({0: 97, 1: 2, 2: 1}, 5) == {0: 3, 1: 1, 2: 1}


def test_difficulty_strata_and_size() -> None:
    d = difficulty([{"a": 1.0, "b": 0.0, "c": 1.0}, {"a": 1.0, "b": 0.0, "c": 0.0}], "abcd")
    assert d == {"a": 0.0, "b": 1.0, "c": 0.5, "d": 0.5}
    assert strata(d, 3) == {"a": 0, "b": 2, "c": 1, "d": 1}
    assert sample_size(164, 0.03, 5, 3) == 5
    assert sample_size(1000, 0.03, 5, 3) == 30
    assert sample_size(4, 0.03, 5, 3) == 4


def test_stratified_mean_weights_strata_by_size() -> None:
    row_strata = {"a": 0, "b": 0, "c": 0, "d": 1}
    # one sampled row per stratum: the big stratum counts 3/4
    assert stratified_mean({"a": 1.0, "d": 0.0}, row_strata) == 0.75
