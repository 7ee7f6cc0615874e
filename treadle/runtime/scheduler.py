"""The scheduler: runs a program's Graph IR on asyncio, each node as soon as its inputs are ready.

There is no superstep barrier. Every node of a graph gets a task and a future for its value;
the task awaits the futures of the names its own expressions read (looked up lexically through
a chain of scopes: a loop turn, a map item and a taken branch arm are child scopes of the scope
that holds the composite node), then runs. A slow branch therefore never holds back an
independent fast one.

Each graph runs inside an `asyncio.TaskGroup`, so the first failure cancels every other task
of the run (fail-fast) and a cancellation from outside (Ctrl-C, a caller's timeout) reaches
every running step. Everything that can be decided once per graph (dependency lists, compiled
expressions, the operator) is decided once, in a plan, to keep the per-node cost small.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import os
import random
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from treadle.errors import InputError, RunError, StepError, StepTimeout, TreadleError
from treadle.runtime import ir
from treadle.runtime.coerce import CoercionError, admits_none, coerce
from treadle.runtime.expr import Compiled, ExprError, compile_expr, ref_names, truthy
from treadle.runtime.op_context import OperatorLookup, RunnableOperator
from treadle.runtime.session import Session
from treadle.runtime.step_context import RunState
from treadle.runtime.tracing import Span, Tracer
from treadle.runtime.types import Type, check_value, from_annotation, parse_type


@dataclass(frozen=True)
class RunOptions:
    """How a run is scheduled. Per-step settings in the IR override the defaults here."""

    #: most operator calls running at once (None: no limit); model backends have their own
    concurrency: int | None = 16
    #: seconds before a step fails, for steps that set no timeout (None: no limit)
    step_timeout: float | None = None
    #: extra attempts after a retryable error, for steps that set none
    retries: int = 2
    #: first backoff delay in seconds; doubles each attempt, with jitter, up to `backoff_max`
    backoff_base: float = 0.5
    backoff_max: float = 8.0
    #: deepest chain of workflow calls (a guard against runaway recursion)
    max_call_depth: int = 32


class StepFailed(RunError):
    """A step failed for good (after its retries): names the step, its operator and why."""

    def __init__(self, message: str, *, step: str, op: str | None, cause: BaseException) -> None:
        super().__init__(message)
        self.step = step
        self.op = op
        self.cause = cause


# ---------------------------------------------------------------- scopes


class Scope:
    """Futures of the values bound in one graph instance; `parent` is the enclosing scope."""

    __slots__ = ("depth", "futs", "parent")

    def __init__(self, parent: Scope | None = None, *, depth: int | None = None) -> None:
        self.futs: dict[str, asyncio.Future[Any]] = {}
        self.parent = parent
        #: how many workflow calls deep this scope is
        self.depth: int = depth if depth is not None else (parent.depth if parent else 0)

    def find(self, name: str) -> asyncio.Future[Any]:
        scope: Scope | None = self
        while scope is not None:
            fut = scope.futs.get(name)
            if fut is not None:
                return fut
            scope = scope.parent
        raise ExprError(f"`{name}` is not defined here")

    def value(self, name: str) -> Any:
        return self.find(name).result()

    def bind(self, name: str, value: Any) -> None:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        fut.set_result(value)
        self.futs[name] = fut


# ---------------------------------------------------------------- plans


class _NodePlan:
    """What never changes about a node between runs: its dependencies and compiled parts.

    Plans are shared by every run of a program, so `execute` is the unbound `Scheduler`
    method, called with the running scheduler (a bound method would run on the first one).
    """

    __slots__ = (
        "args", "default_options", "deps", "execute", "id", "node", "op", "options", "places",
    )  # fmt: skip

    def __init__(self, node: ir.Node, execute: Callable[..., Coroutine[Any, Any, Any]]) -> None:
        self.node = node
        self.id = node.id
        self.execute = execute
        self.deps: tuple[str, ...] = ()
        self.args: tuple[tuple[str, Compiled], ...] = ()
        self.options: tuple[tuple[str, Compiled], ...] = ()
        self.op: Any = None
        #: the operator's options model with every default, shared when a step sets none
        self.default_options: Any = None
        #: the declared type of each argument and of each option (see `runtime.coerce`)
        self.places: tuple[_Places, _Places] = ({}, {})


class _GraphPlan:
    __slots__ = ("graph", "nodes", "output_deps", "outputs")

    def __init__(self, graph: ir.Graph, nodes: list[_NodePlan]) -> None:
        self.graph = graph
        self.nodes = nodes
        self.outputs = tuple((k, compile_expr(e)) for k, e in graph.outputs.items())
        self.output_deps = ref_names(graph.outputs.values())


class _ArmPlan:
    __slots__ = ("body", "deps", "when")

    def __init__(self, arm: ir.Arm) -> None:
        self.when = compile_expr(arm.when) if arm.when is not None else None
        self.deps = ref_names([arm.when]) if arm.when is not None else ()
        self.body = arm.body


_COMMON = ("timeout", "retries", "samples")
#: the key under which a plan cache records that the whole program has been planned
_PREPARED = -1


#: a parameter's declared type, and whether it takes null (an optional argument: null stays)
_Places = dict[str, tuple[Type, bool]]


def _places(model: type[BaseModel]) -> _Places:
    """The language type of each field of an operator's args or options model: the types the
    checker checked the step against (`types.from_annotation`, as the registry derives them)."""
    return {
        name: (from_annotation(f.annotation), admits_none(f.annotation))
        for name, f in model.model_fields.items()
    }


def _coerce_arguments(values: dict[str, Any], places: _Places, what: str) -> None:
    """Convert each value to its parameter's type in place (`runtime.coerce`), or fail the step
    with a message naming the parameter."""
    for name, value in values.items():
        place = places.get(name)
        if place is None:
            continue  # not a parameter: the model's validation says so
        try:
            values[name] = coerce(value, place[0], optional=place[1])
        except CoercionError as e:
            raise StepError(f"{what}`{name}` {e}") from None


def _compiled(exprs: dict[str, ir.Expr]) -> tuple[tuple[str, Compiled], ...]:
    return tuple((k, compile_expr(e)) for k, e in exprs.items())


# ---------------------------------------------------------------- the scheduler


def _no_operators(name: str) -> RunnableOperator | None:
    return None


def find_workflow(program: ir.Program, name: str | None) -> ir.Workflow:
    """The workflow `name` of `program` (None: its entry), or an `InputError` naming the others."""
    name = name or program.entry
    wf = program.workflows.get(name)
    if wf is None:
        have = ", ".join(sorted(program.workflows)) or "none"
        raise InputError(f"There is no workflow named {name!r}; this program has: {have}.")
    return wf


class Scheduler:
    """Runs workflows of one program. Create one per run (it holds the run's state); plans can
    be shared between schedulers of the same program through `plans`.
    """

    def __init__(
        self,
        program: ir.Program,
        *,
        state: RunState | None = None,
        tracer: Tracer | None = None,
        options: RunOptions | None = None,
        plans: dict[int, _GraphPlan] | None = None,
        operators: OperatorLookup | None = None,
    ) -> None:
        self.program = program
        #: operators come from the caller (the runtime imports no operator library)
        self.operators: OperatorLookup = operators or _no_operators
        if state is None:
            state = RunState(tracer or Tracer(keep=False, record_values=False), Session())
        self.state = state
        self.tracer = state.tracer
        self.options = options or RunOptions()
        self._plans: dict[int, _GraphPlan] = plans if plans is not None else {}
        limit = self.options.concurrency
        self._slots: contextlib.AbstractAsyncContextManager[Any] = (
            asyncio.Semaphore(limit) if limit else contextlib.nullcontext()
        )

    # ------------------------------------------------------------ entry points

    async def run(self, inputs: dict[str, Any], workflow: str | None = None) -> dict[str, Any]:
        """Run a workflow of the program (its entry by default) and return its outputs."""
        wf = self.workflow(workflow)
        values = check_inputs(wf, inputs)
        self.prepare()
        span = self.tracer.start(
            "workflow",
            wf.name,
            None,
            inputs=values,
            attrs={"gen_ai.operation.name": "invoke_workflow", "gen_ai.workflow.name": wf.name},
        )
        scope = Scope()
        for name, value in values.items():
            scope.bind(name, value)
        try:
            outputs = declared_outputs(wf, await self.run_graph(wf.graph, scope, span))
        except asyncio.CancelledError:
            self.tracer.end(span, "cancelled", error="the run was cancelled")
            raise
        except BaseException as e:
            self.tracer.end(span, "error", error=_message(e))
            raise
        self.tracer.end(span, "ok", outputs=outputs)
        return outputs

    def workflow(self, name: str | None) -> ir.Workflow:
        return find_workflow(self.program, name)

    def prepare(self) -> None:
        """Plan every graph of the program now, so an unknown operator fails before any step
        runs (once per plan cache: a `Flow` shares its plans between runs)."""
        if self._plans.get(_PREPARED) is not None:
            return
        for wf in self.program.workflows.values():
            self._plan_all(wf.graph)
        self._plans[_PREPARED] = _GraphPlan(ir.Graph(), [])

    def _plan_all(self, graph: ir.Graph) -> None:
        self._plan(graph)
        for node in graph.nodes:
            if isinstance(node, ir.Branch):
                for arm in node.arms:
                    self._plan_all(arm.body)
            elif isinstance(node, ir.Loop | ir.Map):
                self._plan_all(node.body)

    # ------------------------------------------------------------ planning

    def _plan(self, graph: ir.Graph) -> _GraphPlan:
        plan = self._plans.get(id(graph))
        if plan is not None and plan.graph is graph:
            return plan
        nodes = [self._plan_node(n) for n in graph.nodes]
        plan = self._plans[id(graph)] = _GraphPlan(graph, nodes)
        return plan

    def _plan_node(self, node: ir.Node) -> _NodePlan:
        if isinstance(node, ir.Step):
            p = _NodePlan(node, Scheduler._exec_step)
            p.op = self.operators(node.op)
            if p.op is None:
                raise RunError(
                    f"Step '{node.name}' uses the operator '{node.op}', which is not installed "
                    "(see `treadle ops list`)."
                )
            p.args = _compiled(node.args)
            p.options = _compiled(node.options)
            if not node.options:
                try:
                    p.default_options = p.op.options()
                except ValidationError:
                    p.default_options = None
            p.deps = ref_names([*node.args.values(), *node.options.values()])
            p.places = (_places(p.op.args), _places(p.op.options))
        elif isinstance(node, ir.Call):
            p = _NodePlan(node, Scheduler._exec_call)
            p.args = _compiled(node.args)
            p.deps = ref_names(node.args.values())
        elif isinstance(node, ir.Branch):
            p = _NodePlan(node, Scheduler._exec_branch)
            p.op = tuple(_ArmPlan(a) for a in node.arms)
        elif isinstance(node, ir.Loop):
            p = _NodePlan(node, Scheduler._exec_loop)
            p.args = _compiled(node.init)
            p.deps = ref_names(node.init.values())
        elif isinstance(node, ir.Map):
            p = _NodePlan(node, Scheduler._exec_map)
            p.args = (("over", compile_expr(node.over)),)
            p.deps = ref_names([node.over])
        else:  # pragma: no cover - the IR has no other nodes
            raise RunError(f"unknown node kind {type(node).__name__}")
        return p

    # ------------------------------------------------------------ graphs

    async def run_graph(self, graph: ir.Graph, scope: Scope, parent: Span | None) -> dict[str, Any]:
        """Run every node of `graph` in `scope`; return its outputs once all nodes are done."""
        plan = self._plan(graph)
        loop = asyncio.get_running_loop()
        futs = scope.futs
        run_node = self._run_node
        try:
            async with asyncio.TaskGroup() as tg:
                for np in plan.nodes:
                    fut = futs[np.id] = loop.create_future()
                    tg.create_task(run_node(np, scope, fut, parent))
                for name in plan.output_deps:
                    fut = scope.find(name)
                    if not fut.done():
                        await fut
        except BaseExceptionGroup as group:
            first = _first_error(group)
            if isinstance(first, ExprError):
                raise RunError(
                    f"The outputs of the graph could not be computed: {first}."
                ) from None
            raise first from None
        lookup = scope.value
        try:
            return {name: fn(lookup) for name, fn in plan.outputs}
        except ExprError as e:
            raise RunError(f"The outputs of the workflow could not be computed: {e}.") from None

    async def _run_node(
        self, np: _NodePlan, scope: Scope, fut: asyncio.Future[Any], parent: Span | None
    ) -> None:
        for name in np.deps:
            try:
                dep = scope.find(name)
            except ExprError as e:
                raise self._node_error(np.node, e) from None
            if not dep.done():
                await dep
        value = await np.execute(self, np, scope, parent)
        if not fut.done():
            fut.set_result(value)

    def _node_error(self, node: ir.Node, e: Exception) -> StepFailed:
        op = _op_name(node)
        return StepFailed(
            f"Step '{node.name}' ({op}){_where(node)} failed: {_message(e)}",
            step=node.id,
            op=op,
            cause=e,
        )

    # ------------------------------------------------------------ steps

    async def _exec_step(self, np: _NodePlan, scope: Scope, parent: Span | None) -> Any:
        node: ir.Step = np.node  # type: ignore[assignment]
        lookup = scope.value
        try:
            args = {k: fn(lookup) for k, fn in np.args}
            options = {k: fn(lookup) for k, fn in np.options}
        except ExprError as e:
            raise self._node_error(node, e) from None
        timeout, retries, samples = node.timeout_s, node.retries, node.samples
        if options and any(k in options for k in _COMMON):
            timeout = options.pop("timeout", timeout)
            retries = options.pop("retries", retries)
            samples = options.pop("samples", samples)
        if timeout is None:
            timeout = self.options.step_timeout
        if retries is None:
            retries = self.options.retries
        tracer = self.tracer
        span = tracer.start(
            "step",
            node.name,
            parent,
            step=node.id,
            op=node.op,
            inputs={**args, **options} if tracer.record_values else None,
        )
        try:
            op = np.op
            _coerce_arguments(args, np.places[0], "")
            _coerce_arguments(options, np.places[1], "option ")
            try:
                a = op.args.model_validate(args)
                o = np.default_options
                if o is None or options:
                    o = op.options.model_validate(options)
            except ValidationError as e:
                raise StepError(_validation_message(e)) from None
            if samples is None:
                value = await self._attempts(np, a, o, span, 0, timeout, int(retries))
            else:
                n = int(samples)
                if n < 1:
                    raise StepError(f"`samples` must be at least 1, got {samples}")
                try:
                    async with asyncio.TaskGroup() as tg:
                        tasks = [
                            tg.create_task(self._attempts(np, a, o, span, i, timeout, int(retries)))
                            for i in range(n)
                        ]
                except BaseExceptionGroup as group:
                    raise _first_error(group) from None
                value = [t.result() for t in tasks]
        except Exception as e:
            failure = e if isinstance(e, StepFailed) else self._node_error(node, e)
            tracer.end(span, "error", error=_message(e))
            if failure is e:
                raise
            raise failure from e
        except BaseException:
            tracer.end(span, "cancelled")
            raise
        tracer.end(span, "ok", outputs=value)
        return value

    async def _attempts(
        self,
        np: _NodePlan,
        args: Any,
        options: Any,
        span: Span,
        sample: int,
        timeout: float | None,
        retries: int,
    ) -> Any:
        """Run the operator, retrying retryable errors with exponential backoff and jitter."""
        run = np.op.run
        ctx = self.state.context(np.id, span, sample)
        attempt = 0
        while True:
            try:
                async with self._slots:
                    if timeout is None:
                        out = await run(ctx, args, options)
                    else:
                        cm = asyncio.timeout(timeout)
                        try:
                            async with cm:
                                out = await run(ctx, args, options)
                        except TimeoutError:
                            if not cm.expired():
                                raise
                            raise StepTimeout(
                                f"it ran longer than its {timeout:g} s time limit"
                            ) from None
                return to_json(out)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None and task.cancelling() == 0:
                    # nobody cancelled this step: the operator leaked a cancellation of its own,
                    # which would otherwise leave every step waiting on this one hanging
                    raise StepError("the operator stopped with a stray cancellation") from None
                raise
            except StepError as e:
                if not e.retryable or attempt >= retries:
                    raise
                delay = self._backoff(attempt)
                self.tracer.event(
                    span, "retry", attempt=attempt + 1, delay_s=round(delay, 3), error=e.message
                )
                attempt += 1
                await asyncio.sleep(delay)

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with jitter: base·2^attempt, scaled by a random 0.5..1.5."""
        o = self.options
        return min(o.backoff_max, o.backoff_base * (2**attempt)) * (0.5 + random.random())

    # ------------------------------------------------------------ composite nodes

    def _start_composite(self, node: ir.Node, parent: Span | None, **attrs: Any) -> Span:
        return self.tracer.start(
            "step", node.name, parent, step=node.id, op=_op_name(node), attrs=attrs or None
        )

    async def _composite(self, node: ir.Node, span: Span, body: Coroutine[Any, Any, Any]) -> Any:
        """Await `body` under `span`, ending the span with the right status."""
        try:
            value = await body
        except Exception as e:
            self.tracer.end(span, "error", error=_message(e))
            if isinstance(e, StepFailed):
                raise
            raise self._node_error(node, e) from e
        except BaseException:
            self.tracer.end(span, "cancelled")
            raise
        self.tracer.end(span, "ok", outputs=value)
        return value

    async def _exec_branch(self, np: _NodePlan, scope: Scope, parent: Span | None) -> Any:
        node: ir.Branch = np.node  # type: ignore[assignment]
        span = self._start_composite(node, parent)
        return await self._composite(node, span, self._branch(np, node, scope, span))

    async def _branch(
        self, np: _NodePlan, node: ir.Branch, scope: Scope, span: Span
    ) -> dict[str, Any]:
        arms: tuple[_ArmPlan, ...] = np.op
        taken: int | None = None
        for i, arm in enumerate(arms):
            if arm.when is None:
                taken = i
                break
            for name in arm.deps:
                dep = scope.find(name)
                if not dep.done():
                    await dep
            if truthy(arm.when(scope.value)):
                taken = i
                break
        span.attrs["arm"] = taken
        for i, arm in enumerate(arms):
            if i != taken:
                self._skip(arm.body, span)
        if taken is None:
            return {}
        return await self.run_graph(arms[taken].body, Scope(scope), span)

    async def _exec_loop(self, np: _NodePlan, scope: Scope, parent: Span | None) -> Any:
        node: ir.Loop = np.node  # type: ignore[assignment]
        span = self._start_composite(node, parent, max_iters=node.max_iters)
        return await self._composite(node, span, self._loop(np, node, scope, span))

    async def _loop(self, np: _NodePlan, node: ir.Loop, scope: Scope, span: Span) -> dict[str, Any]:
        lookup = scope.value
        carried = {k: fn(lookup) for k, fn in np.args}
        params = node.body.params
        missing = [p for p in params if p not in carried]
        if missing:
            raise RunError(f"the loop has no initial value for {', '.join(missing)}")
        outputs: dict[str, Any] = {}
        turn = 0
        for turn in range(1, node.max_iters + 1):
            turn_span = self.tracer.start(
                "step", f"{node.name} turn {turn}", span, step=node.id, op="turn",
                attrs={"turn": turn},
            )  # fmt: skip
            child = Scope(scope)
            for p in params:
                child.bind(p, carried[p])
            outputs = await self._composite(
                node, turn_span, self.run_graph(node.body, child, turn_span)
            )
            if "$until" not in outputs:
                raise RunError("the loop body computes no `$until` condition")
            carried = {p: outputs.get(p, carried[p]) for p in params}
            if truthy(outputs["$until"]):
                break
        span.attrs["iterations"] = turn
        return {**carried, **outputs, "$iterations": turn}

    async def _exec_map(self, np: _NodePlan, scope: Scope, parent: Span | None) -> Any:
        node: ir.Map = np.node  # type: ignore[assignment]
        span = self._start_composite(node, parent)
        return await self._composite(node, span, self._map(np, node, scope, span))

    async def _map(self, np: _NodePlan, node: ir.Map, scope: Scope, span: Span) -> list[Any]:
        items = np.args[0][1](scope.value)
        if not isinstance(items, list):
            raise RunError(f"`for each` needs a list, got {_kind(items)}")
        span.attrs["items"] = len(items)
        names = {node.var, *node.body.params}

        async def one(i: int, item: Any) -> Any:
            item_span = self.tracer.start(
                "step", f"{node.name} item {i}", span, step=node.id, op="item", attrs={"item": i}
            )
            child = Scope(scope)
            for name in names:
                child.bind(name, item)
            outputs = await self._composite(
                node, item_span, self.run_graph(node.body, child, item_span)
            )
            if "$item" not in outputs:
                raise RunError("the `for each` body computes no `$item` value")
            return outputs["$item"]

        try:
            async with asyncio.TaskGroup() as tg:
                tasks = [tg.create_task(one(i, item)) for i, item in enumerate(items)]
        except BaseExceptionGroup as group:
            raise _first_error(group) from None
        return [t.result() for t in tasks]

    async def _exec_call(self, np: _NodePlan, scope: Scope, parent: Span | None) -> Any:
        node: ir.Call = np.node  # type: ignore[assignment]
        span = self._start_composite(node, parent, workflow=node.workflow)
        return await self._composite(node, span, self._call(np, node, scope, span))

    async def _call(self, np: _NodePlan, node: ir.Call, scope: Scope, span: Span) -> Any:
        wf = self.program.workflows.get(node.workflow)
        if wf is None:
            raise RunError(f"there is no workflow named {node.workflow!r} to call")
        if scope.depth >= self.options.max_call_depth:
            raise RunError(f"workflow calls nest deeper than {self.options.max_call_depth}")
        lookup = scope.value
        args = {k: fn(lookup) for k, fn in np.args}
        missing = [p for p in wf.graph.params if p not in args]
        if missing:
            raise RunError(f"the call of {wf.name} gives no value for {', '.join(missing)}")
        child = Scope(depth=scope.depth + 1)
        declared = {f.name: f.type for f in wf.inputs}
        for k, v in args.items():
            child.bind(k, _coerce_input(wf, k, declared.get(k), v))
        return declared_outputs(wf, await self.run_graph(wf.graph, child, span))

    # ------------------------------------------------------------ skipping

    def _skip(self, graph: ir.Graph, parent: Span) -> None:
        """Record every node of an untaken arm (recursively) as skipped."""
        for node in graph.nodes:
            span = self.tracer.skipped("step", node.name, parent, step=node.id, op=_op_name(node))
            if isinstance(node, ir.Branch):
                for arm in node.arms:
                    self._skip(arm.body, span)
            elif isinstance(node, ir.Loop | ir.Map):
                self._skip(node.body, span)


# ---------------------------------------------------------------- helpers


def check_inputs(wf: ir.Workflow, inputs: dict[str, Any]) -> dict[str, Any]:
    """The inputs as the workflow declares them, or an `InputError` that lists what it takes."""
    if not inputs and not wf.inputs and not wf.graph.params:
        return {}
    declared = {f.name: f for f in wf.inputs}
    if not declared and wf.graph.params:
        declared = {p: ir.Field_(name=p, type="json") for p in wf.graph.params}
    problems: list[str] = []
    unknown = [k for k in inputs if k not in declared]
    if unknown:
        problems.append("unknown input" + ("s " if len(unknown) > 1 else " ") + ", ".join(unknown))
    missing = [k for k, f in declared.items() if k not in inputs and f.default is None]
    if missing:
        problems.append("missing input" + ("s " if len(missing) > 1 else " ") + ", ".join(missing))
    for name, f in declared.items():
        if name in inputs:
            try:
                t = parse_type(f.type)
            except ValueError:
                continue
            if not check_value(t, inputs[name]):
                problems.append(
                    f"input {name} must be {f.type}, got {_kind(inputs[name])} "
                    f"{_preview(inputs[name])}"
                )
    if problems:
        expected = ", ".join(map(_declared, declared.values())) or "no inputs"
        raise InputError(
            f"Wrong inputs for workflow {wf.name}: {'; '.join(problems)}. It takes: {expected}."
        )
    values: dict[str, Any] = {}
    for k, f in declared.items():
        if k in inputs:
            values[k] = inputs[k]
        elif f.default is not None:  # a fresh copy: a run never changes the next one's default
            values[k] = copy.deepcopy(f.default.value)
    return values


def _declared(f: ir.Field_) -> str:
    """`k: number` or, for an input that may be left out, `k: number = 3`."""
    if f.default is None:
        return f"{f.name}: {f.type}"
    return f"{f.name}: {f.type} = {json.dumps(f.default.value, ensure_ascii=False)}"


def _coerce_input(wf: ir.Workflow, name: str, declared: str | None, value: Any) -> Any:
    """A call's argument converted to the callee's declared input type (`runtime.coerce`)."""
    if declared is None:
        return value
    try:
        return coerce(value, parse_type(declared))
    except ValueError:
        return value
    except CoercionError as e:
        raise RunError(
            f"The input `{name}` of workflow {wf.name} is declared {declared}, but the call "
            f"gives {e.got}."
        ) from None


def declared_outputs(wf: ir.Workflow, outputs: dict[str, Any]) -> dict[str, Any]:
    """The outputs converted to their declared types (`runtime.coerce`), or a `RunError` that
    names the output, its type and the value that does not fit."""
    for f in wf.outputs:
        if f.name not in outputs:
            continue
        try:
            t = parse_type(f.type)
        except ValueError:
            continue
        try:
            outputs[f.name] = coerce(outputs[f.name], t)
        except CoercionError as e:
            raise RunError(
                f"The output `{f.name}` of workflow {wf.name} is declared {f.type}, "
                f"but the workflow computed {e.got}."
            ) from None
    return outputs


def to_json(value: Any) -> Any:
    """An operator's result as plain JSON values (pydantic models dumped, tuples as lists)."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    return value


def _first_error(group: BaseExceptionGroup[Any]) -> BaseException:
    """The failure that started the cancellation (a TaskGroup lists it first)."""
    for e in group.exceptions:
        if isinstance(e, BaseExceptionGroup):
            return _first_error(e)
        if not isinstance(e, asyncio.CancelledError):
            return e
    return group.exceptions[0]


def _message(e: BaseException) -> str:
    if isinstance(e, TreadleError):
        return e.message
    if isinstance(e, ExprError):
        return str(e)
    if isinstance(e, asyncio.CancelledError):
        return "cancelled"
    text = str(e)
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _op_name(node: ir.Node) -> str:
    if isinstance(node, ir.Step):
        return node.op
    return node.kind


def _where(node: ir.Node) -> str:
    s = node.span
    if s is None:
        return ""
    if s.file:
        return f" at {os.path.basename(s.file)}:{s.line}:{s.column}"
    return f" at line {s.line}"


def _kind(value: Any) -> str:
    from treadle.runtime.expr import type_name

    return type_name(value)


def _preview(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _validation_message(e: ValidationError) -> str:
    parts = []
    for err in e.errors()[:5]:
        loc = ".".join(str(x) for x in err.get("loc", ())) or "value"
        msg = err.get("msg", "invalid")
        if err.get("type") == "extra_forbidden":
            parts.append(f"it takes no `{loc}`")
        elif err.get("type") == "missing":
            parts.append(f"`{loc}` is required but was not given")
        else:
            parts.append(f"`{loc}`: {msg} (got {_preview(err.get('input'))})")
    more = len(e.errors()) - 5
    return "bad arguments: " + "; ".join(parts) + (f"; and {more} more" if more > 0 else "")
