"""`extract number|code|json|answer from TEXT`: deterministic readers of a model's reply.

One operator per kind, so each has a precise output type (`extract number` is a number).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from treadle.runtime.op_context import OpContext
from treadle.runtime.types import Code
from treadle.stdlib_ops import _text
from treadle.stdlib_ops.registry import NoOptions, OpArgs, Operator, passes, prep, register


class ExtractArgs(OpArgs):
    text: str = prep("from", "the reply to read")


ExtractRun = Callable[[OpContext, ExtractArgs, NoOptions], Awaitable[Any]]


def _extractor(read: Callable[[str], Any]) -> ExtractRun:
    async def run(ctx: OpContext, args: ExtractArgs, options: NoOptions) -> Any:
        return read(args.text)

    return run


_KINDS: list[tuple[str, str, Any, Callable[[str], Any]]] = [
    (
        "number",
        "The number a reply commits to (its final answer's, else its last); null if none.",
        float | None,
        _text.number_in,
    ),
    (
        "code",
        "The code in a reply: its last Python fenced block, else the whole reply.",
        Code,
        _text.code_in,
    ),
    ("json", "The first JSON value in a reply; null if none.", Any, _text.json_in),
    (
        "answer",
        "The final answer of a reply: \\boxed{}, after 'Answer:', else the last line.",
        str,
        _text.final_answer,
    ),
]

for _kind, _summary, _output, _read in _KINDS:
    register(
        Operator(
            name=f"extract {_kind}",
            summary=_summary,
            args=ExtractArgs,
            output=_output,
            run=_extractor(_read),
            ablation=passes("text"),
        )
    )
