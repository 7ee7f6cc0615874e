"""Repair rounds: the compiler's JSON diagnostics go back to the model with its own text.

A diagnostic carries a code, a span, what was expected and a "did you mean", which is what a
model needs to fix a line; the repair turn quotes them as JSON (the form `treadle check
--format json` prints) and asks for the whole corrected workflow, decoded under the same
grammar as the first attempt.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from treadle.compiler.diagnostics import Diagnostic
from treadle.runtime.models.base import Message

MAX_DIAGNOSTICS = 8


def diagnostics_json(diags: Sequence[Diagnostic]) -> str:
    rows = [
        {
            "code": d.code,
            "line": d.line,
            "column": d.column,
            "message": d.message,
            **({"hint": d.hint} if d.hint else {}),
        }
        for d in diags
        if d.is_error
    ][:MAX_DIAGNOSTICS]
    return json.dumps(rows, ensure_ascii=False, indent=1)


def repair_messages(
    base: Sequence[Message], text: str, diags: Sequence[Diagnostic]
) -> list[Message]:
    """The first turns, the model's workflow, and the diagnostics asking for a fix."""
    ask = (
        "The compiler rejected this workflow with these errors (JSON):\n"
        f"{diagnostics_json(diags)}\n"
        "Write the whole corrected workflow."
    )
    return [
        *base,
        Message(role="assistant", content=text),
        Message(role="user", content=ask),
    ]


_FENCE = re.compile(r"```[a-zA-Z]*\n(.*?)(?:```|$)", re.S)


def extract_flow(reply: str) -> str:
    """The workflow in a free-form reply: a fenced block's body, else from the first `use` or
    `workflow` line on; cut after the last top-level `end`."""
    m = _FENCE.search(reply)
    text = m.group(1) if m else reply
    lines = text.splitlines()
    start = next(
        (i for i, ln in enumerate(lines) if ln.lstrip().startswith(("workflow ", "use "))), 0
    )
    lines = lines[start:]
    last_end = max(
        (i for i, ln in enumerate(lines) if ln.strip() == "end" and not ln[:1].isspace()),
        default=None,
    )
    if last_end is not None:
        lines = lines[: last_end + 1]
    return "\n".join(lines).strip() + "\n"
