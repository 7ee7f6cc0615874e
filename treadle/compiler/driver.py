"""Files: `use "other.flow"`, program keys, and the compile of one file with what it uses.

A `use` path is relative to the folder of the file that writes it. The used file's workflows
become callable by their plain names in the using file (not transitively). In the Program,
workflows of the main file keep their names; a used file's are keyed by its path relative to
the main file's folder, without `.flow` (`lib/math.verify` for `verify` in `lib/math.flow`),
so two files may both have a `helper`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from treadle.compiler import ast as A
from treadle.compiler.calls import WorkflowSig
from treadle.compiler.diagnostics import Diagnostic, finish, make
from treadle.compiler.lower import WorkflowLowerer, signature
from treadle.compiler.parsing import parse
from treadle.compiler.scope import ScopeMark
from treadle.compiler.strings import check_strings
from treadle.runtime import ir
from treadle.runtime.ir import SourceSpan


@dataclasses.dataclass
class CompiledFile:
    file: str | None
    source: str
    module: A.Module
    #: this file's own workflows by plain name
    sigs: dict[str, WorkflowSig]
    #: every workflow this file needs, its own and those it uses, by program key
    workflows: dict[str, ir.Workflow]
    #: this file's diagnostics, finished (sorted, with excerpts)
    diags: list[Diagnostic]
    #: errors of the files it uses (each with its own file name)
    imported: list[Diagnostic] = dataclasses.field(default_factory=list)
    #: the bindings at each statement, per workflow (only when the compiler records them)
    scopes: dict[str, list[ScopeMark]] = dataclasses.field(default_factory=dict)
    #: the files this file `use`s, compiled, by the `use` path as written
    used: dict[str, CompiledFile] = dataclasses.field(default_factory=dict)

    @property
    def entry(self) -> str | None:
        wfs = self.module.workflows
        return self.sigs[wfs[0].name].key if wfs and wfs[0].name in self.sigs else None

    @property
    def all_diags(self) -> list[Diagnostic]:
        return self.diags + self.imported


class Compiler:
    """Compiles a main file and, once each, the files it uses."""

    def __init__(
        self, operators: Mapping[str, Any], root: Path, record_scopes: bool = False
    ) -> None:
        self.operators = operators
        self.root = root
        #: record the main file's bindings at every statement (for an editor)
        self.record_scopes = record_scopes
        self.done: dict[Path, CompiledFile] = {}
        self.stack: list[Path] = []
        self.ids: set[str] = set()

    def key_prefix(self, path: Path | None) -> str:
        if path is None or not self.stack or path == self.stack[0]:
            return ""
        try:
            rel = os.path.relpath(path, self.root)
        except ValueError:
            rel = str(path)
        rel = rel.replace(os.sep, "/")
        return (rel[: -len(".flow")] if rel.endswith(".flow") else rel) + "."

    def compile(self, text: str, file: str | None, path: Path | None) -> CompiledFile:
        if path is not None:
            self.stack.append(path)
        try:
            return self._compile(text, file, path)
        finally:
            if path is not None:
                self.stack.pop()

    def _compile(self, text: str, file: str | None, path: Path | None) -> CompiledFile:
        module, diags = parse(text, file)
        prefix = self.key_prefix(path)
        here = path.parent if path is not None else self.root
        visible: dict[str, WorkflowSig] = {}
        origin: dict[str, str] = {}
        workflows: dict[str, ir.Workflow] = {}
        imported: list[Diagnostic] = []
        used: dict[str, CompiledFile] = {}
        for use in module.uses:
            sub = self._use(use, here, file, diags)
            if sub is None:
                continue
            used[use.path] = sub
            workflows.update(sub.workflows)
            errors = [d for d in sub.all_diags if d.is_error]
            imported.extend(errors)
            if errors:
                n = len([d for d in sub.diags if d.is_error]) or len(errors)
                diags.append(
                    make(
                        "E703",
                        f"`{use.path}` has {n} error{'s' * (n != 1)}",
                        use.span,
                        hint="fix the used file first; its errors are listed with its name",
                        file=file,
                    )
                )
            for name, sig in sub.sigs.items():
                if name in visible:
                    diags.append(
                        make(
                            "E704",
                            f"workflow `{name}` comes from both `{origin[name]}` and `{use.path}`",
                            use.span,
                            file=file,
                        )
                    )
                    continue
                visible[name] = sig
                origin[name] = use.path
        sigs: dict[str, WorkflowSig] = {}
        lowerable: list[A.Workflow] = []
        for wf in module.workflows:
            if wf.name in sigs:
                diags.append(
                    make("E103", f"workflow `{wf.name}` is defined twice", wf.span, file=file)
                )
                continue
            if wf.name in visible:
                diags.append(
                    make(
                        "E704",
                        f"workflow `{wf.name}` is also defined in `{origin[wf.name]}`",
                        wf.span,
                        hint="rename one of them",
                        file=file,
                    )
                )
            sigs[wf.name] = signature(wf, prefix + wf.name, diags, file)
            lowerable.append(wf)
        visible.update(sigs)
        if not module.workflows and not diags:
            span = SourceSpan(line=1, column=1, end_line=1, end_column=1)
            diags.append(
                make(
                    "E105",
                    "the file defines no workflow",
                    span,
                    hint="write `workflow NAME(INPUT: TYPE) -> OUTPUT: TYPE` ... `end`",
                    file=file,
                )
            )
        record = self.record_scopes and len(self.stack) <= 1
        scopes: dict[str, list[ScopeMark]] = {}
        for wf in lowerable:
            lowered = WorkflowLowerer(
                wf,
                sigs[wf.name],
                operators=self.operators,
                workflows=visible,
                ids=self.ids,
                diags=diags,
                file=file,
                folder=here,
                scopes=scopes.setdefault(wf.name, []) if record else None,
            ).lower()
            workflows[lowered.name] = lowered
        diags.extend(_recursion(workflows, {s.key for s in sigs.values()}, file))
        diags.extend(check_strings(module, text, file))
        return CompiledFile(
            file=file,
            source=text,
            module=module,
            sigs=sigs,
            workflows=workflows,
            diags=finish(diags, text, file),
            imported=imported,
            scopes=scopes,
            used=used,
        )

    def _use(
        self, use: A.Use, here: Path, file: str | None, diags: list[Diagnostic]
    ) -> CompiledFile | None:
        target = Path(os.path.normpath(here / use.path))
        if target in self.stack:
            chain = [*self.stack[self.stack.index(target) :], target]
            shown = " → ".join(p.name for p in chain)
            diags.append(
                make("E702", f"import cycle: {shown}", use.span, hint="remove one `use`", file=file)
            )
            return None
        if target in self.done:
            return self.done[target]
        try:
            text = target.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            reason = (
                "does not exist" if isinstance(e, FileNotFoundError) else f"cannot be read ({e})"
            )
            diags.append(
                make(
                    "E701",
                    f"`{use.path}` {reason}",
                    use.span,
                    hint=f"paths are relative to the using file's folder ({_rel(here)})",
                    file=file,
                )
            )
            return None
        shown = os.path.relpath(target) if not os.path.isabs(use.path) else str(target)
        result = self.compile(text, shown, target)
        self.done[target] = result
        return result


def _calls(graph: ir.Graph) -> list[ir.Call]:
    out: list[ir.Call] = []
    for n in graph.nodes:
        if isinstance(n, ir.Call):
            out.append(n)
        elif isinstance(n, ir.Branch):
            for arm in n.arms:
                out.extend(_calls(arm.body))
        elif isinstance(n, ir.Loop | ir.Map):
            out.extend(_calls(n.body))
    return out


def _cycle(k: str, edges: dict[str, list[ir.Call]], path: list[str]) -> list[str] | None:
    """A call cycle reachable from `k` (depth first), as the list of keys around it."""
    if k in path:
        return [*path[path.index(k) :], k]
    if k not in edges:
        return None
    path.append(k)
    for c in edges[k]:
        found = _cycle(c.workflow, edges, path)
        if found:
            return found
    path.pop()
    return None


def _recursion(
    workflows: dict[str, ir.Workflow], mine: set[str], file: str | None
) -> list[Diagnostic]:
    """Cycles of calls among this file's workflows (a cycle through files is an import cycle)."""
    edges = {k: _calls(w.graph) for k, w in workflows.items() if k in mine}
    diags = []
    reported: set[str] = set()
    for start in sorted(edges):
        cycle = _cycle(start, edges, [])
        if cycle and cycle[0] == start and start not in reported:
            reported.update(cycle)
            call = next(c for c in edges[start] if c.workflow == cycle[1])
            s = call.span
            span = SourceSpan(
                line=s.line if s else 0,
                column=s.column if s else 0,
                end_line=s.end_line if s else 0,
                end_column=s.end_column if s else 0,
            )
            diags.append(
                make(
                    "E705",
                    f"workflow `{start}` calls itself ({' → '.join(cycle)}); it might never end",
                    span,
                    hint="unroll the recursion with `repeat up to N times`",
                    file=file,
                )
            )
    return diags


def _rel(path: Path) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)
