"""A simulated task whose every flow shape has a known accuracy, for `optimize`'s benchmark and
tests: a scripted executor whose right-answer rate depends on the flow's structure, and a
scripted optimizer that rewrites flows the way an optimizer model would (and sometimes badly).

Row i asks "What is item i?" and expects "A<i>". One `generate` answers right with probability
0.40, 0.65 when its prompt asks to think step by step; a wrong answer is one of three decoys,
so sampling 5 answers and voting (self-consistency) raises the rate further. Every draw is a
hash of the row, the prompt's shape and the call's seed: deterministic, cacheable, and the
same in every process (so a resumed search replays it exactly).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable

from treadle.runtime.models.base import Completion, GenParams, Message, ModelBackend, Usage

BASE = 0.40
STEP_BY_STEP = 0.25
COT = "Think step by step."
_ITEM = re.compile(r"What is item (\d+)\?")
_FLOW = re.compile(r"```\n(.*?)\n```", re.S)


def rows(n: int, start: int = 0) -> list[dict[str, str]]:
    return [
        {"id": f"r{i}", "question": f"What is item {i}?", "answer": f"A{i}"}
        for i in range(start, start + n)
    ]


def _u(*parts: object) -> float:
    h = hashlib.sha256("\0".join(map(str, parts)).encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


def _usage(messages: list[Message], text: str) -> Usage:
    return Usage(
        input_tokens=sum(len(m.content.split()) for m in messages), output_tokens=len(text.split())
    )


class _Scripted(ModelBackend):
    backend = "scripted"

    def __init__(
        self, model: str, answer: Callable[[list[Message], GenParams], str], delay: float = 0.0
    ) -> None:
        self.model = model
        self._answer = answer
        self.delay = delay
        self.calls = 0
        #: input + output tokens of every call this backend answered
        self.tokens = 0
        self.prompts: list[str] = []

    @property
    def cache_identity(self) -> str:
        return f"simulated:{self.model}"

    async def complete(self, messages: list[Message], params: GenParams) -> Completion:
        import asyncio

        self.calls += 1
        self.prompts.append(messages[-1].content)
        if self.delay:
            await asyncio.sleep(self.delay)
        text = self._answer(messages, params)
        usage = _usage(messages, text)
        self.tokens += usage.input_tokens + usage.output_tokens
        return Completion(text=text, usage=usage, finish_reason="stop", model=self.model)


def _execute(messages: list[Message], params: GenParams) -> str:
    prompt = messages[-1].content
    m = _ITEM.search(prompt)
    if m is None:
        return "VERDICT: approved"
    item = m.group(1)
    p = BASE + (STEP_BY_STEP if "step by step" in prompt else 0.0)
    shape = "cot" if "step by step" in prompt else "plain"
    if prompt.startswith(("Improve", "Review", "Judge", "Rewrite")):
        shape, p = prompt[:12], 0.45  # a review/revise pass is a wash on this task
    if _u(item, shape, params.seed) < p:
        return f"A{item}"
    return f"B{item}-{int(_u('decoy', item, shape, params.seed) * 3)}"


def executor(delay: float = 0.0) -> _Scripted:
    return _Scripted("executor", _execute, delay)


def true_accuracy(text: str) -> float:
    """The known accuracy of a flow shape (one generate, maybe step by step, maybe 5 votes)."""
    p = BASE + (STEP_BY_STEP if "step by step" in text else 0.0)
    if "samples 5" not in text:
        return p
    # plurality of 5 draws: right with p, else one of 3 decoys with (1 - p) / 3 each
    from itertools import product

    q = (1 - p) / 3
    total = 0.0
    for draw in product(range(4), repeat=5):  # 0 = right, 1..3 = a decoy
        prob = 1.0
        for d in draw:
            prob *= p if d == 0 else q
        counts = [draw.count(k) for k in range(4)]
        right = counts[0]
        best_decoy = max(counts[1:])
        if right > best_decoy:
            total += prob
        elif right == best_decoy and right > 0:
            total += prob * 0.5  # a tie: vote's pick is as good as a coin here
    return total


def _optimize(messages: list[Message], params: GenParams, broken_every: int) -> str:
    prompt = messages[-1].content
    if prompt.startswith("You predict how well"):
        flow = prompt.rsplit("The new workflow:", 1)[-1]
        guess = 0.4 + (0.2 if "step by step" in flow else 0.0) + (0.2 if "samples" in flow else 0.0)
        return f"{guess:.2f}"
    m = _FLOW.search(prompt)
    if m is None:  # a repair turn: the model's last text is the one to fix; give up on it
        return (
            "workflow broken(question: text) -> answer: text\n  answer = frobnicate question\nend"
        )
    text = m.group(1)
    seed = params.seed or 0
    if broken_every and seed % broken_every == broken_every - 1:
        return text.replace(" = generate from", " = generat from", 1)  # does not compile
    if "step by step" not in text:
        return text.replace('generate from "', f'generate from "{COT} ', 1)
    if "samples" not in text:
        return re.sub(
            r'  answer = generate from ("[^"\n]*")',
            r"  drafts = generate from \1 with samples 5, temperature 0.7\n  answer = vote drafts",
            text,
            count=1,
        )
    return text  # nothing more to try: a duplicate, which the gate refuses


def optimizer(broken_every: int = 0) -> _Scripted:
    """The scripted optimizer: adds "think step by step", then self-consistency; with
    `broken_every` k, every k-th proposal (by its seed) does not compile."""
    return _Scripted("optimizer", lambda m, p: _optimize(m, p, broken_every))


def broken_optimizer() -> _Scripted:
    """An optimizer whose every reply fails to compile (an unknown operator, a syntax error)."""
    replies = [
        "workflow answer(question: text) -> answer: text\n  answer = frobnicate question\nend",
        "workflow answer(question: text) -> answer: text\n  answer = generate from\nend",
    ]
    return _Scripted("broken", lambda m, p: replies[(p.seed or 0) % 2])


SEED_FLOW = """\
workflow answer(question: text) -> answer: text
  answer = generate from "Answer briefly. {question}"
end
"""
