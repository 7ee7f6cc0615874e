"""`generate`: free instruction (+ an optional input) → text. AFlow's Custom operator."""

from __future__ import annotations

from pydantic import Field

from treadle.runtime.op_context import OpContext
from treadle.stdlib_ops._model_options import ReplyControls, ask
from treadle.stdlib_ops.registry import OpArgs, Operator, not_removable, prep, register


class GenerateArgs(OpArgs):
    prompt: str = prep("from", "the instruction (a template: `{name}` reads a value)")
    input: str | None = prep("given", "an input appended after the instruction", default=None)


class GenerateOptions(ReplyControls):
    system: str | None = Field(None, description="a system message")


async def run(ctx: OpContext, args: GenerateArgs, options: GenerateOptions) -> str:
    content = args.prompt if args.input is None else f"{args.prompt}\n\n{args.input}"
    return (await ask(ctx, options, content, system=options.system)).strip()


register(
    Operator(
        name="generate",
        summary="Ask the model to follow an instruction; the reply as text.",
        args=GenerateArgs,
        options=GenerateOptions,
        output=str,
        run=run,
        ablation=not_removable(
            "it is a source: its reply is made from the prompt, nothing stands in for it"
        ),
        uses_model=True,
    )
)
