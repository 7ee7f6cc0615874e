"""Drawings of a Program for people: Mermaid flowcharts and Graphviz dot.

Composite nodes (branches, loops, maps) are drawn as subgraphs holding their bodies; an edge
goes from every node a node reads to that node. Only for reading, never parsed back.
"""

from __future__ import annotations

import re

from treadle.runtime import ir


def _label(n: ir.Node) -> str:
    if isinstance(n, ir.Step):
        return f"{n.name} = {n.op}"
    if isinstance(n, ir.Call):
        return f"{n.name} = {n.workflow}(…)"
    if isinstance(n, ir.Loop):
        return f"repeat up to {n.max_iters}"
    if isinstance(n, ir.Map):
        return f"{n.name} = for each {n.var}"
    return "if"


def _deps(n: ir.Node) -> list[str]:
    exprs: list[ir.Expr] = []
    if isinstance(n, ir.Step):
        exprs = [*n.args.values(), *n.options.values()]
    elif isinstance(n, ir.Call):
        exprs = list(n.args.values())
    elif isinstance(n, ir.Branch):
        exprs = [a.when for a in n.arms if a.when is not None]
    elif isinstance(n, ir.Loop):
        exprs = list(n.init.values())
    elif isinstance(n, ir.Map):
        exprs = [n.over]
    return list(dict.fromkeys(r.name for e in exprs for r in ir.refs(e)))


def _walk(graph: ir.Graph) -> list[tuple[ir.Node, list[ir.Graph], list[str]]]:
    out = []
    for n in graph.nodes:
        subs: list[ir.Graph] = []
        labels: list[str] = []
        if isinstance(n, ir.Branch):
            subs = [a.body for a in n.arms]
            labels = ["else" if a.when is None else f"arm {i + 1}" for i, a in enumerate(n.arms)]
        elif isinstance(n, ir.Loop | ir.Map):
            subs, labels = [n.body], ["body"]
        out.append((n, subs, labels))
    return out


def _mid(name: str) -> str:
    return "n_" + re.sub(r"[^A-Za-z0-9_]", "_", name)


def _quote(text: str) -> str:
    return text.replace('"', "'")


def to_mermaid(program: ir.Program) -> str:
    lines = ["flowchart TD"]

    def graph(g: ir.Graph, depth: int, scope: dict[str, str], key: str) -> None:
        pad = "  " * depth
        scope = dict(scope)
        for p in g.params:  # parameters are per graph: give each its own drawing id
            scope[p] = _mid(f"{key}.{p}")
            lines.append(f'{pad}{scope[p]}(["{_quote(p)}"])')
        for n, subs, labels in _walk(g):
            nid = _mid(n.id)
            if subs:
                lines.append(f'{pad}subgraph {nid}["{_quote(_label(n))}"]')
                for sub, label in zip(subs, labels, strict=True):
                    if len(subs) > 1:
                        tag = label.replace(" ", "")
                        lines.append(f'{pad}  subgraph {nid}_{tag}["{label}"]')
                        graph(sub, depth + 2, scope, f"{n.id}.{tag}")
                        lines.append(f"{pad}  end")
                    else:
                        graph(sub, depth + 1, scope, n.id)
                lines.append(f"{pad}end")
            else:
                lines.append(f'{pad}{nid}["{_quote(_label(n))}"]')
            for d in _deps(n):
                lines.append(f"{pad}{scope.get(d, _mid(d))} --> {nid}")

    for name, wf in program.workflows.items():
        lines.append(f'  subgraph {_mid("wf_" + name)}["workflow {_quote(name)}"]')
        graph(wf.graph, 2, {}, name)
        top = {p: _mid(f"{name}.{p}") for p in wf.graph.params}
        for out, e in wf.graph.outputs.items():
            oid = _mid(f"{name}.out.{out}")
            lines.append(f'    {oid}[/"{_quote(out)}"/]')
            for r in ir.refs(e):
                lines.append(f"    {top.get(r.name, _mid(r.name))} --> {oid}")
        lines.append("  end")
    return "\n".join(lines) + "\n"


def to_dot(program: ir.Program) -> str:
    lines = ["digraph treadle {", "  rankdir=TB;", "  node [shape=box, fontname=Helvetica];"]
    counter = [0]

    def q(s: str) -> str:
        return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'

    def graph(g: ir.Graph, depth: int, scope: dict[str, str], key: str) -> None:
        pad = "  " * depth
        scope = dict(scope)
        for p in g.params:  # per graph, as in Mermaid: a bare name would merge across clusters
            scope[p] = f"input {key}.{p}"
            lines.append(f"{pad}{q(scope[p])} [shape=ellipse, label={q(p)}];")
        for n, subs, labels in _walk(g):
            if subs:
                counter[0] += 1
                lines.append(f"{pad}subgraph cluster_{counter[0]} {{")
                lines.append(f"{pad}  label={q(_label(n))};")
                lines.append(f"{pad}  {q(n.id)} [shape=diamond, label={q(_label(n))}];")
                for sub, label in zip(subs, labels, strict=True):
                    counter[0] += 1
                    lines.append(f"{pad}  subgraph cluster_{counter[0]} {{ label={q(label)};")
                    graph(sub, depth + 2, scope, f"{n.id}.{label.replace(' ', '')}")
                    lines.append(f"{pad}  }}")
                lines.append(f"{pad}}}")
            else:
                lines.append(f"{pad}{q(n.id)} [label={q(_label(n))}];")
            for d in _deps(n):
                lines.append(f"{pad}{q(scope.get(d, d))} -> {q(n.id)};")

    for name, wf in program.workflows.items():
        counter[0] += 1
        lines.append(f"  subgraph cluster_{counter[0]} {{")
        lines.append(f"    label={q('workflow ' + name)};")
        graph(wf.graph, 2, {}, name)
        top = {p: f"input {name}.{p}" for p in wf.graph.params}
        for out, e in wf.graph.outputs.items():
            oid = f"{name}.out.{out}"
            lines.append(f"    {q(oid)} [shape=parallelogram, label={q(out)}];")
            for r in ir.refs(e):
                lines.append(f"    {q(top.get(r.name, r.name))} -> {q(oid)};")
        lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"
