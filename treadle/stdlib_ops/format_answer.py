"""`format SOLUTION [for PROBLEM]`: the short final answer of a long solution (AFlow's Format).

Benchmarks score the answer, not the working; this turns a worked solution into the few words
a scorer compares. The reply is trimmed to its first line, minus any `Answer:` label.
"""

from __future__ import annotations

import re

from pydantic import Field

from treadle.runtime.op_context import OpContext
from treadle.stdlib_ops._model_options import ModelOptions, ask
from treadle.stdlib_ops._prompts import prompt
from treadle.stdlib_ops.registry import OpArgs, Operator, passes, prep, register, subject


class FormatArgs(OpArgs):
    solution: str = subject("the worked solution")
    problem: str | None = prep(
        "for", "the problem, so the answer has the form it asks for", default=None
    )


class FormatOptions(ModelOptions):
    max_tokens: int = Field(64, ge=1, le=32768, description="the most tokens the reply may have")


_LABEL_RE = re.compile(
    r"^[ \t>*#_]*(?:the[ \t]+)?(?:final[ \t]+)?answer\b(?:[ \t]+is)?[ \t*_]*[:=：]?[ \t*_]*",
    re.IGNORECASE,
)


def short_answer(reply: str) -> str:
    """The first non-empty line of a reply without an `Answer:` label, bold or final period."""
    for line in reply.strip().splitlines():
        line = _LABEL_RE.sub("", line.strip()).strip().strip("*_`").strip()
        if line:
            boxed = re.fullmatch(r"\$*\\boxed\{(.*)\}\$*", line)
            line = boxed.group(1) if boxed else line
            return line[:-1] if line.endswith(".") and not line[:-1].endswith(".") else line
    return ""


async def run(ctx: OpContext, args: FormatArgs, options: FormatOptions) -> str:
    content = prompt("format").format(problem=args.problem or "(not given)", solution=args.solution)
    reply = await ask(ctx, options, content)
    return short_answer(reply)


register(
    Operator(
        name="format",
        summary="The short final answer of a long solution.",
        args=FormatArgs,
        options=FormatOptions,
        output=str,
        run=run,
        ablation=passes("solution"),
        uses_model=True,
    )
)
