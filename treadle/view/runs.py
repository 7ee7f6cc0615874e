"""An evaluation read back from its results file (as far as a running one got) or its report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from treadle.errors import InputError
from treadle.eval.evaluate import read_results
from treadle.eval.report import EvalReport, RowReport, build_report


def read_eval(path: Path) -> tuple[EvalReport, list[RowReport], dict[str, Any]]:
    """The report, the per-epoch rows and the results header (empty for a report file)."""
    if path.suffix == ".jsonl":
        header, epoch_rows = read_results(path, repair=False)
        head = header or {}
        scorers = head.get("scorers") or [{}]
        report = build_report(
            epoch_rows,
            reducer=str(head.get("reducer") or "mean"),
            flow=str(head.get("flow") or ""),
            dataset=str(head.get("dataset") or ""),
            model=head.get("model"),
            scorer=str(scorers[0].get("spec") or ""),
            epochs=int(head.get("epochs") or 1),
        )
        report.results_path = str(path)
        return report, epoch_rows, head
    try:
        report = EvalReport.model_validate(orjson.loads(path.read_bytes()))
    except (orjson.JSONDecodeError, ValueError) as e:
        raise InputError(f"{path} is not an evaluation report: {str(e).splitlines()[0]}") from None
    return report, report.rows, {}
