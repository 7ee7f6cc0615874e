"""What `treadle view` shows: the files and folders given, sorted into sources by kind.

A source is one thing a page shows: an evaluation (a results file, or a report when its
results file is not at hand), a trace, an attribution or rank report, an optimize run
folder. Kinds are told apart by content, not by name, and each file is peeked at once per
change (its first line or its top-level keys), so a folder of many runs opens quickly.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

import orjson

from treadle.errors import InputError

Kind = Literal["eval", "trace", "attribution", "ranking", "optimize"]
#: the file an optimize run folder is recognised by (`treadle optimize` writes it first)
OPTIMIZE_MARKER = "state.json"
#: how much of a JSON report is read to tell its kind (reports open with their summary keys)
_PEEK = 1 << 16


@dataclasses.dataclass(frozen=True)
class Source:
    id: str
    kind: Kind
    path: Path
    #: what lists show: the run's flow or the file's name
    title: str
    #: a report's results file (the same run, listed once: as its results file)
    results_of: Path | None = None

    def stamp(self) -> tuple[int, int]:
        """Changes whenever the file does (a running evaluation appends rows)."""
        target = self.path / OPTIMIZE_MARKER if self.kind == "optimize" else self.path
        try:
            st = target.stat()
        except OSError:
            return (0, 0)
        return (st.st_mtime_ns, st.st_size)


def source_id(path: Path) -> str:
    """A short id stable across restarts (it names the page in the URL)."""
    return hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:10]


def classify(path: Path) -> Kind | None:
    """The kind of a file or folder, by its content; None for anything else."""
    if path.is_dir():
        return "optimize" if (path / OPTIMIZE_MARKER).is_file() else None
    if path.suffix == ".jsonl":
        first = _first_line(path)
        if first is None:
            return None
        if first.get("kind") == "header":
            return "eval"
        if first.get("event") in ("trace", "start", "span", "end", "stream"):
            return "trace"
        return None
    if path.suffix == ".json":
        keys = _json_keys(path)
        if {"rows", "scorer", "mean"} <= keys:
            return "eval"
        if {"units", "by", "baseline"} <= keys:
            return "attribution"
        if {"flows", "tau", "tokens_spent"} <= keys:
            return "ranking"
    return None


def _first_line(path: Path) -> dict[str, object] | None:
    try:
        with path.open("rb") as f:
            line = f.readline(_PEEK)
        item = orjson.loads(line)
    except (OSError, orjson.JSONDecodeError):
        return None
    return item if isinstance(item, dict) else None


def _json_keys(path: Path) -> set[str]:
    try:
        item = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return set()
    return set(item) if isinstance(item, dict) else set()


def _title(path: Path, kind: Kind) -> str:
    if kind == "eval" and path.suffix == ".jsonl":
        head = _first_line(path) or {}
        flow = Path(str(head.get("flow") or path.stem)).name
        dataset = Path(str(head.get("dataset") or "?")).name
        return f"{flow} on {dataset} ({path.parent.name}/{path.name})"
    return path.name if kind != "optimize" else f"{path.name}/"


def _walk(folder: Path) -> Iterable[Path]:
    """Every candidate under `folder`; an optimize folder is one source, and a results file's
    `-traces` folder is reached from its rows rather than listed trace by trace."""
    for root, dirs, files in os.walk(folder):
        here = Path(root)
        if (here / OPTIMIZE_MARKER).is_file() and here != folder:
            yield here
        names = set(files)
        dirs[:] = sorted(
            d
            for d in dirs
            if not (d.endswith("-traces") and f"{d[: -len('-traces')]}.jsonl" in names)
        )
        for name in sorted(files):
            if name.endswith((".json", ".jsonl")) and name != OPTIMIZE_MARKER:
                yield here / name


@dataclasses.dataclass
class Catalog:
    """The sources under the given paths, found again on `refresh` (a new run appears)."""

    paths: list[Path]
    sources: dict[str, Source] = dataclasses.field(default_factory=dict)

    @classmethod
    def of(cls, paths: Sequence[str | os.PathLike[str]]) -> Catalog:
        given = [Path(p) for p in paths] or [Path(".treadle")]
        missing = [str(p) for p in given if not p.exists()]
        if missing:
            raise InputError(
                f"There is nothing at {', '.join(missing)} to view; give eval results or "
                "reports, traces, attribution or rank reports, optimize run folders, or a "
                "folder holding them (default .treadle/)."
            )
        catalog = cls(given)
        catalog.refresh()
        for p in given:
            if p.is_file() and classify(p) is None:
                raise InputError(
                    f"{p} is not a file treadle view reads (an eval results .jsonl or report "
                    ".json, a trace .jsonl, an attribution or rank report .json)."
                )
        return catalog

    def refresh(self) -> None:
        found: dict[str, Source] = {}
        for given in self.paths:
            candidates = [given] if given.is_file() else _candidates(given)
            for path in candidates:
                sid = source_id(path)
                old = self.sources.get(sid)
                if old is not None:
                    found[sid] = old
                    continue
                kind = classify(path)
                if kind is not None:
                    found[sid] = Source(sid, kind, path, _title(path, kind), _linked(path, kind))
        self.sources = _without_shadowed_reports(found)

    def get(self, sid: str) -> Source | None:
        return self.sources.get(sid)

    def single(self) -> Source | None:
        """The one run a lone file argument names (its page opens directly)."""
        if len(self.paths) == 1 and self.paths[0].is_file() and len(self.sources) == 1:
            return next(iter(self.sources.values()))
        return None


def _candidates(folder: Path) -> list[Path]:
    if (folder / OPTIMIZE_MARKER).is_file():
        return [folder]
    return list(_walk(folder))


def _linked(path: Path, kind: Kind) -> Path | None:
    if kind != "eval" or path.suffix != ".json":
        return None
    try:
        linked = orjson.loads(path.read_bytes()).get("results_path")
    except (OSError, orjson.JSONDecodeError, AttributeError):
        return None
    return resolve_beside(Path(linked), path) if isinstance(linked, str) else None


def _without_shadowed_reports(found: dict[str, Source]) -> dict[str, Source]:
    """A report whose results file is also listed is the same run: keep the results file,
    which grows while the run goes on."""
    results = {
        s.path.resolve() for s in found.values() if s.kind == "eval" and s.results_of is None
    }
    return {
        sid: s for sid, s in found.items() if s.results_of is None or s.results_of not in results
    }


def resolve_beside(path: Path, beside: Path) -> Path:
    """A path a run recorded relative to where it was started (a report's results file, a
    row's trace): found from here, or beside the file that recorded it, where runs put them."""
    if path.is_absolute():
        return path
    for candidate in (path, beside.parent / path, beside.parent / path.parent.name / path.name):
        if candidate.exists():
            return candidate.resolve()
    return path.resolve()
