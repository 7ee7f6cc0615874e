"""The test harness that runs inside the sandbox for the `test` and `program` operators.

This file is shipped into the container as a script (it never runs on the host), so it uses the
standard library only. Why per-test: a repair loop needs to know which assertion failed and
with what value, not only that the whole check raised.

Usage inside the sandbox: `python3 harness.py test` reads solution.py, tests.py and
entry_point.txt; `python3 harness.py program` runs solution.py's entry function. The result is
the last stdout line, prefixed with MARKER; the code's own prints are captured and capped so
they cannot push the result past the output cap.
"""

import ast
import io
import sys

# the interpreter's built-in modules, not `signal`, `json` and `traceback`: those import enum,
# re and linecache from the image's disk, which a fresh container pays for on every run
try:
    import _signal as signal
except ImportError:  # another Python implementation
    import signal

MARKER = "\x1etreadle-result "
_PRINT_CAP = 4000
_VALUE_CAP = 300


class _Capped(io.StringIO):
    def write(self, s):
        if self.tell() < _PRINT_CAP:
            return super().write(s[: _PRINT_CAP - self.tell()])
        return len(s)


class _TestTimeout(Exception):
    pass


def _alarm(signum, frame):
    raise _TestTimeout()


def _short(value):
    text = repr(value)
    return text if len(text) <= _VALUE_CAP else text[:_VALUE_CAP] + "..."


def _error_line(exc):
    if isinstance(exc, _TestTimeout):
        return "timed out"
    import traceback

    tb = traceback.extract_tb(exc.__traceback__)
    where = ""
    for frame in reversed(tb):
        if frame.filename in ("solution.py", "<solution>"):
            where = f" (solution line {frame.lineno}: {(frame.line or '').strip()})"
            break
    return f"{type(exc).__name__}: {exc}{where}"


def _explain(node, ns, source):
    """For `assert a == b`, say what a was: the feedback a model can act on."""
    text = ast.get_source_segment(source, node) or ast.unparse(node)
    test = node.test
    if (
        isinstance(test, ast.Compare)
        and len(test.ops) == 1
        and isinstance(test.ops[0], ast.Eq | ast.Is)
    ):
        try:
            left = eval(compile(ast.Expression(test.left), "<tests>", "eval"), ns)
            right = eval(compile(ast.Expression(test.comparators[0]), "<tests>", "eval"), ns)
            return f"{text}  -> got {_short(left)}, expected {_short(right)}"
        except BaseException as exc:
            return f"{text}  -> {_error_line(exc)}"
    return f"{text}  -> assertion failed"


def _run_statements(stmts, ns, source, per_test, results):
    """Each assert is one test; other statements run as setup (and fail as a test if they raise)."""
    for node in stmts:
        mod = ast.Module(body=[node], type_ignores=[])
        label = (ast.get_source_segment(source, node) or ast.unparse(node)).splitlines()[0]
        is_test = isinstance(node, ast.Assert) or (
            isinstance(node, ast.For | ast.While | ast.With | ast.If | ast.Expr)
            and any(isinstance(n, ast.Assert | ast.Call) for n in ast.walk(node))
        )
        signal.setitimer(signal.ITIMER_REAL, per_test)
        try:
            exec(compile(mod, "<tests>", "exec"), ns)
            if is_test:
                results.append(None)
        except AssertionError as exc:
            if isinstance(node, ast.Assert):
                results.append(_explain(node, ns, source))
            else:
                msg = f": {exc}" if str(exc) else ""
                results.append(f"{label}  -> assertion failed{msg}")
        except BaseException as exc:
            results.append(f"{label}  -> {_error_line(exc)}")
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)


def _read(name):
    with open(name) as f:
        return f.read()


def run_tests(per_test):
    solution = _read("solution.py")
    tests = _read("tests.py")
    entry = _read("entry_point.txt").strip() or None
    ns: dict = {"__name__": "__main__"}
    results: list = []
    try:
        exec(compile(solution, "solution.py", "exec"), ns)
    except BaseException as exc:
        return {"load_error": _error_line(exc), "results": results}
    try:
        tree = ast.parse(tests)
    except SyntaxError as exc:
        return {"load_error": f"the tests do not parse: {exc}", "results": results}
    check = next(
        (n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "check"), None
    )
    if check is None:  # plain asserts at top level
        _run_statements(tree.body, ns, tests, per_test, results)
        return {"results": results}
    # HumanEval style: run everything but check(), then check's body with candidate bound
    setup = [n for n in tree.body if n is not check]
    _run_statements(setup, ns, tests, per_test, [])
    if entry is None:
        funcs = [n.name for n in ast.parse(solution).body if isinstance(n, ast.FunctionDef)]
        entry = funcs[-1] if funcs else None
    if entry is None or entry not in ns:
        return {"load_error": f"the solution does not define `{entry}`", "results": results}
    ns["candidate"] = ns[entry]
    params = [a.arg for a in check.args.args]
    if params and params[0] != "candidate":
        ns[params[0]] = ns[entry]
    _run_statements(check.body, ns, tests, per_test, results)
    return {"results": results}


def _dumps(value):
    """json.dumps(value) for None, bools, ints, strings, lists and string-keyed dicts, without
    importing json (whose import costs more than the rest of a typical test run)."""
    try:
        from _json import encode_basestring_ascii as quote
    except ImportError:
        quote = None  # type: ignore[assignment]
    parts = []

    def put(v):
        if v is None:
            parts.append("null")
        elif v is True or v is False:
            parts.append("true" if v else "false")
        elif type(v) is int:
            parts.append(int.__repr__(v))
        elif type(v) is str and quote is not None:
            parts.append(quote(v))
        elif type(v) is list:
            parts.append("[")
            for i, item in enumerate(v):
                if i:
                    parts.append(", ")
                put(item)
            parts.append("]")
        elif type(v) is dict and all(type(k) is str for k in v):
            parts.append("{")
            for i, (k, item) in enumerate(v.items()):
                if i:
                    parts.append(", ")
                put(k)
                parts.append(": ")
                put(item)
            parts.append("}")
        else:
            import json

            parts.append(json.dumps(v))

    put(value)
    return "".join(parts)


def run_program(entry, per_test):
    solution = _read("solution.py")
    ns: dict = {"__name__": "solution"}
    signal.setitimer(signal.ITIMER_REAL, per_test)
    try:
        exec(compile(solution, "solution.py", "exec"), ns)
        if entry not in ns:
            return {"error": f"the code does not define `{entry}()`"}
        value = ns[entry]()
        import json

        try:
            json.dumps(value)
        except (TypeError, ValueError):
            value = repr(value)
        return {"value": value}
    except BaseException as exc:
        import traceback

        detail = "".join(traceback.format_exception(exc)[-6:])
        return {"error": f"{_error_line(exc)}\n{detail}"[:2000]}
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def main():
    sys.setrecursionlimit(10000)
    signal.signal(signal.SIGALRM, _alarm)
    mode = sys.argv[1]
    per_test = float(sys.argv[2]) if len(sys.argv) > 2 else 5.0
    real_stdout = sys.stdout
    captured = _Capped()
    sys.stdout = captured
    try:
        if mode == "test":
            result = run_tests(per_test)
        else:
            result = run_program(sys.argv[3] if len(sys.argv) > 3 else "solve", per_test)
    finally:
        sys.stdout = real_stdout
    result["printed"] = captured.getvalue()
    real_stdout.write("\n" + MARKER + _dumps(result) + "\n")
    real_stdout.flush()


if __name__ == "__main__":
    main()
