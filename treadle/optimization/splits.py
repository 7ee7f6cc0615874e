"""Validation and test rows, kept apart: validation drives the search; the test split is run
once, at the end, on the final choices only, and never reaches the optimizer model.

AFlow's users found test rows in the search (#41). Here the two splits are checked not to
share a row (by a digest of its inputs and target, so a copy under another id is caught), and
a flow whose text quotes a test row's input is reported (a leak the optimizer could exploit).
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

import orjson

from treadle.errors import InputError
from treadle.eval.datasets import Dataset, Row

#: inputs shorter than this are too common to call a quotation a leak ("yes", "2")
LEAK_MIN_CHARS = 24


def row_digest(row: Row) -> str:
    """What a row says (its inputs and target), whatever its id."""
    columns = {k: v for k, v in row.columns.items() if k != "id"}
    body = orjson.dumps([columns, row.target], option=orjson.OPT_SORT_KEYS, default=str)
    return hashlib.sha256(body).hexdigest()[:24]


@dataclass(frozen=True)
class Splits:
    val: Dataset
    test: Dataset

    def check(self) -> None:
        """Refuse splits that share a row (by content)."""
        val = {row_digest(r): r.id for r in self.val.rows}
        shared = [(val[d], r.id) for r in self.test.rows if (d := row_digest(r)) in val]
        if shared:
            pairs = ", ".join(f"{a}={b}" for a, b in shared[:5])
            raise InputError(
                f"The validation and test rows overlap ({len(shared)} shared by content: "
                f"{pairs}); a score on the test split would not be a held-out score."
            )

    def leaks(self, flow_text: str) -> list[str]:
        """Ids of test rows whose input text the flow quotes."""
        out = []
        for r in self.test.rows:
            for key, value in r.columns.items():
                if (
                    key != "id"
                    and isinstance(value, str)
                    and len(value) >= LEAK_MIN_CHARS
                    and value in flow_text
                ):
                    out.append(r.id)
                    break
        return out


def split(data: Dataset, test: Dataset | None, val_share: float, seed: int) -> Splits:
    """`test` given: all of `data` validates; otherwise a seeded shuffle puts `val_share` of
    `data` in validation and the rest in test (at least one row each)."""
    if test is not None:
        out = Splits(data, test)
    else:
        if len(data.rows) < 2:
            raise InputError(
                f"The dataset {data.name} has {len(data.rows)} row(s): a search needs validation "
                "and test rows (give --test DATA2, or more rows)."
            )
        order = list(data.rows)
        random.Random(f"split:{seed}").shuffle(order)
        n_val = min(len(order) - 1, max(1, round(val_share * len(order))))
        val_ids = {r.id for r in order[:n_val]}
        keep = [r for r in data.rows if r.id in val_ids]
        rest = [r for r in data.rows if r.id not in val_ids]
        out = Splits(_subset(data, keep, "val"), _subset(data, rest, "test"))
    out.check()
    return out


def _subset(data: Dataset, rows: list[Row], part: str) -> Dataset:
    return Dataset(rows, f"{data.name}[{part}]", target=data.target, input_map=data.input_map)


__all__ = ["Splits", "row_digest", "split"]
