"""`answer for PROBLEM`: step-by-step thought and a final answer, as a record (AFlow's
AnswerGenerate).

Keeping the reasoning apart from the answer lets later steps compare, vote on or format the
answer alone, while the thought stays in the trace for review.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, Field

from treadle.runtime.op_context import OpContext
from treadle.stdlib_ops import _text
from treadle.stdlib_ops._model_options import ModelOptions, ask
from treadle.stdlib_ops._prompts import prompt
from treadle.stdlib_ops.registry import OpArgs, Operator, not_removable, prep, register


class Answer(BaseModel):
    thought: str = Field(description="the reasoning that led to the answer")
    answer: str = Field(description="the final answer alone")


class AnswerArgs(OpArgs):
    problem: str = prep("for", "the problem to solve")
    context: str | None = prep("given", "extra material to use (notes, a draft)", default=None)


class AnswerOptions(ModelOptions):
    pass


_TAG_RE = {
    tag: re.compile(rf"<{tag}>(.*?)(?:</{tag}>|\Z)", re.DOTALL | re.IGNORECASE)
    for tag in ("thought", "answer")
}
#: an `Answer:` label at the start of a line (markdown bold and "final" allowed)
_ANSWER_LABEL_RE = re.compile(
    r"^[ \t>*#_]*(?:final[ \t]+)?answer[ \t*_]*[:：][ \t*_]*", re.IGNORECASE | re.MULTILINE
)
_THOUGHT_LABEL_RE = re.compile(
    r"^[ \t>*#_]*(?:thought|reasoning)[ \t*_]*[:：][ \t*_]*", re.IGNORECASE
)


def parse_answer(reply: str) -> Answer:
    """Split a reply into thought and answer: `<answer>` tags, else the last line-leading
    `Answer:` label, else a `\\boxed{}`/inline answer, else the last line is the answer."""
    text = reply.strip()
    tagged = _TAG_RE["answer"].search(text)
    if tagged and tagged.group(1).strip():
        thought = _TAG_RE["thought"].search(text)
        before = thought.group(1) if thought else text[: tagged.start()]
        return Answer(thought=_clean_thought(before), answer=tagged.group(1).strip())
    labels = list(_ANSWER_LABEL_RE.finditer(text))
    if labels:
        last = labels[-1]
        rest = text[last.end() :].strip()
        if rest:
            return Answer(thought=_clean_thought(text[: last.start()]), answer=_first_line(rest))
    marked = _text.explicit_answer(text)
    if marked:
        return Answer(thought=_clean_thought(text), answer=marked)
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return Answer(thought="", answer="")
    return Answer(thought=_clean_thought("\n".join(lines[:-1])), answer=lines[-1].strip())


def _clean_thought(text: str) -> str:
    text = re.sub(r"</?thought>", "", text, flags=re.IGNORECASE).strip()
    return _THOUGHT_LABEL_RE.sub("", text, count=1).strip()


def _first_line(text: str) -> str:
    line = next(line for line in text.splitlines() if line.strip())
    return line.strip().strip("*_").strip()


async def run(ctx: OpContext, args: AnswerArgs, options: AnswerOptions) -> Answer:
    problem = args.problem if args.context is None else f"{args.problem}\n\n{args.context}"
    return parse_answer(await ask(ctx, options, prompt("answer").format(problem=problem)))


register(
    Operator(
        name="answer",
        summary="Solve a problem step by step; the thought and the final answer as a record.",
        args=AnswerArgs,
        options=AnswerOptions,
        output=Answer,
        run=run,
        ablation=not_removable("it is a source: no argument has its record type (thought, answer)"),
        uses_model=True,
    )
)
