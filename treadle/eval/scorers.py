"""Scorers: each compares a workflow's output with a row's target and returns a `Score` in [0, 1].

A scorer is named by a spec string, so a row-job stays picklable for other executors:
`exact`, `numeric`, `f1`, `contains`, `regex`, `math`, `json_schema`, `pass`, `judge`, a Python
function `module:function` (or `path/to/file.py:function`), or a `.flow` file whose workflow
takes `output` and `target` and returns `score: number`. Options are keyword arguments
(`resolve_scorer("numeric", rel_tol=0.01)`; `--scorer-option rel_tol=0.01` on the CLI).

A scorer that cannot do its job for reasons outside the output (the sandbox or the judge's
model failed) raises; the runner records the row as an *error*, never as a 0.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import math
import re
import string
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import orjson
from pydantic import BaseModel, Field

from treadle.errors import InputError, ModelError, TreadleError
from treadle.eval.datasets import Row
from treadle.flow import Flow
from treadle.runtime.models.base import GenParams, Message, ModelBackend
from treadle.runtime.op_context import OpContext
from treadle.runtime.sandbox.base import Sandbox


class ScorerError(InputError):
    """A scorer spec or option is wrong (unknown name, bad signature); said before anything runs."""


class Score(BaseModel):
    value: float = Field(ge=0.0, le=1.0)
    explanation: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class ScoreEnv(Protocol):
    """What a scorer may use: the evaluation's session (`runner.RowRunner`): its sandbox, its
    models behind the cache, and flows run in it."""

    async def sandbox(self) -> Sandbox: ...

    async def model(self, spec: str | None) -> ModelBackend: ...

    async def run_flow(self, flow: Flow, inputs: dict[str, Any], seed: int | None) -> Any: ...


class Scorer:
    """Base of the scorers. `spec` and `options` rebuild it anywhere (`resolve_scorer`)."""

    name: str = "scorer"
    uses_sandbox: bool = False

    def __init__(self, spec: str, **options: Any) -> None:
        self.spec = spec
        self.options = options

    async def score(self, output: Any, target: Any, row: Row, env: ScoreEnv) -> Score:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<scorer {self.name}>"


# ---------------------------------------------------------------- text helpers


def as_text(value: Any) -> str:
    """An output as text: numbers without a spurious `.0`, JSON values as JSON."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int | float | str):
        return str(value)
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return str(value)


_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCT = set(string.punctuation)


def normalize(text: str) -> str:
    """SQuAD's normalisation: lower case, no punctuation, no articles, single spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def f1_score(prediction: str, truth: str) -> float:
    """SQuAD's token F1 of two texts after `normalize`."""
    p, t = normalize(prediction).split(), normalize(truth).split()
    if not p or not t:
        return float(p == t)
    common = Counter(p) & Counter(t)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(p), same / len(t)
    return 2 * precision * recall / (precision + recall)


_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


def last_number(value: Any) -> float | None:
    """AFlow's GSM8K rule: the last number in the text (thousands commas removed)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    text = as_text(value).replace(",", "")
    found = _NUMBER.findall(text)
    if not found:
        return None
    try:
        return float(found[-1])
    except ValueError:
        return None


def _targets(target: Any) -> list[Any]:
    """A list target means "any of these" (QA sets with several accepted answers)."""
    if isinstance(target, list | tuple) and target and not isinstance(target[0], dict):
        return list(target)
    return [target]


# ---------------------------------------------------------------- the built-in scorers


class Exact(Scorer):
    name = "exact"

    async def score(self, output: Any, target: Any, row: Row, env: ScoreEnv) -> Score:
        out = normalize(as_text(output))
        ok = any(out == normalize(as_text(t)) for t in _targets(target))
        return Score(value=float(ok), metadata={"normalized": out})


class Numeric(Scorer):
    """AFlow's GSM8K rule: the output's last number equals the target's within 1e-6 (or
    within `rel_tol` of it when given)."""

    name = "numeric"

    async def score(self, output: Any, target: Any, row: Row, env: ScoreEnv) -> Score:
        got = last_number(output)
        want = last_number(target)
        if want is None:
            raise ScorerError(f"row {row.id}: the target {target!r} holds no number")
        if got is None:
            return Score(value=0.0, explanation="the output holds no number")
        abs_tol = float(self.options.get("abs_tol", 1e-6))
        rel_tol = float(self.options.get("rel_tol", 0.0))
        ok = math.isclose(got, want, rel_tol=rel_tol, abs_tol=abs_tol)
        return Score(value=float(ok), metadata={"extracted": got, "target": want})


class F1(Scorer):
    name = "f1"

    async def score(self, output: Any, target: Any, row: Row, env: ScoreEnv) -> Score:
        out = as_text(output)
        return Score(value=max(f1_score(out, as_text(t)) for t in _targets(target)))


class Contains(Scorer):
    name = "contains"

    async def score(self, output: Any, target: Any, row: Row, env: ScoreEnv) -> Score:
        out = normalize(as_text(output))
        ok = any(normalize(as_text(t)) in out for t in _targets(target))
        return Score(value=float(ok))


class Regex(Scorer):
    """`pattern` (option) or the target, as a regular expression searched in the output."""

    name = "regex"

    def __init__(self, spec: str, **options: Any) -> None:
        super().__init__(spec, **options)
        pattern = options.get("pattern")
        try:
            self.pattern = re.compile(str(pattern)) if pattern is not None else None
        except re.error as e:
            raise ScorerError(f"The regex scorer's pattern {pattern!r} is invalid: {e}.") from None

    async def score(self, output: Any, target: Any, row: Row, env: ScoreEnv) -> Score:
        pattern = self.pattern or re.compile(as_text(target))
        return Score(value=float(pattern.search(as_text(output)) is not None))


def last_boxed(text: str) -> str | None:
    """The content of the last `\\boxed{...}` (braces balanced), or None."""
    start = text.rfind("\\boxed")
    if start < 0:
        return None
    i = text.find("{", start)
    if i < 0:
        return None
    depth = 0
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1 : j]
    return None


def _latex_to_sympy(text: str) -> str:
    s = text.strip().strip("$").strip()
    s = re.sub(r"\\(left|right|!|,|;|quad)", "", s)
    s = s.replace("\\cdot", "*").replace("\\times", "*").replace("\\div", "/")
    s = s.replace("\\pi", "pi").replace("^", "**")
    for _ in range(5):
        s = re.sub(r"\\d?frac\{([^{}]*)\}\{([^{}]*)\}", r"((\1)/(\2))", s)
        s = re.sub(r"\\sqrt\{([^{}]*)\}", r"sqrt(\1)", s)
    s = s.replace("{", "(").replace("}", ")").replace("\\", "")
    return s


class MathScorer(Scorer):
    """A final `\\boxed{}` (else the last number) compared numerically, then symbolically."""

    name = "math"

    def _answer(self, value: Any) -> str:
        text = as_text(value)
        boxed = last_boxed(text)
        if boxed is not None:
            return boxed
        m = re.search(r"answer(?: is)?\s*[:=]?\s*(.+)$", text, re.IGNORECASE | re.MULTILINE)
        return m.group(1).strip().rstrip(".") if m else text.strip()

    async def score(self, output: Any, target: Any, row: Row, env: ScoreEnv) -> Score:
        got, want = self._answer(output), self._answer(target)
        if normalize(got) == normalize(want) and got:
            return Score(value=1.0, metadata={"answer": got})
        a, b = last_number(got), last_number(want)
        plain = re.fullmatch(r"\s*-?[\d,.]+\s*", got) and re.fullmatch(r"\s*-?[\d,.]+\s*", want)
        if plain and a is not None and b is not None:
            return Score(value=float(math.isclose(a, b, abs_tol=1e-6)), metadata={"answer": got})
        return Score(value=float(_sympy_equal(got, want)), metadata={"answer": got})


def _sympy_equal(a: str, b: str) -> bool:
    try:
        import sympy
    except ImportError:
        raise ScorerError(
            "The math scorer needs sympy: `pip install 'treadle[analysis]'`."
        ) from None
    from sympy.parsing.sympy_parser import (
        implicit_multiplication_application,
        parse_expr,
        standard_transformations,
    )

    rules = (*standard_transformations, implicit_multiplication_application)
    try:
        x = parse_expr(_latex_to_sympy(a), transformations=rules)
        y = parse_expr(_latex_to_sympy(b), transformations=rules)
        return bool(sympy.simplify(x - y) == 0)
    except Exception:  # unparsable maths is a wrong answer, not an error
        return False


def _parse_json_output(value: Any) -> Any:
    if not isinstance(value, str):
        return value.model_dump(mode="json") if isinstance(value, BaseModel) else value
    text = value.strip()
    fence = re.search(r"```(?:json)?\s*\n(.*?)```", text, re.DOTALL)
    if fence:
        text = fence.group(1)
    return orjson.loads(text)


class JsonSchema(Scorer):
    """The output (JSON, or JSON text) is valid against `schema` (an option: a dict or a path)
    or the row's `schema` column. With `match_target=true` it must also equal the target."""

    name = "json_schema"

    def __init__(self, spec: str, **options: Any) -> None:
        super().__init__(spec, **options)
        schema = options.get("schema")
        if isinstance(schema, str):
            path = Path(schema)
            if not path.is_file():
                raise ScorerError(f"The json_schema scorer's schema file {path} does not exist.")
            try:
                schema = orjson.loads(path.read_bytes())
            except orjson.JSONDecodeError as e:
                raise ScorerError(f"The schema file {path} is not JSON: {e}.") from None
        self.schema = schema
        try:
            import jsonschema  # noqa: F401
        except ImportError:
            raise ScorerError(
                "The json_schema scorer needs jsonschema: `pip install 'treadle[analysis]'`."
            ) from None

    async def score(self, output: Any, target: Any, row: Row, env: ScoreEnv) -> Score:
        import jsonschema

        schema = self.schema if self.schema is not None else row.columns.get("schema")
        if isinstance(schema, str):
            schema = orjson.loads(schema)
        if not isinstance(schema, dict):
            raise ScorerError(
                f"row {row.id}: the json_schema scorer has no schema (give schema=... or a "
                "`schema` column)"
            )
        try:
            data = _parse_json_output(output)
        except orjson.JSONDecodeError as e:
            return Score(value=0.0, explanation=f"the output is not JSON: {e}")
        errors = sorted(
            jsonschema.Draft202012Validator(schema).iter_errors(data), key=lambda e: list(e.path)
        )
        if errors:
            return Score(value=0.0, explanation=errors[0].message, metadata={"errors": len(errors)})
        if _truthy(self.options.get("match_target")) and target is not None:
            want = _parse_json_output(target)
            if data != want:
                return Score(value=0.0, explanation="valid, but not equal to the target")
        return Score(value=1.0)


def _truthy(value: Any) -> bool:
    return value in (True, 1, "1", "true", "True", "yes")


class Pass(Scorer):
    """pass@1: the output code runs against the row's tests in the sandbox, through the `test`
    operator's own harness. Columns: `tests` (or `test`), `entry_point`, and `problem` (prefixed
    when the output does not define the entry point itself, as HumanEval completions don't; and,
    when it is Python, the trusted preamble whose helpers the tests call)."""

    name = "pass"
    uses_sandbox = True

    async def score(self, output: Any, target: Any, row: Row, env: ScoreEnv) -> Score:
        from treadle.stdlib_ops.test import TestArgs, TestOptions
        from treadle.stdlib_ops.test import run as run_tests

        cols = row.columns
        tests = cols.get("tests", cols.get("test"))
        if not tests:
            raise ScorerError(f"row {row.id}: the pass scorer needs a `tests` column")
        entry = cols.get("entry_point") or None
        code = output if isinstance(output, str) else as_text(output)
        code = getattr(output, "code", code)
        problem = str(cols.get("problem") or cols.get("prompt") or "")
        if entry and not re.search(rf"def\s+{re.escape(str(entry))}\s*\(", code):
            code = problem + code
        options = TestOptions(
            entry_point=entry,
            preamble=_trusted_preamble(problem),
            time_limit=float(self.options.get("time_limit", 20.0)),
            per_test_limit=float(self.options.get("per_test_limit", 5.0)),
        )
        ctx = _ScorerContext(env)
        report = await run_tests(ctx, TestArgs(solution=code, tests=str(tests)), options)
        return Score(
            value=float(report.passed),
            explanation=None if report.passed else report.feedback[:500],
            metadata={
                "total": report.total,
                "failed": len(report.failures),
                "sandbox_runs": ctx.runs,
            },
        )


def _trusted_preamble(problem: str) -> str | None:
    """The problem as the tests' trusted preamble when it is Python (HumanEval's prompt: its
    helpers, e.g. `poly`, come from it, never from the solution); prose defines nothing."""
    try:
        tree = ast.parse(problem)
    except (SyntaxError, ValueError):
        return None
    defines = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom)
    return problem if any(isinstance(n, defines) for n in tree.body) else None


class _ScorerContext(OpContext):
    """The `OpContext` the `test` operator needs, over the evaluation's shared sandbox."""

    step_id = "score.pass"
    seed = None
    sample = 0

    def __init__(self, env: ScoreEnv) -> None:
        self.env = env
        self.runs = 0

    async def complete(self, messages: Any, params: Any, *, model: str | None = None) -> Any:
        raise TreadleError("the pass scorer makes no model calls")

    async def sandbox(self) -> Sandbox:
        self.runs += 1
        return await self.env.sandbox()

    def event(self, name: str, **attributes: Any) -> None:
        pass


JUDGE_PROMPT = """You are grading an answer against a reference answer.
{rubric}
Question or task:
{question}

Reference answer:
{target}

Submitted answer:
{output}

Reply with one line: GRADE: C if the submitted answer is correct, GRADE: P if partially correct,
GRADE: I if incorrect."""

DEFAULT_RUBRIC = "An answer is correct when it states the same result as the reference."


class Judge(Scorer):
    """A model grades output vs target with a rubric; its own model spec (`model=`).

    Reads `GRADE: C|P|I` (1, 0.5, 0) or `SCORE: x` (x in [0, 1], or x/10 when above 1); a reply
    with neither is the judge's failure, so the row is an error (never a 0).
    """

    name = "judge"

    async def score(self, output: Any, target: Any, row: Row, env: ScoreEnv) -> Score:
        backend = await env.model(self.options.get("model"))
        question = row.inputs or {k: v for k, v in row.columns.items() if k != "target"}
        prompt = JUDGE_PROMPT.format(
            rubric=str(self.options.get("rubric", DEFAULT_RUBRIC)),
            question=as_text(question),
            target=as_text(target),
            output=as_text(output),
        )
        params = GenParams(temperature=0.0, max_tokens=int(self.options.get("max_tokens", 64)))
        completion = await backend.complete([Message(role="user", content=prompt)], params)
        text = completion.text
        m = re.search(r"GRADE:\s*([CPI])", text, re.IGNORECASE)
        if m:
            value = {"C": 1.0, "P": 0.5, "I": 0.0}[m.group(1).upper()]
            return Score(value=value, explanation=text.strip()[:300])
        m = re.search(r"SCORE:\s*(-?\d+(?:\.\d+)?)", text, re.IGNORECASE)
        if m:
            x = float(m.group(1))
            x = x / 10 if x > 1 else x
            return Score(value=min(1.0, max(0.0, x)), explanation=text.strip()[:300])
        # no grade is not a verdict: the judge failed to produce one (an error, never a 0)
        raise ModelError(
            f"the judge gave no grade (GRADE: C|P|I or SCORE: x): {text.strip()[:200]!r}"
        )


class PythonScorer(Scorer):
    """`module:function` or `file.py:function`. The function takes (output, target) and may take
    `row` (the `Row`) by name; it returns a bool, a number in [0, 1], a `Score`, or a dict with
    `value`; it may be async."""

    name = "python"

    def __init__(self, spec: str, **options: Any) -> None:
        super().__init__(spec, **options)
        self.name = spec
        self.fn = _import_function(spec)
        try:
            params = inspect.signature(self.fn).parameters
        except (TypeError, ValueError):
            params = {}  # type: ignore[assignment]
        positional = [
            p
            for p in params.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
        ]
        varargs = any(p.kind == p.VAR_POSITIONAL for p in params.values())
        if (params and len(positional) > 3) or (params and len(positional) < 2 and not varargs):
            raise ScorerError(
                f"The scorer {spec} must take (output, target) and optionally row; its "
                f"signature is {inspect.signature(self.fn)}."
            )
        self.takes_row = "row" in params or len(positional) == 3
        self.takes_options = any(p.kind == p.VAR_KEYWORD for p in params.values())

    async def score(self, output: Any, target: Any, row: Row, env: ScoreEnv) -> Score:
        kwargs: dict[str, Any] = {"row": row} if self.takes_row else {}
        if self.takes_options:
            kwargs.update(self.options)
        value = self.fn(output, target, **kwargs)
        if inspect.isawaitable(value):
            value = await value
        return to_score(value, self.spec)


def to_score(value: Any, where: str) -> Score:
    """A scorer function's return value as a `Score` (or a clear error)."""
    if isinstance(value, Score):
        return value
    if isinstance(value, dict) and "value" in value:
        value = Score.model_validate(value)
        return value
    if isinstance(value, bool):
        return Score(value=float(value))
    if isinstance(value, int | float) and 0.0 <= float(value) <= 1.0:
        return Score(value=float(value))
    raise TreadleError(
        f"The scorer {where} returned {value!r}; a scorer returns a bool, a number in [0, 1], "
        "a Score, or a dict with `value`."
    )


def _import_function(spec: str) -> Callable[..., Any]:
    module_name, _, attr = spec.rpartition(":")
    if not module_name or not attr:
        raise ScorerError(f"A Python scorer is named module:function, got {spec!r}.")
    try:
        if module_name.endswith(".py"):
            path = Path(module_name)
            if not path.is_file():
                raise ScorerError(f"The scorer file {path} does not exist.")
            mod_spec = importlib.util.spec_from_file_location(f"_treadle_scorer_{path.stem}", path)
            if mod_spec is None or mod_spec.loader is None:
                raise ScorerError(f"Cannot import the scorer file {path}.")
            module = importlib.util.module_from_spec(mod_spec)
            sys.modules[mod_spec.name] = module
            mod_spec.loader.exec_module(module)
        else:
            if "" not in sys.path and str(Path.cwd()) not in sys.path:
                sys.path.insert(0, str(Path.cwd()))
            module = importlib.import_module(module_name)
    except ScorerError:
        raise
    except ImportError as e:
        raise ScorerError(f"Cannot import the scorer module {module_name!r}: {e}.") from None
    except Exception as e:
        raise ScorerError(
            f"Importing the scorer module {module_name!r} failed: {type(e).__name__}: {e}."
        ) from None
    fn = getattr(module, attr, None)
    if fn is None or not callable(fn):
        raise ScorerError(f"The module {module_name!r} has no function {attr!r}.")
    return fn


class FlowScorer(Scorer):
    """A `.flow` workflow taking `output` and `target` (and optionally `question`, the row's
    inputs as JSON text) and returning `score: number` in [0, 1]; it runs on the evaluation's
    model, cache and sandbox."""

    name = "flow"

    def __init__(self, spec: str, **options: Any) -> None:
        super().__init__(spec, **options)
        path = Path(spec)
        if not path.is_file():
            raise ScorerError(f"The scorer flow {path} does not exist.")
        self.name = path.name
        self.flow = Flow.load(path)
        wf = self.flow.workflow(options.get("workflow"))
        inputs = {f.name: f.type for f in wf.inputs}
        outputs = {f.name: f.type for f in wf.outputs}
        allowed = {"output", "target", "question"}
        if (
            "output" not in inputs
            or "target" not in inputs
            or set(inputs) - allowed
            or outputs.get("score") != "number"
        ):
            sig = ", ".join(f"{k}: {v}" for k, v in inputs.items())
            outs = ", ".join(f"{k}: {v}" for k, v in outputs.items()) or "nothing"
            raise ScorerError(
                f"The scorer flow {path} has the wrong signature: workflow {wf.name}({sig}) -> "
                f"{outs}. A scorer workflow takes `output` and `target` (and optionally "
                "`question`) and returns `score: number`, e.g. "
                "`workflow grade(output: text, target: text) -> score: number`."
            )
        self.input_types = inputs
        self.wf_name = wf.name

    def _value(self, name: str, value: Any) -> Any:
        kind = self.input_types[name].split()[0]
        if kind in ("text", "code"):
            return as_text(value)
        if kind == "number":
            n = last_number(value)
            return n if n is not None else value
        return value

    async def score(self, output: Any, target: Any, row: Row, env: ScoreEnv) -> Score:
        values = {"output": self._value("output", output), "target": self._value("target", target)}
        if "question" in self.input_types:
            values["question"] = as_text(row.inputs)
        outputs = await env.run_flow(self.flow, values, None)
        value = outputs.get("score")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TreadleError(
                f"The scorer flow {self.spec} returned score {value!r}, not a number."
            )
        if not 0.0 <= float(value) <= 1.0:
            raise TreadleError(
                f"The scorer flow {self.spec} returned score {value}, outside [0, 1]."
            )
        return Score(value=float(value), metadata={"outputs": outputs})


BUILTIN: dict[str, type[Scorer]] = {
    "exact": Exact,
    "numeric": Numeric,
    "f1": F1,
    "contains": Contains,
    "regex": Regex,
    "math": MathScorer,
    "json_schema": JsonSchema,
    "pass": Pass,
    "judge": Judge,
}


def resolve_scorer(spec: str | Scorer, **options: Any) -> Scorer:
    """A scorer from its spec (see the module docstring); raises `ScorerError` for a bad one."""
    if isinstance(spec, Scorer):
        return spec
    if callable(spec):
        return _Callable(spec, **options)
    if not isinstance(spec, str) or not spec.strip():
        raise ScorerError(f"A scorer is a name, module:function or a .flow path; got {spec!r}.")
    spec = spec.strip()
    if spec in BUILTIN:
        scorer = BUILTIN[spec](spec, **options)
        scorer.name = spec
        return scorer
    if spec.endswith(".flow"):
        return FlowScorer(spec, **options)
    if ":" in spec:
        return PythonScorer(spec, **options)
    import difflib

    close = difflib.get_close_matches(spec, list(BUILTIN), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ScorerError(
        f"Unknown scorer {spec!r}.{hint} Scorers: {', '.join(BUILTIN)}, a Python function "
        "module:function, or a .flow file returning `score: number`."
    )


class _Callable(Scorer):
    """A Python function given directly (API only: not picklable by spec)."""

    def __init__(self, fn: Callable[..., Any], **options: Any) -> None:
        super().__init__(getattr(fn, "__name__", "function"), **options)
        self.name = self.spec
        self.fn = fn

    async def score(self, output: Any, target: Any, row: Row, env: ScoreEnv) -> Score:
        value = self.fn(output, target)
        if inspect.isawaitable(value):
            value = await value
        return to_score(value, self.spec)
