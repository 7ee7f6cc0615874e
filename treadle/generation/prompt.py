"""The generator's prompt, built from the registry rather than a hand-written list.

System turn: the language's cheat-sheet, every operator's signature and one-line purpose (the
same vocabulary the grammar allows), the selected capabilities' signatures and docs, and a few
worked examples chosen by similarity to the task. User turn: the task. The SFT export writes
exactly these turns, so a fine-tuned generator sees at training what it sees at use.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from treadle.generation.decoding.vocabulary import Callee, Capability
from treadle.generation.example_bank import Example
from treadle.runtime.models.base import Message

CHEAT_SHEET = """\
You write workflows in the treadle .flow language. Reply with the workflow only.
- A workflow: `workflow NAME(INPUT: TYPE, ...) -> OUTPUT: TYPE, ...`, one step per line, then `end`.
- A step: `NAME = OPERATOR [SUBJECT] {PREPOSITION VALUE} [with OPTION VALUE, ...]`.
- A value is a name bound earlier (an input, a step, a field such as `report.passed`), a string
  (`"Solve: {problem}"` puts the value of `problem` into the text), a number, or a list `[a, b]`.
- `NAME = for each item in LIST: STEP` runs STEP once per item; its value is the list of results.
- `with samples 3` runs a step 3 times; its value is the list of the 3 results.
- Types: text, number, boolean, code, json, list of T. Bind every output before `end`."""


def operator_lines(vocab: Mapping[str, Callee]) -> str:
    return "\n".join(f"- {c.usage()}: {c.summary}" for c in vocab.values() if c.kind == "operator")


def capability_lines(caps: Sequence[Capability]) -> str:
    out = []
    for c in caps:
        out.append(f"- {c.callee().usage()}")
        if c.doc:
            out.append(f"  {c.doc}")
    return "\n".join(out)


def system_prompt(
    vocab: Mapping[str, Callee], capabilities: Sequence[Capability], examples: Sequence[Example]
) -> str:
    parts = [CHEAT_SHEET, "Operators:\n" + operator_lines(vocab)]
    if capabilities:
        parts.append(
            "Library workflows (call them like operators: the first input after the name, "
            "the others with `with NAME VALUE`):\n" + capability_lines(capabilities)
        )
    for e in examples:
        parts.append(f"Example task: {e.task}\n{e.flow.rstrip()}")
    return "\n\n".join(parts)


def user_prompt(task: str) -> str:
    return f"Task: {task.strip()}\nWrite the workflow."


def messages(
    task: str,
    vocab: Mapping[str, Callee],
    capabilities: Sequence[Capability] = (),
    examples: Sequence[Example] = (),
) -> list[Message]:
    return [
        Message(role="system", content=system_prompt(vocab, capabilities, examples)),
        Message(role="user", content=user_prompt(task)),
    ]


def use_lines(capabilities: Sequence[Capability], base: str | None = None) -> list[str]:
    """`use "FILE"` for each library file the selected capabilities come from, in order."""
    import os

    files: list[str] = []
    for c in capabilities:
        path = os.path.relpath(c.file, base) if base else c.file
        if path not in files:
            files.append(path)
    return [f'use "{f}"' for f in files]
