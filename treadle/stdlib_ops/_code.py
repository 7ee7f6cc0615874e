"""Helpers for operators that produce Python code (`write code`, `revise`).

A model's code reply often carries demo calls, prints or a `__main__` block after the function.
Those run (and may print or fail) when the code is tested, so they are cut away here.
"""

from __future__ import annotations

import ast

#: top-level statements that define something a caller may use; everything else is dropped
_KEEP = (
    ast.FunctionDef,
    ast.AsyncFunctionDef,
    ast.ClassDef,
    ast.Import,
    ast.ImportFrom,
    ast.Assign,
    ast.AnnAssign,
)


def is_code(text: str) -> bool:
    """Whether `text` is Python that defines or imports something (not prose, not a bare
    number, which would parse as an expression too)."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return False
    definitions = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom)
    return any(isinstance(node, definitions) for node in tree.body)


def sanitize(code: str) -> str:
    """Keep the definitions (imports, functions, classes, constants) and drop top-level
    calls, asserts and `if __name__ == "__main__":` blocks. Code that does not parse is
    returned unchanged, so the test that runs it reports the syntax error."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return code
    if all(isinstance(node, _KEEP) for node in tree.body):
        return code
    lines = code.splitlines(keepends=True)
    kept: list[str] = []
    for node in tree.body:
        if not isinstance(node, _KEEP):
            continue
        first = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
        end = node.end_lineno or node.lineno
        kept.append("".join(lines[first - 1 : end]).rstrip("\n") + "\n")
    return "\n".join(kept) if kept else code


def defines(code: str, name: str) -> bool:
    """Whether the code defines `name` at top level (a function, class or assignment)."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            if node.name == name:
                return True
        elif isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            return True
    return False
