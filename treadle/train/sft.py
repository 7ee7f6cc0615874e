"""Training data for generators (MetaFlow's SFT stage): task → flow pairs as chat records.

Each record is what TRL's SFTTrainer takes in its conversational form,
`{"messages": [{"role": "system", ...}, {"role": "user", ...}, {"role": "assistant", ...}]}`,
where the system and user turns are exactly the prompt `treadle generate` builds for the task
(same cheat-sheet, operators, capabilities and examples) and the assistant turn is the flow's
canonical text. Only flows that compile are written; with `min_score`, only those whose
evaluation on `data` scores at least that much (the evaluation runner judges them).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from treadle.generation.decoding.vocabulary import Capability, load_capabilities, vocabulary
from treadle.generation.prompt import messages as build_messages
from treadle.generation.selection import select_capabilities, select_examples


def sft_record(
    task: str,
    flow: str,
    *,
    capabilities: Sequence[Capability] = (),
    max_capabilities: int = 3,
    examples: int = 2,
    base_dir: str | Path | None = None,
) -> dict[str, Any] | None:
    """One chat record, or None when the flow does not compile."""
    from treadle.compiler import check_source
    from treadle.compiler.formatter import format_source

    if any(d.is_error for d in check_source(flow, "<sft>", base_dir=Path(base_dir or "."))):
        return None
    caps = select_capabilities(task, capabilities, max_capabilities) if capabilities else []
    msgs = build_messages(task, vocabulary(caps), caps, select_examples(task, examples))
    turns = [{"role": m.role, "content": m.content} for m in msgs]
    turns.append({"role": "assistant", "content": format_source(flow)})
    return {"messages": turns}


def export_sft(
    out: str | Path,
    pairs: Iterable[tuple[str, str]],
    *,
    library: Sequence[str | Path] = (),
    min_score: float | None = None,
    data: Any = None,
    eval_options: Mapping[str, Any] | None = None,
    append: bool = False,
    base_dir: str | Path | None = None,
) -> int:
    """Write (task, flow) pairs as SFT records to `out` (JSONL); returns how many were written.

    With `min_score`, each flow is evaluated on `data` (anything `treadle.evaluate` takes) and
    kept only if its mean score reaches `min_score`.
    """
    caps = load_capabilities(library) if library else []
    n = 0
    with Path(out).open("a" if append else "w", encoding="utf-8") as f:
        for task, flow in pairs:
            record = sft_record(task, flow, capabilities=caps, base_dir=base_dir)
            if record is None:
                continue
            if min_score is not None:
                if data is None:
                    raise ValueError("min_score needs the data to evaluate each flow on")
                from treadle.eval.evaluate import evaluate_sync
                from treadle.flow import Flow

                report = evaluate_sync(Flow.from_source(flow), data, **dict(eval_options or {}))
                if report.mean is None or report.mean < min_score:
                    continue
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
            n += 1
    return n
