"""Expressions: name resolution, template interpolation and typing, lowered to IR expressions.

Each expression is checked against the environment of the point where it is read: unknown
names (with a "did you mean"), names bound on some paths only, fields a record lacks, and
operands of the wrong type. An expression with an error still lowers (to a typeless
placeholder) so one mistake is reported once, not again by everything that reads it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

from treadle.compiler import ast as A
from treadle.compiler.diagnostics import Diagnostic, did_you_mean, excerpt, make
from treadle.compiler.ir_nodes import ir_node
from treadle.compiler.parsing.transformer import INVALID, template_file
from treadle.compiler.scope import Binding, Env
from treadle.runtime import ir
from treadle.runtime.ir import SourceSpan
from treadle.runtime.types import ANY, BOOLEAN, JSON, NULL, NUMBER, TEXT, Type, list_of

_PLACEHOLDER = ir_node(ir.Const, value=None)
#: how other languages spell `null`, for the hint of an undefined name
_NULL_SPELLINGS = {"None", "none", "nil", "NULL", "Null", "undefined", "nothing"}


def join_types(types: Iterable[Type]) -> Type:
    """The type of a value that may come from any of several places."""
    ts = list(types)
    if not ts:
        return ANY
    out = ts[0]
    for t in ts[1:]:
        if out.accepts(t):
            continue
        out = t if t.accepts(out) else ANY
    return out


def _is_bool(t: Type) -> bool:
    return t.kind in ("boolean", "any", "json")


def _is_num(t: Type) -> bool:
    return t.kind in ("number", "any", "json")


def _is_text(t: Type) -> bool:
    return t.kind in ("text", "code", "choice", "any", "json")


class ExprLowerer:
    """Lowers and types expressions against an environment, reporting into `diags`."""

    def __init__(
        self,
        diags: list[Diagnostic],
        file: str | None,
        on_read: Callable[[Binding], None],
        callables: Callable[[], Iterable[str]],
        quiet_names: bool = False,
        folder: Path | None = None,
    ) -> None:
        self.diags = diags
        self.file = file
        #: where `file "..."` paths start: the flow's folder
        self.folder = folder or Path.cwd()
        self.on_read = on_read
        self.callables = callables
        self.quiet_names = quiet_names

    def error(self, code: str, message: str, span: SourceSpan, hint: str | None = None) -> None:
        self.diags.append(make(code, message, span, hint=hint, file=self.file))

    # ------------------------------------------------------------ names

    def name(
        self, path: tuple[str, ...], span: SourceSpan, env: Env, *, code: str = "E101"
    ) -> tuple[ir.Expr, Type]:
        """A name with fields (`report.passed`), as a reference and its type."""
        head = path[0]
        if head == INVALID:
            return _PLACEHOLDER, ANY
        b = env.get(head)
        if b is None:
            if not self.quiet_names:
                self._undefined(head, span, env, code)
            return _PLACEHOLDER, ANY
        self.on_read(b)
        if b.quiet:
            return _PLACEHOLDER, ANY
        if b.partial:
            self.error(
                "E102",
                f"`{head}` is not bound on every path to here",
                span,
                hint=f"bind `{head}` before the `if`, or on every arm of it (add an `else`)",
            )
            return _PLACEHOLDER, ANY
        t = b.type
        for i, f in enumerate(path[1:], start=1):
            ft = t.field(f)
            if ft is None:
                where = ".".join(path[:i])
                fields = [n for n, _ in t.fields]
                hint = did_you_mean(f, fields) or (
                    f"`{where}` is {_a(t)}" + (f" with fields {_list(fields)}" if fields else "")
                )
                self.error("E302", f"`{where}` has no field `{f}`", span, hint=hint)
                return _PLACEHOLDER, ANY
            t = ft
        if len(path) == 1:
            return b.expr, t
        if isinstance(b.expr, ir.Ref):
            return ir_node(ir.Ref, name=b.expr.name, path=b.expr.path + path[1:]), t
        self.error("E302", f"`{head}` has no fields", span)
        return _PLACEHOLDER, ANY

    def _undefined(self, head: str, span: SourceSpan, env: Env, code: str) -> None:
        what = "the template reads" if code == "E401" else "name"
        message = (
            f"{what} `{head}`, which is not defined here"
            if code == "E401"
            else f"undefined name `{head}`"
        )
        hint = did_you_mean(head, env)
        if hint is None and head in _NULL_SPELLINGS:
            hint = "write `null` for no value (and `x is null` to test for it)"
        if hint is None and head in set(self.callables()):
            hint = f"`{head}` is an operator: call it in a step, `x = {head} ...`"
        if hint is None and code == "E401":
            hint = "write `{{` for a literal brace"
        self.error(code, message, span, hint=hint)

    # ------------------------------------------------------------ expressions

    def lower(self, e: A.Expr, env: Env) -> tuple[ir.Expr, Type]:
        if isinstance(e, A.Name):
            return self.name(e.path, e.span, env)
        if isinstance(e, A.Str):
            return self.string(e, env)
        if isinstance(e, A.PromptFile):
            return self.prompt_file(e, env)
        if isinstance(e, A.Num):
            return ir_node(ir.Const, value=e.value), NUMBER
        if isinstance(e, A.Bool):
            return ir_node(ir.Const, value=e.value), BOOLEAN
        if isinstance(e, A.Null):
            return ir_node(ir.Const, value=None), NULL
        if isinstance(e, A.ListLit):
            items = [self.lower(i, env) for i in e.items]
            return ir_node(ir.ListExpr, items=tuple(x for x, _ in items)), list_of(
                join_types(t for _, t in items)
            )
        if isinstance(e, A.ObjectLit):
            return self.object(e, env)
        if isinstance(e, A.UnaryOp):
            x, t = self.lower(e.operand, env)
            if e.op == "not":
                self._want(_is_bool, t, "`not`", "boolean", e.operand.span)
                return ir_node(ir.Unary, op="not", operand=x), BOOLEAN
            self._want(_is_num, t, "`-`", "number", e.operand.span)
            return ir_node(ir.Unary, op="neg", operand=x), NUMBER
        return self.binary(e, env)

    def object(self, e: A.ObjectLit, env: Env) -> tuple[ir.Expr, Type]:
        """A JSON object: the dynamic type (it is data for schemas, options and prompts)."""
        fields: dict[str, ir.Expr] = {}
        for p in e.pairs:
            if p.key in fields:
                self.error("E103", f"key `{p.key}` is given twice in this object", p.span)
            fields[p.key] = self.lower(p.value, env)[0]
        return ir_node(ir.ObjectExpr, fields=fields), JSON

    def prompt_file(self, e: A.PromptFile, env: Env) -> tuple[ir.Expr, Type]:
        """A prompt file's template, read now (the program holds its text, so its hash
        changes with the file); an unknown `{name}` is reported at the file's line."""
        target = self.folder / e.path
        try:
            text = target.read_text(encoding="utf-8-sig").replace("\r\n", "\n")
        except (OSError, UnicodeDecodeError) as err:
            reason = (
                "does not exist"
                if isinstance(err, FileNotFoundError)
                else f"cannot be read ({err})"
            )
            self.error(
                "E701",
                f"prompt file `{e.path}` {reason}",
                e.span,
                hint=f"paths are relative to the flow's folder ({_shown(self.folder)})",
            )
            return _PLACEHOLDER, TEXT
        own, before = self.file, len(self.diags)
        self.file = _shown(target)
        try:
            value = self.string(template_file(text), env)
        finally:
            self.file = own
        lines = text.splitlines()
        for i in range(before, len(self.diags)):
            d = self.diags[i]
            self.diags[i] = d.model_copy(update={"excerpt": excerpt(lines, d)})
        return value

    def string(self, e: A.Str, env: Env) -> tuple[ir.Expr, Type]:
        if all(isinstance(p, str) for p in e.parts):
            return ir_node(ir.Const, value="".join(p for p in e.parts if isinstance(p, str))), TEXT
        parts: list[str | ir.Expr] = []
        for p in e.parts:
            if isinstance(p, str):
                parts.append(p)
            else:
                x, _ = self.name(p.path, p.span, env, code="E401")
                parts.append(x)
        return ir_node(ir.Template, parts=tuple(parts)), TEXT

    def binary(self, e: A.BinaryOp, env: Env) -> tuple[ir.Expr, Type]:
        left, lt = self.lower(e.left, env)
        right, rt = self.lower(e.right, env)
        op = {"is": "==", "is not": "!=", "or else": "default"}.get(e.op, e.op)
        out: Type = BOOLEAN
        if op == "default":
            # any value may be null at run time (an operator that finds nothing), so any
            # left side is allowed; the value is the left one's type or the fallback's
            out = rt if lt.kind == "null" else join_types([lt, rt]) if rt.kind != "null" else lt
        elif op == "contains":
            if lt.kind != "list":
                self._want(_is_text, lt, "`contains`", "text or a list", e.left.span)
                self._want(_is_text, rt, "`contains` in a text", "text", e.right.span)
        elif op in ("starts with", "ends with"):
            self._want(_is_text, lt, f"`{op}`", "text", e.left.span)
            self._want(_is_text, rt, f"`{op}`", "text", e.right.span)
        elif op in ("and", "or"):
            self._want(_is_bool, lt, f"`{op}`", "boolean", e.left.span)
            self._want(_is_bool, rt, f"`{op}`", "boolean", e.right.span)
        elif op in ("<", "<=", ">", ">="):
            self._want(_is_num, lt, f"`{op}`", "number", e.left.span)
            self._want(_is_num, rt, f"`{op}`", "number", e.right.span)
        elif op == "+":
            if _is_num(lt) and _is_num(rt):
                out = NUMBER if "number" in (lt.kind, rt.kind) else ANY
            elif _is_text(lt) and _is_text(rt):
                out = TEXT
            elif lt.kind == "list" and rt.kind == "list":
                out = join_types([lt, rt])
            else:
                self.error(
                    "E304",
                    f"`+` adds two numbers, two texts or two lists, not {lt} and {rt}",
                    e.span,
                )
                out = ANY
        elif op in ("-", "*", "/"):
            self._want(_is_num, lt, f"`{op}`", "number", e.left.span)
            self._want(_is_num, rt, f"`{op}`", "number", e.right.span)
            out = NUMBER
        return ir_node(ir.Binary, op=op, left=left, right=right), out

    def _want(
        self, ok: Callable[[Type], bool], t: Type, op: str, expected: str, span: SourceSpan
    ) -> None:
        if not ok(t):
            self.error("E304", f"{op} needs {_a_word(expected)}, got {_a(t)}", span)


def _a_word(word: str) -> str:
    return f"an {word}" if word[0] in "aeiou" else f"a {word}"


def _a(t: Type) -> str:
    if t.kind == "list":
        return f"a list of {t.item}"
    if t.kind == "record":
        return f"a `{t}` record"
    if t.kind == "choice":
        return f"one of {t}"
    if t.kind == "null":
        return "null"
    return _a_word(str(t))


def _list(names: Iterable[str]) -> str:
    return ", ".join(f"`{n}`" for n in names)


def _shown(path: Path) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)


describe_type = _a
list_names = _list
