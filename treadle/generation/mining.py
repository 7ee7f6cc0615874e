"""Mining a capability library: sub-graphs that recur across a corpus of workflows.

A candidate is a run of 2..`max_steps` consecutive operator steps in one block whose steps are
wired together (each later step reads an earlier one) and whose intermediate values are read
nowhere else, so the run can be replaced by one call binding the last step's name. Its shape
is what must recur: the same operators, the same prepositions and options, the same wiring
between the steps, the same constants; what may differ is the names (outside values become
inputs) and the prompt text (a string that reads only outside values becomes an input, filled
at the call site, so it renders to the same text).

The patterns found at least `min_support` times (most steps × occurrences first, never
overlapping) become parameterised workflows with generated names and doc comments; with
`rewrite`, each occurrence becomes a call of its workflow, and the corpus `use`s the library.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from treadle.compiler import ast as A
from treadle.runtime.types import Type

Shape = tuple[Any, ...]


@dataclass
class _Occurrence:
    file: int
    block: int
    start: int
    steps: tuple[A.Step, ...]
    #: outside expressions (dotted paths or strings) in slot order
    slots: list[A.Expr]


@dataclass
class _Pattern:
    shape: Shape
    occurrences: list[_Occurrence] = field(default_factory=list)


class MinedCapability(BaseModel):
    name: str
    doc: str
    source: str
    occurrences: list[str]
    steps: int


class MineResult(BaseModel):
    library: str
    capabilities: list[MinedCapability]
    #: file → rewritten text (only with `rewrite`)
    rewritten: dict[str, str] = {}


def _walk_reads(node: Any, out: set[str]) -> None:
    """Every name read anywhere under `node` (names, templates, dotted paths' heads)."""
    if isinstance(node, A.Name | A.Interp):
        out.add(node.path[0])
        return
    if isinstance(node, A.Node):
        for name in type(node).model_fields:
            _walk_reads(getattr(node, name), out)
    elif isinstance(node, tuple | list):
        for x in node:
            _walk_reads(x, out)


def _bound(body: Sequence[A.Statement], out: list[str]) -> None:
    for s in body:
        if isinstance(s, A.Step):
            out.append(s.name)
            if isinstance(s.value, A.ForEach) and s.value.body:
                _bound(s.value.body, out)
        elif isinstance(s, A.If):
            for arm in s.arms:
                _bound(arm.body, out)
        elif isinstance(s, A.Repeat):
            _bound(s.body, out)


def _blocks(body: tuple[A.Statement, ...]) -> Iterator[tuple[A.Statement, ...]]:
    """Every statement list, outermost first, in a fixed order."""
    yield body
    for s in body:
        if isinstance(s, A.If):
            for arm in s.arms:
                yield from _blocks(arm.body)
        elif isinstance(s, A.Repeat):
            yield from _blocks(s.body)
        elif isinstance(s, A.Step) and isinstance(s.value, A.ForEach) and s.value.body:
            yield from _blocks(s.value.body)


class _Miner:
    def __init__(self, operators: Mapping[str, Any], min_steps: int, max_steps: int) -> None:
        self.operators = operators
        self.min_steps = min_steps
        self.max_steps = max_steps

    def operator(self, s: A.Statement) -> tuple[str, A.Expr | None] | None:
        """(operator name, subject) of an operator step, else None."""
        if not isinstance(s, A.Step) or not isinstance(s.value, A.Command):
            return None
        from treadle.compiler.calls import split_words

        words = split_words(s.value.terms)
        for k in range(len(words), 0, -1):
            name = " ".join(words[:k])
            if name in self.operators:
                rest = s.value.terms[k:]
                if len(rest) > 1:
                    return None
                return name, (rest[0] if rest else None)
        return None

    def fragment_shape(self, steps: Sequence[A.Step]) -> tuple[Shape, list[A.Expr]] | None:
        internal: dict[str, int] = {}
        slots: list[A.Expr] = []
        slot_keys: dict[str, int] = {}
        shape: list[Any] = []

        def slot(e: A.Expr) -> int:
            key = e.model_dump_json(exclude={"span"}) if isinstance(e, A.Str) else ".".join(e.path)  # type: ignore[union-attr]
            if key not in slot_keys:
                slot_keys[key] = len(slots)
                slots.append(e)
            return slot_keys[key]

        def value(e: A.Expr) -> Any:
            if isinstance(e, A.Name):
                if e.path[0] in internal:
                    return ("int", internal[e.path[0]], e.path[1:])
                return ("ext", slot(e))
            if isinstance(e, A.Str):
                heads = {p.path[0] for p in e.parts if isinstance(p, A.Interp)}
                if not heads & set(internal):
                    return ("ext", slot(e))  # prompt text: an input, rendered at the call site
                parts: list[Any] = []
                for p in e.parts:
                    if isinstance(p, str):
                        parts.append(p)
                    elif p.path[0] in internal:
                        parts.append(("int", internal[p.path[0]], p.path[1:]))
                    else:
                        parts.append(("ext", slot(A.new(A.Name, path=p.path))))
                return ("tmpl", tuple(parts))
            if isinstance(e, A.Num | A.Bool):
                return ("const", e.value)
            if isinstance(e, A.ListLit):
                items = [value(i) for i in e.items]
                return None if None in items else ("list", tuple(items))
            return None

        for i, s in enumerate(steps):
            op = self.operator(s)
            if op is None:
                return None
            name, subject = op
            cmd = s.value
            assert isinstance(cmd, A.Command)
            parts: list[Any] = [name, value(subject) if subject is not None else None]
            parts += [(a.prep, value(a.value)) for a in cmd.args]
            parts += [("with", o.name, value(o.value)) for o in cmd.options]
            if any(p is None for p in parts[2:]) or (subject is not None and parts[1] is None):
                return None
            if i > 0 and not any(
                "'int'" in repr(p) for p in parts[1:]
            ):  # every later step reads an earlier one
                return None
            shape.append(tuple(parts))
            if s.name in internal:
                return None
            internal[s.name] = i
        return tuple(shape), slots

    def occurrences(self, files: Sequence[A.Module]) -> dict[Shape, _Pattern]:
        patterns: dict[Shape, _Pattern] = {}
        for fi, module in enumerate(files):
            bi = 0
            for wf in module.workflows:
                for block in _blocks(wf.body):
                    bi += 1
                    self._block(fi, bi, wf, block, patterns)
        return patterns

    def _block(
        self,
        fi: int,
        bi: int,
        wf: A.Workflow,
        block: tuple[A.Statement, ...],
        patterns: dict[Shape, _Pattern],
    ) -> None:
        outputs = {o.name for o in wf.outputs}
        for start in range(len(block)):
            for n in range(self.min_steps, self.max_steps + 1):
                steps = block[start : start + n]
                if len(steps) < n or not all(isinstance(s, A.Step) for s in steps):
                    break
                got = self.fragment_shape(steps)  # type: ignore[arg-type]
                if got is None:
                    continue
                shape, slots = got
                inner = {s.name for s in steps[:-1]}  # type: ignore[union-attr]
                if inner & outputs:
                    continue
                # intermediates read or bound anywhere else would change meaning
                others: set[str] = set()
                rest = [x for x in _all_statements(wf.body) if not any(x is s for s in steps)]
                for x in rest:
                    _walk_reads(_own_parts(x), others)
                bound: list[str] = []
                _bound(tuple(rest), bound)
                if inner & others or inner & set(bound):
                    continue
                patterns.setdefault(shape, _Pattern(shape)).occurrences.append(
                    _Occurrence(fi, bi, start, tuple(steps), slots)  # type: ignore[arg-type]
                )


def _all_statements(body: tuple[A.Statement, ...]) -> list[A.Statement]:
    out: list[A.Statement] = []
    for block in _blocks(body):
        out.extend(block)
    return out


def _own_parts(s: A.Statement) -> Any:
    """What a statement itself reads (not the statements nested in its blocks)."""
    if isinstance(s, A.Step):
        if isinstance(s.value, A.ForEach):
            return (s.value.over, s.value.command)
        return s.value
    if isinstance(s, A.If):
        return tuple(arm.cond for arm in s.arms)
    if isinstance(s, A.Repeat):
        return (s.bound, s.until)
    if isinstance(s, A.Return):
        return s.value
    return ()


def _declared(t: Type) -> str:
    if t.kind in ("text", "number", "boolean", "code", "json"):
        return t.kind
    if t.kind == "list" and t.item is not None:
        return f"list of {_declared(t.item)}"
    return "json"


class _Emitter:
    """Writes a pattern as a workflow and its occurrences as calls."""

    def __init__(self, operators: Mapping[str, Any]) -> None:
        self.operators = operators
        self.used_names: set[str] = set()

    def name(self, ops: list[str]) -> str:
        base = "_then_".join(o.replace(" ", "_") for o in ops)
        name, k = base, 2
        while name in self.used_names:
            name, k = f"{base}_{k}", k + 1
        self.used_names.add(name)
        return name

    def slot_types(self, occ: _Occurrence) -> list[Type]:
        """Each input's type: the parameter or option it fills (templates: json)."""
        from treadle.runtime.types import JSON, TEXT

        types: list[Type | None] = [None] * len(occ.slots)
        keys = [_slot_key(e) for e in occ.slots]
        for s in occ.steps:
            cmd = s.value
            assert isinstance(cmd, A.Command)
            name = _op_name(cmd, self.operators)
            sig = self.operators[name].signature
            pairs: list[tuple[A.Expr, Type]] = []
            subject = cmd.terms[len(name.split()) :]
            if subject and sig.subject is not None:
                pairs.append((subject[0], sig.subject.type))
            for a in cmd.args:
                p = sig.by_prep(a.prep)
                if p is not None:
                    pairs.append((a.value, p.type))
            for o in cmd.options:
                opt = sig.option(o.name)
                if opt is not None:
                    pairs.append((o.value, opt.type))
            for e, t in pairs:
                k = _slot_key(e)
                if k in keys and types[keys.index(k)] is None:
                    types[keys.index(k)] = t
        return [
            t if t is not None else (TEXT if isinstance(e, A.Str) else JSON)
            for t, e in zip(types, occ.slots, strict=True)
        ]

    def workflow(self, pattern: _Pattern, name: str, files: Sequence[str]) -> tuple[str, list[str]]:
        occ = pattern.occurrences[0]
        types = self.slot_types(occ)
        inputs = _input_names(occ)
        rename = {_slot_key(e): n for e, n in zip(occ.slots, inputs, strict=True)}
        internal = {s.name: f"s{i + 1}" for i, s in enumerate(occ.steps)}
        last = occ.steps[-1]
        out_t = self._output_type(last)
        internal[last.name] = "result"
        body = []
        for s in occ.steps:
            body.append(
                A.new(A.Step, name=internal[s.name], value=_rename(s.value, internal, rename))
            )
        ops = [_op_name(s.value, self.operators) for s in occ.steps]  # type: ignore[arg-type]
        where = sorted({files[o.file] for o in pattern.occurrences})
        doc = (
            f"# {' → '.join(ops)}: mined from {len(pattern.occurrences)} occurrences in "
            f"{', '.join(Path(w).name for w in where)}."
        )
        wf = A.new(
            A.Workflow,
            name=name,
            inputs=tuple(
                A.new(A.Param, name=n, type=_typeref(_declared(t)))
                for n, t in zip(inputs, types, strict=True)
            ),
            outputs=(A.new(A.Param, name="result", type=_typeref(out_t)),),
            body=tuple(body),
            comments=(doc,),
        )
        return _format(A.new(A.Module, items=(wf,))), inputs

    def _output_type(self, last: A.Step) -> str:
        cmd = last.value
        assert isinstance(cmd, A.Command)
        op = self.operators[_op_name(cmd, self.operators)]
        t = op.signature.output
        samples = any(o.name == "samples" for o in cmd.options)
        return f"list of {_declared(t)}" if samples else _declared(t)

    def call(self, occ: _Occurrence, name: str, inputs: list[str]) -> A.Step:
        subject = occ.slots[0] if occ.slots else None
        terms: tuple[A.Expr, ...] = (A.new(A.Name, path=(name,)),)
        if subject is not None:
            terms += (subject,)
        options = tuple(
            A.new(A.Option, name=n, value=e) for n, e in zip(inputs[1:], occ.slots[1:], strict=True)
        )
        last = occ.steps[-1]
        first = occ.steps[0]
        return A.new(
            A.Step,
            name=last.name,
            value=A.new(A.Command, terms=terms, options=options),
            comments=first.comments,
            trailing=first.trailing,
        )


def _slot_key(e: A.Expr) -> str:
    if isinstance(e, A.Name):
        return ".".join(e.path)
    return e.model_dump_json(exclude={"span"})


def _op_name(cmd: A.Command, operators: Mapping[str, Any]) -> str:
    from treadle.compiler.calls import split_words

    words = split_words(cmd.terms)
    for k in range(len(words), 0, -1):
        if " ".join(words[:k]) in operators:
            return " ".join(words[:k])
    raise KeyError(words)


def _input_names(occ: _Occurrence) -> list[str]:
    from treadle.generation.decoding.scope_grammar import KEYWORDS

    names: list[str] = []
    for _i, e in enumerate(occ.slots):
        base = "_".join(e.path) if isinstance(e, A.Name) else "prompt"
        if base in KEYWORDS or base == "result" or (base.startswith("s") and base[1:].isdigit()):
            base = f"in_{base}"
        name, k = base, 2
        while name in names:
            name, k = f"{base}{k}", k + 1
        names.append(name)
    return names


def _typeref(text: str) -> A.TypeRef:
    words = text.split()
    if words[:2] == ["list", "of"]:
        return A.new(A.TypeRef, name="list", item=_typeref(" ".join(words[2:])))
    return A.new(A.TypeRef, name=text)


def _rename(node: Any, internal: Mapping[str, str], external: Mapping[str, str]) -> Any:
    """A copy of a command with internal names renamed and outside values made inputs."""
    if isinstance(node, A.Str):
        key = node.model_dump_json(exclude={"span"})
        if key in external:
            return A.new(A.Name, path=(external[key],))
        parts: list[str | A.Interp] = []
        for p in node.parts:
            if isinstance(p, str):
                parts.append(p)
            elif p.path[0] in internal:
                parts.append(A.new(A.Interp, path=(internal[p.path[0]], *p.path[1:])))
            else:
                parts.append(A.new(A.Interp, path=(external[".".join(p.path)],)))
        return A.new(A.Str, parts=tuple(parts))
    if isinstance(node, A.Name):
        if node.path[0] in internal:
            return A.new(A.Name, path=(internal[node.path[0]], *node.path[1:]))
        key = ".".join(node.path)
        if key in external:
            return A.new(A.Name, path=(external[key],))
        return node  # an operator word
    if isinstance(node, A.Node):
        updates = {}
        for name in type(node).model_fields:
            if name == "span":
                continue
            v = getattr(node, name)
            if isinstance(v, A.Node | tuple):
                updates[name] = _rename(v, internal, external)
        return node.model_copy(update=updates)
    if isinstance(node, tuple):
        return tuple(_rename(x, internal, external) for x in node)
    return node


def _format(module: A.Module) -> str:
    from treadle.compiler.formatter import format_module

    return format_module(module)


def _replace_blocks(
    body: tuple[A.Statement, ...],
    counter: list[int],
    edits: Mapping[int, list[tuple[int, int, A.Step]]],
) -> tuple[A.Statement, ...]:
    counter[0] += 1
    mine = sorted(edits.get(counter[0], []), reverse=True)
    out = list(body)
    # nested blocks first (their numbering follows _blocks' order: this block, then children)
    for i, s in enumerate(out):
        if isinstance(s, A.If):
            arms = tuple(
                a.model_copy(update={"body": _replace_blocks(a.body, counter, edits)})
                for a in s.arms
            )
            out[i] = s.model_copy(update={"arms": arms})
        elif isinstance(s, A.Repeat):
            out[i] = s.model_copy(update={"body": _replace_blocks(s.body, counter, edits)})
        elif isinstance(s, A.Step) and isinstance(s.value, A.ForEach) and s.value.body:
            fe = s.value.model_copy(update={"body": _replace_blocks(s.value.body, counter, edits)})
            out[i] = s.model_copy(update={"value": fe})
    for start, n, call in mine:
        out[start : start + n] = [call]
    return tuple(out)


def mine(
    paths: Sequence[str | Path],
    *,
    library_path: str | Path = "lib.flow",
    min_support: int = 2,
    min_steps: int = 2,
    max_steps: int = 4,
    max_capabilities: int = 10,
    rewrite: bool = False,
    rewrite_dir: str | Path | None = None,
    operators: Mapping[str, Any] | None = None,
) -> MineResult:
    """Find recurring sub-graphs in the given `.flow` files; see the module doc.

    Raises CompileError when an input file does not compile (mining a broken corpus would
    carry its mistakes into the library)."""
    from treadle.compiler import compile_file
    from treadle.compiler.parsing import parse

    if operators is None:
        from treadle.stdlib_ops.registry import operators as registry

        operators = registry()
    files = [str(p) for p in paths]
    modules = []
    for f in files:
        compile_file(f)
        module, _ = parse(Path(f).read_text(encoding="utf-8"), f)
        modules.append(module)
    miner = _Miner(operators, min_steps, max_steps)
    patterns = miner.occurrences(modules)
    ranked = sorted(
        (p for p in patterns.values() if len(p.occurrences) >= min_support),
        key=lambda p: (-len(p.shape) * len(p.occurrences), -len(p.shape), repr(p.shape)),
    )
    taken: set[tuple[int, int, int]] = set()
    emitter = _Emitter(operators)
    caps: list[MinedCapability] = []
    sources: list[str] = []
    edits: dict[int, dict[int, list[tuple[int, int, A.Step]]]] = {}
    for p in ranked:
        if len(caps) >= max_capabilities:
            break
        free = [
            o
            for o in p.occurrences
            if not any((o.file, o.block, o.start + k) in taken for k in range(len(p.shape)))
        ]
        if len(free) < min_support:
            continue
        p = _Pattern(p.shape, free)
        ops = [_op_name(s.value, operators) for s in free[0].steps]  # type: ignore[arg-type]
        name = emitter.name(ops)
        source, inputs = emitter.workflow(p, name, files)
        for o in free:
            for k in range(len(p.shape)):
                taken.add((o.file, o.block, o.start + k))
            edits.setdefault(o.file, {}).setdefault(o.block, []).append(
                (o.start, len(p.shape), emitter.call(o, name, inputs))
            )
        sources.append(source)
        caps.append(
            MinedCapability(
                name=name,
                doc=source.splitlines()[0].lstrip("# "),
                source=source,
                occurrences=[f"{files[o.file]}:{o.steps[0].span.line}" for o in free],
                steps=len(p.shape),
            )
        )
    header = "# A capability library mined by `treadle library mine` from:\n" + "".join(
        f"#   {f}\n" for f in files
    )
    library = header + "\n" + "\n".join(sources) if sources else header
    result = MineResult(library=library, capabilities=caps)
    if rewrite:
        lib = Path(library_path).resolve()
        out_dir = Path(rewrite_dir) if rewrite_dir is not None else None
        for fi, module in enumerate(modules):
            if fi not in edits:
                continue
            counter = [0]
            items: list[A.Use | A.Workflow] = []
            for item in module.items:
                if isinstance(item, A.Workflow):
                    item = item.model_copy(
                        update={"body": _replace_blocks(item.body, counter, edits[fi])}
                    )
                items.append(item)
            target_dir = (out_dir or Path(files[fi]).parent).resolve()
            rel = os.path.relpath(lib, target_dir)
            use = A.new(A.Use, path=rel)
            result.rewritten[files[fi]] = _format(
                module.model_copy(update={"items": (use, *items)})
            )
    return result
