"""An optimize run folder as the viewer shows it.

`treadle optimize` is being written while this is; what it is known to write is a folder with
`state.json`, `experience.jsonl` and one folder per round holding the child `.flow`, its
results file and a report. This reads that shape loosely: each round's flows and the scores
of its results files, the state as written, and the experience lines. Lineage (parent → child
with the move) comes from experience lines that name `parent` and `child` (or `flow`); when
the format is fixed, this module is the one place to make it exact.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import orjson

from treadle.errors import InputError
from treadle.view.runs import read_eval


def _json_lines(path: Path) -> list[dict[str, Any]]:
    out = []
    if path.is_file():
        for line in path.read_bytes().splitlines():
            try:
                item = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue  # a line being written
            if isinstance(item, dict):
                out.append(item)
    return out


def _round(folder: Path, root: Path) -> dict[str, Any]:
    flows = {
        str(p.relative_to(root)): p.read_text(errors="replace")
        for p in sorted(folder.glob("*.flow"))
    }
    evals = []
    for path in sorted(folder.glob("*.jsonl")):
        try:
            report, _, _ = read_eval(path)
        except InputError:
            continue
        evals.append({"path": str(path.relative_to(root)), "mean": report.mean, "n": report.n,
                      "tokens": report.tokens_in + report.tokens_out})  # fmt: skip
    return {"name": folder.name, "flows": flows, "evals": evals}


def optimize_payload(sid: str, title: str, root: Path) -> dict[str, Any]:
    try:
        state = orjson.loads((root / "state.json").read_bytes())
    except (OSError, orjson.JSONDecodeError):
        state = None  # being rewritten right now: the next poll reads it
    rounds = [
        _round(d, root) for d in sorted(root.iterdir()) if d.is_dir() and any(d.glob("*.flow"))
    ]
    experience = _json_lines(root / "experience.jsonl")
    texts = {name: text for r in rounds for name, text in r["flows"].items()}
    lineage = []
    for item in experience:
        child = item.get("child") or item.get("flow")
        parent = item.get("parent")
        if not isinstance(child, str):
            continue
        edge = {"parent": parent, "child": child, "move": item.get("move"),
                "score": item.get("score"), "tokens": item.get("tokens")}  # fmt: skip
        if isinstance(parent, str) and parent in texts and child in texts:
            edge["diff"] = "".join(difflib.unified_diff(
                texts[parent].splitlines(True), texts[child].splitlines(True), parent, child
            ))  # fmt: skip
        lineage.append(edge)
    return {"kind": "optimize", "id": sid, "title": title, "state": state, "rounds": rounds,
            "experience": experience[-500:], "lineage": lineage}  # fmt: skip
