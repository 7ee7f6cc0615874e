"""`write code for PROBLEM [with entry_point NAME]`: a Python function for a problem, taken
from the model's reply (AFlow's CustomCodeGenerate).

The reply's last Python block is kept. When an entry point is named (a function that tests
will call), the code is trimmed to its definitions: demo calls and `__main__` blocks would
run, print or fail under `test`. Without one the code may be a script, and is kept whole.
A missing entry point is recorded on the trace rather than raised: `test` then reports it as
feedback a `revise` can act on.
"""

from __future__ import annotations

from pydantic import Field

from treadle.runtime.op_context import OpContext
from treadle.runtime.types import Code
from treadle.stdlib_ops import _code, _text
from treadle.stdlib_ops._model_options import ModelOptions, ask
from treadle.stdlib_ops._prompts import prompt
from treadle.stdlib_ops.registry import OpArgs, Operator, not_removable, prep, register


class WriteCodeArgs(OpArgs):
    problem: str = prep("for", "the problem (e.g. a HumanEval prompt: signature and docstring)")
    context: str | None = prep(
        "given", "extra material (a failing test, a previous try)", default=None
    )


class WriteCodeOptions(ModelOptions):
    entry_point: str | None = Field(None, description="the function the code must define")
    max_tokens: int = Field(1024, ge=1, le=32768, description="the most tokens the reply may have")


def render(problem: str, entry_point: str | None, context: str | None = None) -> str:
    line = f"The function must be named `{entry_point}`." if entry_point else ""
    body = problem if context is None else f"{problem}\n\n{context}"
    return prompt("write_code").format(entry_point_line=line, problem=body)


async def run(ctx: OpContext, args: WriteCodeArgs, options: WriteCodeOptions) -> str:
    content = render(args.problem, options.entry_point, args.context)
    reply = await ask(ctx, options, content)
    code = _text.code_in(reply)
    if options.entry_point:
        code = _code.sanitize(code)
        if not _code.defines(code, options.entry_point):
            ctx.event("write_code.missing_entry_point", entry_point=options.entry_point)
    return code


register(
    Operator(
        name="write code",
        summary="Write Python code for a problem; with an entry point, demo calls are removed.",
        args=WriteCodeArgs,
        options=WriteCodeOptions,
        output=Code,
        run=run,
        ablation=not_removable(
            "it is a source: the code is written from the problem, nothing stands in for it"
        ),
        uses_model=True,
    )
)
