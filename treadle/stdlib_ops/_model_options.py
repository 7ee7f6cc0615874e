"""Options shared by every operator that calls a model, and how they become `GenParams`."""

from __future__ import annotations

from pydantic import Field

from treadle.runtime.models.base import GenParams, Message
from treadle.runtime.op_context import OpContext
from treadle.stdlib_ops.registry import OpOptions


class ModelOptions(OpOptions):
    temperature: float = Field(0.0, ge=0.0, le=2.0, description="sampling temperature")
    max_tokens: int = Field(512, ge=1, le=32768, description="the most tokens the reply may have")
    model: str | None = Field(None, description="model spec for this step (default: the run's)")
    seed: int | None = Field(None, description="sampling seed (default: the run's, per sample)")


class ReplyControls(ModelOptions):
    """Options that end a free-running reply: what a small model needs not to loop to its
    token limit (SmolLM2's `revise` repeated itself to 1024 tokens without them)."""

    stop: list[str] = Field(
        default_factory=list,
        max_length=8,
        description="text that ends the reply where it appears (a list of strings)",
    )
    repeat_penalty: float | None = Field(
        None,
        ge=1.0,
        le=2.0,
        description="penalise repeated tokens (1.0 none; 1.1-1.3 stops a small model looping)",
    )


def gen_params(ctx: OpContext, options: ModelOptions, **overrides: object) -> GenParams:
    """Sampling parameters for one call; a run seed gives each sample its own derived seed."""
    seed = options.seed
    if seed is None and ctx.seed is not None:
        seed = ctx.seed + ctx.sample
    values: dict[str, object] = {
        "temperature": options.temperature,
        "max_tokens": options.max_tokens,
        "seed": seed,
        **overrides,
    }
    if isinstance(options, ReplyControls):
        values.setdefault("stop", tuple(options.stop))
        values.setdefault("repeat_penalty", options.repeat_penalty)
    return GenParams.model_validate(values)


async def ask(
    ctx: OpContext, options: ModelOptions, content: str, *, system: str | None = None
) -> str:
    """One user turn to the step's model (with an optional system message); the reply's text."""
    messages = [Message(role="user", content=content)]
    if system:
        messages.insert(0, Message(role="system", content=system))
    completion = await ctx.complete(messages, gen_params(ctx, options), model=options.model)
    return completion.text
