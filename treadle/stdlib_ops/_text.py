"""Deterministic readers of model replies, shared by `extract`, `vote` and the code operators."""

from __future__ import annotations

import ast
import json
import re
from typing import Any

_NUMBER = r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?|[-+]?\.\d+"
_NUMBER_RE = re.compile(_NUMBER)
_FRACTION_RE = re.compile(r"([-+]?\d+)\s*/\s*(\d+)")
_ANSWER_RE = re.compile(r"(?:final answer|answer)\s*(?:is)?\s*[:=]?\s*(.+)", re.IGNORECASE)
_BOXED_RE = re.compile(r"\\boxed\{([^{}]*(?:\{[^{}]*\}[^{}]*)*)\}")
_FENCE_RE = re.compile(r"```[ \t]*([\w+-]*)[^\n]*\n(.*?)```", re.DOTALL)


def parse_number(token: str) -> float | int | None:
    """`1,234.50` → 1234.5; integral values come back as int so they print as `42`."""
    try:
        value = float(token.replace(",", ""))
    except ValueError:
        return None
    if value != value or value in (float("inf"), float("-inf")):
        return None
    return int(value) if value.is_integer() and abs(value) < 2**53 else value


def explicit_answer(text: str) -> str | None:
    """What a reply marks as its answer (`\\boxed{}`, else after the last `Answer:`), if any."""
    boxed = _BOXED_RE.findall(text)
    if boxed:
        return str(boxed[-1]).strip()
    matches = list(_ANSWER_RE.finditer(text))
    if matches:
        return matches[-1].group(1).strip().rstrip(".").strip()
    return None


def final_answer(text: str) -> str:
    """The answer a reply commits to: the marked one, else its last non-empty line."""
    marked = explicit_answer(text)
    if marked is not None:
        return marked
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def number_in(text: str) -> float | int | None:
    """The number a reply commits to: the first in its marked answer, else its last number."""
    marked = explicit_answer(text)
    if marked is not None:
        fraction = _FRACTION_RE.fullmatch(marked.rstrip("."))
        if fraction and int(fraction.group(2)) != 0:
            return parse_number(str(int(fraction.group(1)) / int(fraction.group(2))))
        numbers = _NUMBER_RE.findall(marked.replace("$", ""))
        if numbers:
            return parse_number(numbers[0])
    numbers = _NUMBER_RE.findall(text.replace("$", ""))
    return parse_number(numbers[-1]) if numbers else None


def code_in(text: str) -> str:
    """The code in a reply: the last Python (or untagged) fenced block, else the whole reply."""
    blocks = _FENCE_RE.findall(text)
    python = [body for lang, body in blocks if lang.lower() in ("python", "py", "python3", "")]
    chosen = python or [body for _, body in blocks]
    if chosen:
        return chosen[-1].strip("\n") + "\n"
    return text.strip("\n") + "\n" if text.strip() else ""


def json_in(text: str) -> Any:
    """The first JSON value in a reply (fenced or bare), or None when there is none."""
    for _, body in _FENCE_RE.findall(text):
        try:
            return json.loads(body)
        except ValueError:
            pass
    decoder = json.JSONDecoder()
    for i, ch in enumerate(text):
        if ch in "[{":
            try:
                value, _ = decoder.raw_decode(text, i)
            except ValueError:
                continue
            return value
    return None


def normalize(value: Any, kind: str = "auto") -> Any:
    """A key under which equal answers compare equal: numbers numerically, text case- and
    space-insensitively, code by its syntax tree (formatting and comments ignored)."""
    if value is None:
        return None
    if isinstance(value, str) and (kind == "code" or (kind == "auto" and "\n" in value.strip())):
        try:
            return ("code", ast.dump(ast.parse(value)))
        except (SyntaxError, ValueError):
            if kind == "code":
                return ("code", value.strip())
    if kind in ("auto", "number"):
        number = (
            value
            if isinstance(value, int | float) and not isinstance(value, bool)
            else number_in(value)
            if kind == "number" and isinstance(value, str)
            else None
        )
        if number is None and kind == "auto" and isinstance(value, str):
            number = parse_number(value.strip().rstrip("."))
        if number is not None:
            return ("number", round(float(number), 9))
    if isinstance(value, str):
        return ("text", " ".join(value.casefold().split()).rstrip("."))
    return ("json", json.dumps(value, sort_keys=True))
