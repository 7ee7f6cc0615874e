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


#: statements only code has (prose that happens to parse is a bare name or number)
_STATEMENTS = (
    *_KEEP,
    ast.AugAssign,
    ast.For,
    ast.While,
    ast.If,
    ast.With,
    ast.Try,
    ast.Return,
)


def is_code(text: str) -> bool:
    """Whether `text` is Python with at least one real statement: a definition, an import,
    an assignment, a loop, a call... Prose that happens to parse (`Paris`, `42`) is not."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return False
    return any(_is_statement(node) for node in tree.body)


def _is_statement(node: ast.stmt) -> bool:
    if isinstance(node, ast.AnnAssign):
        # `Answer: 8` parses as a bare annotation; code annotates with a value or a type name
        return node.value is not None
    if isinstance(node, ast.Expr):
        return isinstance(node.value, ast.Call)
    return isinstance(node, _STATEMENTS)


def only_definitions(code: str) -> bool:
    """Whether the code is a module of definitions alone (a function to test, not a script)."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    return bool(tree.body) and all(isinstance(node, _KEEP) for node in tree.body)


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
