"""The JSON each page is drawn from, built from the files the runs wrote.

The server answers API paths with these (`Views.answer`), and the static export stores the
same answers in the page: one function per answer, so a served page and an exported one show
the same numbers. An evaluation is read through `treadle.eval` (its report is `build_report`
of the results file's rows, exactly what `treadle eval` reports); a trace through
`treadle.runtime.tracing.read_trace`.
"""

from __future__ import annotations

import dataclasses
import functools
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import orjson

from treadle.errors import InputError
from treadle.eval.compare import compare
from treadle.eval.report import EvalReport, RowReport
from treadle.studies.attribution import AttributionReport
from treadle.studies.ranking import RankReport
from treadle.view.catalog import Catalog, Source, resolve_beside
from treadle.view.optimize import optimize_payload
from treadle.view.runs import read_eval
from treadle.view.traces import load_trace, trace_payload

#: characters of an output, target or error the rows table shows (the row page shows all)
CELL = 160
#: resamples of the paired bootstrap on the compare page (the CLI's 10,000 takes seconds on
#: thousands of rows; 2,000 moves the interval's ends by well under 0.01)
COMPARE_RESAMPLES = 2000
#: answers kept (pages, rows opened); the oldest goes first
_CACHED = 512


def _text(value: Any, limit: int = CELL) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value, default=str).decode()
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def load_eval(src: Source) -> tuple[EvalReport, list[RowReport], dict[str, Any]]:
    """The run as its file is now: read once per change, shared by its page and its rows."""
    return _read_eval(src.path, src.stamp())


@functools.lru_cache(maxsize=8)
def _read_eval(
    path: Path, stamp: tuple[int, int]
) -> tuple[EvalReport, list[RowReport], dict[str, Any]]:
    return read_eval(path)


def _row_cells(row: RowReport) -> dict[str, Any]:
    return {
        "id": row.id,
        "status": row.status,
        "score": row.score,
        "scores": row.scores,
        "output": _text(row.output),
        "target": _text(row.target),
        "error": _text((row.error or "").split("\n")[0]) if row.error else "",
        "error_kind": row.error_kind,
        "tokens": row.tokens_in + row.tokens_out,
        "model_calls": row.model_calls,
        "cached_calls": row.cached_calls,
        "latency_s": round(row.latency_s, 4),
        "epochs": row.epochs,
    }


def eval_payload(src: Source) -> dict[str, Any]:
    report, _, header = load_eval(src)
    return {
        "kind": "eval",
        "id": src.id,
        "title": src.title,
        "path": str(src.path),
        "header": header,
        "summary": report.summary(),
        "scorers": list(report.scorers) or [report.scorer],
        "rows": [_row_cells(r) for r in report.rows],
    }


def row_payload(src: Source, row_id: str) -> dict[str, Any]:
    """One row: every epoch's outputs, target, scores with explanations, and its trace."""
    report, epoch_rows, _ = load_eval(src)
    reduced = next((r for r in report.rows if r.id == row_id), None)
    if reduced is None:
        raise KeyError(row_id)
    epochs = sorted((r for r in epoch_rows if r.id == row_id), key=lambda r: r.epoch)
    out = []
    for r in epochs:
        item = r.model_dump(mode="json")
        trace = _row_trace(src, r)
        item["trace"] = trace
        item["inputs"] = _inputs_of(trace)
        out.append(item)
    return {"kind": "row", "source": src.id, "row": reduced.model_dump(mode="json"), "epochs": out}


def _row_trace(src: Source, row: RowReport) -> dict[str, Any] | None:
    if not row.trace_path:
        return None
    path = resolve_beside(Path(row.trace_path), src.path)
    try:
        return trace_payload(load_trace(path, row.trace_id, row.trace_offset))
    except (OSError, InputError):
        return {"missing": str(row.trace_path)}


def _inputs_of(trace: dict[str, Any] | None) -> Any:
    """The row's inputs as its run recorded them (the workflow span's inputs)."""
    for span in (trace or {}).get("spans", []):
        if span["kind"] == "workflow" and span["depth"] == 0:
            return span["inputs"]
    return None


def compare_payload(a: Source, b: Source) -> dict[str, Any]:
    """`treadle eval compare` of two runs, and their common rows side by side."""
    ra, _, _ = load_eval(a)
    rb, _, _ = load_eval(b)
    result = compare(ra, rb, resamples=COMPARE_RESAMPLES)
    result.a, result.b = a.title, b.title
    by_b = {r.id: r for r in rb.rows}
    rows = []
    for r in ra.rows:
        other = by_b.get(r.id)
        if other is None:
            continue
        diff = None if r.score is None or other.score is None else other.score - r.score
        rows.append({"id": r.id, "a": r.score, "b": other.score, "diff": diff,
                     "status_a": r.status, "status_b": other.status,
                     "output_a": _text(r.output), "output_b": _text(other.output)})  # fmt: skip
    return {"kind": "compare", "a": a.id, "b": b.id, "result": result.model_dump(mode="json"),
            "rows": rows}  # fmt: skip


def attribution_payload(src: Source) -> dict[str, Any]:
    report = AttributionReport.model_validate_json(src.path.read_bytes())
    data = report.model_dump(mode="json")
    data["units"] = sorted(
        data["units"], key=lambda u: (u["rank"] is None, u["rank"] or 0, -(u["effect"] or 0))
    )
    return {"kind": "attribution", "id": src.id, "title": src.title, "report": data}


def ranking_payload(src: Source) -> dict[str, Any]:
    report = RankReport.model_validate_json(src.path.read_bytes())
    data = report.model_dump(mode="json")
    data["flows"] = sorted(data["flows"], key=lambda f: (f["rank"] is None, f["rank"] or 0))
    verified = [f for f in report.flows if f.full is not None and f.score is not None]
    return {"kind": "ranking", "id": src.id, "title": src.title, "report": data,
            "verified": len(verified)}  # fmt: skip


def standalone_trace(src: Source) -> dict[str, Any]:
    return {"kind": "trace", "id": src.id, "title": src.title,
            "trace": trace_payload(load_trace(src.path))}  # fmt: skip


_BUILDERS: dict[str, Callable[[Source], dict[str, Any]]] = {
    "eval": eval_payload,
    "trace": standalone_trace,
    "attribution": attribution_payload,
    "ranking": ranking_payload,
    "optimize": lambda src: optimize_payload(src.id, src.title, src.path),
}


@dataclasses.dataclass
class Views:
    """Answers the viewer's API paths from a catalog; a source's answer is built once per
    change of its file (`Source.stamp`), so polling a finished run costs a stat."""

    catalog: Catalog
    _cache: dict[tuple[str, str], tuple[tuple[int, int], dict[str, Any]]] = dataclasses.field(
        default_factory=dict
    )
    _lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    def answer(self, path: str) -> dict[str, Any] | None:
        """The JSON for an API path (`/api/...`), or None when it names nothing."""
        parts = [unquote(p) for p in path.split("/") if p][1:]
        if parts == ["catalog"]:
            with self._lock:
                self.catalog.refresh()
            return self.catalog_payload()
        if len(parts) >= 2 and parts[0] == "source":
            src = self.catalog.get(parts[1])
            if src is None:
                return None
            if len(parts) == 2:
                return self._cached(src, "page", lambda: _BUILDERS[src.kind](src))
            if len(parts) == 3 and parts[2] == "stamp":
                return {"stamp": list(src.stamp())}
            if len(parts) == 4 and parts[2] == "row" and src.kind == "eval":
                try:
                    return self._cached(src, "row/" + parts[3], lambda: row_payload(src, parts[3]))
                except KeyError:
                    return None
        if len(parts) == 3 and parts[0] == "compare":
            a, b = self.catalog.get(parts[1]), self.catalog.get(parts[2])
            if a is None or b is None or a.kind != "eval" or b.kind != "eval":
                return None
            key = f"compare/{b.id}"
            return self._cached(a, key, lambda: compare_payload(a, b), extra=b.stamp())
        return None

    def catalog_payload(self) -> dict[str, Any]:
        single = self.catalog.single()
        return {
            "sources": [
                {"id": s.id, "kind": s.kind, "title": s.title, "path": str(s.path)}
                for s in sorted(self.catalog.sources.values(), key=lambda s: (s.kind, str(s.path)))
            ],
            "single": single.id if single is not None else None,
        }

    def _cached(
        self,
        src: Source,
        key: str,
        build: Callable[[], dict[str, Any]],
        extra: tuple[int, int] = (0, 0),
    ) -> dict[str, Any]:
        stamp = (src.stamp()[0] ^ extra[0], src.stamp()[1] ^ extra[1])
        found = self._cache.get((src.id, key))
        if found is not None and found[0] == stamp:
            return found[1]
        value = build()
        value["stamp"] = list(src.stamp())
        if len(self._cache) >= _CACHED:
            self._cache.pop(next(iter(self._cache)))
        self._cache[(src.id, key)] = (stamp, value)
        return value
