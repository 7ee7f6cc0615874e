"""The closed set of things a generated step may call: the registry's operators and the
selected capability workflows, each with its parameters, options and value type.

Both the prompt and the grammar read this, so the model is told about exactly what it may
write and can write nothing else.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from treadle.runtime.types import Type, parse_type, record

#: the options a generated step may set: the ones that change what a step does; limits,
#: the model and the seed are the run's to decide (and fewer choices keep a small model on task)
GENERATED_OPTIONS = frozenset({"temperature", "max_tokens", "attempts", "entry_point", "system"})


@dataclass(frozen=True)
class ParamSpec:
    name: str
    #: None: the subject
    prep: str | None
    type: Type
    required: bool


@dataclass(frozen=True)
class OptionSpec:
    name: str
    type: Type
    required: bool = False


@dataclass(frozen=True)
class Callee:
    name: str
    kind: Literal["operator", "workflow"]
    params: tuple[ParamSpec, ...]
    options: tuple[OptionSpec, ...]
    output: Type
    summary: str
    uses_model: bool = False
    uses_sandbox: bool = False
    #: for capabilities: the `.flow` file that defines it
    file: str | None = None
    #: the value is one of the items of this list parameter (`Signature.item_of`): its type
    #: is that argument's item type, as the checker types it
    item_of: str | None = None

    def usage(self) -> str:
        """One line: `verify_number <problem: text> with claimed <number> -> ...`."""
        parts = [self.name]
        for p in self.params:
            word = f"<{p.name}: {p.type}>"
            part = word if p.prep is None else f"{p.prep} {word}"
            parts.append(part if p.required else f"[{part}]")
        req = [o for o in self.options if o.required]
        if req:
            parts.append("with " + ", ".join(f"{o.name} <{o.type}>" for o in req))
        return " ".join(parts) + f" -> {_type_text(self.output)}"


def _type_text(t: Type) -> str:
    if t.kind == "record" and t.fields:
        inner = ", ".join(f"{n}: {ft}" for n, ft in t.fields)
        return f"{t.name or 'record'} {{{inner}}}"
    return str(t)


def from_operator(op: Any) -> Callee:
    sig = op.signature
    params = tuple(ParamSpec(p.name, p.prep, p.type, p.required) for p in sig.params)
    options = [OptionSpec(o.name, o.type) for o in sig.options if o.name in GENERATED_OPTIONS]
    options.append(OptionSpec("samples", parse_type("number")))
    return Callee(
        name=op.name,
        kind="operator",
        params=params,
        options=tuple(options),
        output=sig.output,
        summary=op.summary,
        uses_model=op.uses_model,
        uses_sandbox=op.uses_sandbox,
        item_of=getattr(sig, "item_of", None),
    )


@dataclass(frozen=True)
class Capability:
    """A library workflow: its signature, doc comment and file."""

    name: str
    inputs: tuple[tuple[str, Type], ...]
    outputs: tuple[tuple[str, Type], ...]
    doc: str
    file: str
    source: str

    def header(self) -> str:
        ins = ", ".join(f"{n}: {t}" for n, t in self.inputs)
        outs = ", ".join(f"{n}: {t}" for n, t in self.outputs)
        return f"workflow {self.name}({ins}) -> {outs}"

    def callee(self) -> Callee:
        first = self.inputs[0] if self.inputs else None
        params = (ParamSpec(first[0], None, first[1], True),) if first else ()
        options = tuple(OptionSpec(n, t, True) for n, t in self.inputs[1:])
        if len(self.outputs) == 1:
            output = self.outputs[0][1]
        else:
            output = record(self.name, dict(self.outputs))
        return Callee(
            name=self.name,
            kind="workflow",
            params=params,
            options=options,
            output=output,
            summary=self.doc.splitlines()[0] if self.doc else "",
            file=self.file,
        )


def load_capabilities(paths: Iterable[str | Path]) -> list[Capability]:
    """Every workflow of the given library files, with its doc comment (the comment lines
    right above it). Raises CompileError when a library file does not compile."""
    from treadle.compiler import compile_file
    from treadle.compiler.parsing import parse

    out: list[Capability] = []
    for path in paths:
        p = Path(path)
        compile_file(p)  # a broken library is the user's to fix, and said at once
        text = p.read_text(encoding="utf-8")
        module, _ = parse(text, str(p))
        lines = text.splitlines()
        for wf in module.workflows:
            doc = " ".join(c.lstrip("#").strip() for c in wf.comments if c.strip())
            start, end = wf.span.line, wf.span.end_line
            out.append(
                Capability(
                    name=wf.name,
                    inputs=tuple((i.name, parse_type(str(i.type))) for i in wf.inputs),
                    outputs=tuple((o.name, parse_type(str(o.type))) for o in wf.outputs),
                    doc=doc,
                    file=str(p),
                    source="\n".join(lines[start - 1 : end]),
                )
            )
    return out


def vocabulary(
    capabilities: Iterable[Capability] = (), operators: Mapping[str, Any] | None = None
) -> dict[str, Callee]:
    """Registry operators plus the given capabilities, by name."""
    if operators is None:
        from treadle.stdlib_ops.registry import operators as registry

        operators = registry()
    out = {name: from_operator(op) for name, op in sorted(operators.items())}
    for cap in capabilities:
        out[cap.name] = cap.callee()
    return out
