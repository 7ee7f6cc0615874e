"""`return`: where it may stand, what it makes unreachable, and how it is lowered away.

The IR has no return node. Before lowering, the statements that follow an `if` one of whose
arms returns are moved into every arm that does not return (and into an else arm made for
the purpose), so each `return` ends its path and the runtime needs nothing extra. `return`
inside `repeat` or `for each` is rejected: a loop's turns always run to `until`.
"""

from __future__ import annotations

from treadle.compiler import ast as A
from treadle.compiler.diagnostics import Diagnostic, make


def check_returns(body: tuple[A.Statement, ...], file: str | None) -> list[Diagnostic]:
    """Unreachable code after `return`, and `return` inside loops."""
    diags: list[Diagnostic] = []
    _check_block(body, False, diags, file)
    return diags


def _check_block(
    body: tuple[A.Statement, ...], in_loop: bool, diags: list[Diagnostic], file: str | None
) -> None:
    for i, s in enumerate(body):
        if isinstance(s, A.Return) and in_loop:
            diags.append(
                make(
                    "E504",
                    "`return` cannot stand inside `repeat` or `for each`",
                    s.span,
                    hint="bind the value and let the loop end with `until`",
                    file=file,
                )
            )
        if isinstance(s, A.If):
            for arm in s.arms:
                _check_block(arm.body, in_loop, diags, file)
        elif isinstance(s, A.Repeat):
            _check_block(s.body, True, diags, file)
        elif isinstance(s, A.Step) and isinstance(s.value, A.ForEach) and s.value.body:
            _check_block(s.value.body, True, diags, file)
        if always_returns(s) and i + 1 < len(body):
            nxt = body[i + 1]
            diags.append(
                make(
                    "E503",
                    f"this code never runs: the `return` at line {_return_line(s)} ends "
                    "the workflow first",
                    nxt.span,
                    hint="remove it, or move it before the `return`",
                    file=file,
                )
            )
            return


def _return_line(s: A.Statement) -> int:
    if isinstance(s, A.If):
        for arm in s.arms:
            for t in arm.body:
                if always_returns(t) or isinstance(t, A.Return):
                    return _return_line(t)
    return s.span.line


def always_returns(s: A.Statement) -> bool:
    """Whether every path through `s` ends in `return`."""
    if isinstance(s, A.Return):
        return True
    if isinstance(s, A.If):
        has_else = s.arms[-1].cond is None
        return has_else and all(any(always_returns(t) for t in arm.body) for arm in s.arms)
    return False


def may_return(s: A.Statement) -> bool:
    if isinstance(s, A.Return):
        return True
    if isinstance(s, A.If):
        return any(may_return(t) for arm in s.arms for t in arm.body)
    return False


def normalize(body: tuple[A.Statement, ...]) -> tuple[A.Statement, ...]:
    """Move what follows an `if` that may return into its non-returning paths.

    Afterwards a `return` is always the last statement of its block, and an `if` that may
    return is the last statement of its block. Unreachable statements are dropped (they were
    reported by `check_returns`).
    """
    out: list[A.Statement] = []
    for i, s in enumerate(body):
        if isinstance(s, A.Return):
            out.append(s)
            return tuple(out)
        if isinstance(s, A.If) and may_return(s):
            rest = body[i + 1 :]
            arms = [a.model_copy(update={"body": normalize(a.body + rest)}) for a in s.arms]
            if s.arms[-1].cond is None:
                pass
            else:
                arms.append(A.new(A.Arm, cond=None, body=normalize(rest), span=s.span))
            out.append(s.model_copy(update={"arms": tuple(arms)}))
            return tuple(out)
        out.append(s)
    return tuple(out)
