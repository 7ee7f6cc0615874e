"""The operator reference, generated from the registry (`docs/operators.md`, `treadle ops`).

The registry is the single source of every signature, so the reference is rendered from it
rather than written by hand; a test keeps the checked-in page current. Regenerate with

    python -m treadle.stdlib_ops.docs > docs/operators.md

Only the registry is imported here (no model, sandbox or schema libraries), so `treadle ops`
starts fast.
"""

from __future__ import annotations

import inspect
import json
import sys
from typing import Any

from pydantic import BaseModel

from treadle.runtime.types import Type
from treadle.stdlib_ops.registry import COMMON_OPTIONS, Operator, Option, Param, operators

#: How each operator reads in a step. Every line is a step of a real workflow; the examples'
#: tests compile them.
EXAMPLES: dict[str, tuple[str, ...]] = {
    "generate": (
        "draft = generate from \"Solve step by step. End with 'Answer: <number>'.\\n{problem}\"",
        'drafts = generate from "Solve: {problem}" with samples 3, temperature 0.7',
        'better = generate from "Check and correct this solution." given draft',
    ),
    "answer": ("a = answer for problem", "a = answer for problem given hint"),
    "write code": ("solution = write code for problem with entry_point entry_point",),
    "ensemble": ("best = ensemble drafts for problem",),
    "vote": ("voted = vote numbers", "same = vote attempts with compare code"),
    "review": (
        "verdict = review best for problem",
        "verdict = review best for problem given check",
    ),
    "revise": ("fixed = revise solution using report.feedback for problem",),
    "format": ("short = format best for problem",),
    "extract number": ("n = extract number from draft",),
    "extract code": ("code = extract code from reply",),
    "extract json": ("data = extract json from reply",),
    "extract answer": ("final = extract answer from draft",),
    "validate": ("check = validate reply against schema",),
    "run": ("result = run code", 'result = run script with stdin "3 4", time_limit 5'),
    "test": ("report = test solution against tests with entry_point entry_point",),
    "program": ("checked = program for problem", "checked = program for problem with attempts 2"),
}


def _option_default(o: Option) -> str:
    """An option's default as a step would write it (a choice is a bare word)."""
    if o.type.kind == "choice" and isinstance(o.default, str):
        return o.default
    return _default(o.default)


def _default(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    return str(value)


def type_text(t: Type, *, fields: bool = False) -> str:
    """A type as the language writes it; `fields` spells out a record's fields."""
    if t.kind == "record" and fields and t.fields:
        inner = ", ".join(f"{name}: {type_text(ft)}" for name, ft in t.fields)
        return f"{t.name or 'record'} {{{inner}}}"
    return str(t)


def _param_text(p: Param) -> str:
    slot = f"<{p.name}: {type_text(p.type)}>"
    text = slot if p.prep is None else f"{p.prep} {slot}"
    return text if p.required else f"[{text}]"


def usage(op: Operator) -> str:
    """The one-line signature: `answer for <problem: text> [given <context: text>] -> Answer`."""
    sig = op.signature
    parts = [op.name]
    subject = sig.subject
    if subject is not None:
        parts.append(_param_text(subject))
    parts.extend(_param_text(p) for p in sig.params if p.prep is not None)
    if sig.options:
        parts.append(
            "[with " + ", ".join(f"{o.name} {_option_default(o)}" for o in sig.options) + "]"
        )
    return " ".join(parts) + f" -> {type_text(sig.output, fields=True)}"


def _output_fields(op: Operator) -> list[tuple[str, str, str]]:
    """(name, type, description) of each field of a record output."""
    model = op.output
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return []
    sig_fields = dict(op.signature.output.fields)
    return [
        (name, type_text(sig_fields[name]), f.description or "")
        for name, f in model.model_fields.items()
    ]


def _details(op: Operator) -> str:
    """The operator module's docstring: why it exists and how it behaves at the edges."""
    module = sys.modules.get(getattr(op.run, "__module__", ""))
    return inspect.cleandoc(module.__doc__) if module is not None and module.__doc__ else ""


def ablation_text(op: Operator) -> str:
    """How counterfactual attribution removes a step of this operator (`treadle attribute`)."""
    return op.ablation.describe() if op.ablation is not None else "not declared"


def as_dict(op: Operator) -> dict[str, Any]:
    sig = op.signature
    return {
        "name": op.name,
        "summary": op.summary,
        "usage": usage(op),
        "uses_model": op.uses_model,
        "uses_sandbox": op.uses_sandbox,
        "params": [
            {
                "name": p.name,
                "prep": p.prep,
                "type": type_text(p.type),
                "required": p.required,
                "description": p.description,
            }
            for p in sig.params
        ],
        "options": [_option_dict(o) for o in sig.options],
        "output": type_text(sig.output, fields=True),
        "output_fields": [
            {"name": n, "type": t, "description": d} for n, t, d in _output_fields(op)
        ],
        "examples": list(EXAMPLES.get(op.name, ())),
        "ablation": {
            "kind": op.ablation.kind if op.ablation else None,
            "removable": bool(op.ablation and op.ablation.removable),
            "text": ablation_text(op),
        },
    }


def _option_dict(o: Option) -> dict[str, Any]:
    default = (
        o.default if isinstance(o.default, str | int | float | bool | None) else str(o.default)
    )
    return {
        "name": o.name,
        "type": type_text(o.type),
        "default": default,
        "description": o.description,
    }


def render_json() -> str:
    ops = operators()
    data = {
        "common_options": [_option_dict(o) for o in COMMON_OPTIONS],
        "operators": [as_dict(ops[name]) for name in sorted(ops)],
    }
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def render_text() -> str:
    """Plain text for a terminal: every operator's signature and summary."""
    ops = operators()
    out: list[str] = []
    for name in sorted(ops):
        op = ops[name]
        out.append(usage(op))
        tags = [t for t, on in (("model", op.uses_model), ("sandbox", op.uses_sandbox)) if on]
        out.append(f"    {op.summary}" + (f"  [uses {', '.join(tags)}]" if tags else ""))
        out.append(f"    removed (attribution): {ablation_text(op)}")
        out.append("")
    common = ", ".join(f"{o.name} N" for o in COMMON_OPTIONS)
    out.append(f"Every step also takes: with {common} (see `treadle ops --format markdown`).")
    return "\n".join(out) + "\n"


def _row(*cells: str) -> str:
    return "| " + " | ".join(cells) + " |"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown() -> str:
    ops = operators()
    lines = [
        "# Operator reference",
        "",
        "<!-- Generated from the operator registry by "
        "`python -m treadle.stdlib_ops.docs > docs/operators.md`; do not edit by hand. "
        "tests/ops/test_docs.py checks that it is current. -->",
        "",
        "A step reads like a sentence: `NAME = OPERATOR [SUBJECT] {PREPOSITION VALUE} "
        "[with OPTION VALUE {, OPTION VALUE}]`. Below, `<name: type>` is a value you supply, "
        "`[...]` is optional, and `-> T` is the type of the step's value (records are read "
        "with dots: `review.approved`).",
        "",
        "| operator | signature | what it does |",
        "|---|---|---|",
    ]
    for name in sorted(ops):
        anchor = name.replace(" ", "-")
        lines.append(
            f"| [`{name}`](#{anchor}) | `{_cell(usage(ops[name]))}` | {_cell(ops[name].summary)} |"
        )
    lines += [
        "",
        "## Options every step takes",
        "",
        "The scheduler applies these, not the operator.",
        "",
        "| option | type | default | meaning |",
        "|---|---|---|---|",
    ]
    for o in COMMON_OPTIONS:
        lines.append(f"| `{o.name}` | {o.type} | {_default(o.default)} | {_cell(o.description)} |")
    for name in sorted(ops):
        lines += ["", *_markdown_op(ops[name])]
    return "\n".join(lines) + "\n"


def _markdown_op(op: Operator) -> list[str]:
    sig = op.signature
    uses = [t for t, on in (("a model", op.uses_model), ("the sandbox", op.uses_sandbox)) if on]
    lines = [f"## {op.name}", "", op.summary, "", "```", usage(op), "```", ""]
    if uses:
        lines += [f"Uses {' and '.join(uses)}.", ""]
    details = _details(op)
    if details:
        lines += [details, ""]
    examples = EXAMPLES.get(op.name, ())
    if examples:
        lines += ["Examples:", "", "```", *examples, "```", ""]
    lines += ["| parameter | written | type | required | meaning |", "|---|---|---|---|---|"]
    for p in sig.params:
        written = "subject" if p.prep is None else f"`{p.prep}`"
        required = "yes" if p.required else "no"
        lines.append(
            _row(f"`{p.name}`", written, type_text(p.type), required, _cell(p.description))
        )
    if sig.options:
        lines += ["", "| option | type | default | meaning |", "|---|---|---|---|"]
        for o in sig.options:
            default = f"`{_option_default(o)}`"
            lines.append(_row(f"`{o.name}`", type_text(o.type), default, _cell(o.description)))
    lines += ["", f"Value: `{type_text(sig.output, fields=True)}`"]
    fields = _output_fields(op)
    if fields:
        lines += ["", "| field | type | meaning |", "|---|---|---|"]
        lines += [f"| `{n}` | {t} | {_cell(d)} |" for n, t, d in fields]
    lines += ["", f"Removed by `treadle attribute`: {ablation_text(op)}."]
    return lines


def render_selected(ops: list[Operator], fmt: str) -> str:
    """Some operators only, in one of the formats of `RENDERERS`."""
    if fmt == "json":
        return json.dumps([as_dict(op) for op in ops], indent=2, ensure_ascii=False) + "\n"
    if fmt == "markdown":
        return "\n\n".join("\n".join(_markdown_op(op)) for op in ops) + "\n"
    out = []
    for op in ops:
        out += [usage(op), f"    {op.summary}"]
        out += [f"    {p.prep or 'subject'} {p.name}: {p.description}" for p in op.signature.params]
        out += [
            f"    with {o.name} ({_option_default(o)}): {o.description}"
            for o in op.signature.options
        ]
        out.append(f"    removed (attribution): {ablation_text(op)}")
        out.append("")
    return "\n".join(out)


RENDERERS = {"text": render_text, "json": render_json, "markdown": render_markdown}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    fmt = args[0] if args else "markdown"
    if fmt not in RENDERERS:
        print(f"usage: python -m treadle.stdlib_ops.docs [{'|'.join(RENDERERS)}]", file=sys.stderr)
        return 2
    sys.stdout.write(RENDERERS[fmt]())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
