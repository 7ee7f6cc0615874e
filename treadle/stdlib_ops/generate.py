"""`generate`: free instruction (+ an optional input) → text. AFlow's Custom operator."""

from __future__ import annotations

from pydantic import Field

from treadle.runtime.context import OpContext
from treadle.runtime.models.base import Message
from treadle.stdlib_ops._model_options import ModelOptions, gen_params
from treadle.stdlib_ops.registry import OpArgs, Operator, prep, register


class GenerateArgs(OpArgs):
    prompt: str = prep("from", "the instruction (a template: `{name}` reads a value)")
    input: str | None = prep("given", "an input appended after the instruction", default=None)


class GenerateOptions(ModelOptions):
    system: str | None = Field(None, description="a system message")


async def run(ctx: OpContext, args: GenerateArgs, options: GenerateOptions) -> str:
    content = args.prompt if args.input is None else f"{args.prompt}\n\n{args.input}"
    messages = [Message(role="user", content=content)]
    if options.system:
        messages.insert(0, Message(role="system", content=options.system))
    completion = await ctx.complete(messages, gen_params(ctx, options), model=options.model)
    return completion.text.strip()


register(
    Operator(
        name="generate",
        summary="Ask the model to follow an instruction; the reply as text.",
        args=GenerateArgs,
        options=GenerateOptions,
        output=str,
        run=run,
        uses_model=True,
    )
)
