"""`treadle view --export OUT.html`: every page's data in one self-contained file.

The export holds what the served viewer would answer for each source, each row (with its
trace) and each comparison of two runs on one dataset, so the page reads its data from itself.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any
from urllib.parse import quote

from treadle.view.page import render_page
from treadle.view.payloads import Views

#: rows per evaluation whose detail (outputs, explanations, trace) the export carries; the
#: table holds every row either way
EXPORT_ROW_DETAILS = 2000
#: comparisons of two runs on the same dataset the export precomputes
EXPORT_COMPARES = 20


def export_answers(views: Views) -> dict[str, Any]:
    """API path → answer, for every path the exported page can ask."""
    answers: dict[str, Any] = {"/api/catalog": views.answer("/api/catalog")}
    evals = []
    for src in views.catalog.sources.values():
        page = views.answer(f"/api/source/{src.id}")
        answers[f"/api/source/{src.id}"] = page
        if src.kind != "eval" or page is None or "rows" not in page:
            continue
        evals.append((src, page))
        for row in page["rows"][:EXPORT_ROW_DETAILS]:
            path = f"/api/source/{src.id}/row/{quote(row['id'], safe='')}"
            answers[path] = views.answer(path)
    pairs = [
        (a, b)
        for (a, pa), (b, pb) in itertools.permutations(evals, 2)
        if pa["summary"]["dataset"] == pb["summary"]["dataset"]
    ]
    for a, b in pairs[:EXPORT_COMPARES]:
        path = f"/api/compare/{a.id}/{b.id}"
        answers[path] = views.answer(path)
    return answers


def export_html(views: Views, out: Path) -> int:
    """Write the export to `out`; its size in bytes."""
    text = render_page(export_answers(views))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    return len(text.encode())
