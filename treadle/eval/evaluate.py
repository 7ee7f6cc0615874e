"""`evaluate(flow, data, ...)`: score a workflow on a dataset, resumably, and report.

Everything that can be wrong with the input (the flow, the dataset, the mapping, a scorer) is
checked before any row runs and raised as one `InputError` paragraph. Then the dataset becomes
row-jobs (`runner.RowJob`, one per row and epoch) and an executor runs them through
`runner.run_row`: the local one here (an asyncio map with bounded concurrency over one shared
`EvalResources`) or Ray (`executor="ray"`, `treadle.eval.ray_executor.run_jobs`, imported
lazily; it receives the jobs and an `on_result` callback and calls it once per finished job).

The results file (JSONL: a header line, then one line per finished row-epoch, flushed as it
finishes) is the record: `resume=PATH` reads it back, runs only what is missing (and re-runs
rows that ended in an infrastructure error), and the report is built from the file's lines, so
it equals an uninterrupted run's.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from treadle.eval.datasets import Dataset, DatasetError, load_dataset
from treadle.eval.progress import Progress, make_progress
from treadle.eval.report import EvalReport, RowReport, build_report, parse_reducer
from treadle.eval.runner import EvalResources, RowJob, ScorerSpec, run_row
from treadle.eval.scorers import Scorer, resolve_scorer
from treadle.errors import InputError, TreadleError

OnResult = Callable[[RowReport], None]
RESULTS_VERSION = 1
DEFAULT_DIR = Path(".treadle") / "evals"


def _flow_of(flow: Any) -> tuple[Any, str, str | None]:
    """(Flow, source text, path) for a path or a `Flow`."""
    from treadle.flow import Flow

    if isinstance(flow, Flow):
        if flow.path is not None and Path(flow.path).is_file():
            return flow, Path(flow.path).read_text(encoding="utf-8"), str(flow.path)
        if flow.program.source:
            return flow, flow.program.source, None
        return flow, "", None
    path = Path(flow)
    if not path.is_file():
        raise InputError(f"There is no flow file {path}.")
    loaded = Flow.load(path)
    return loaded, path.read_text(encoding="utf-8"), str(path)


def _scorer_specs(
    scorers: str | Scorer | Sequence[str | Scorer], options: Mapping[str, Any] | None
) -> tuple[list[ScorerSpec], list[Scorer]]:
    items: list[Any] = (
        [scorers] if isinstance(scorers, str | Scorer) or callable(scorers) else list(scorers)
    )
    if not items:
        raise InputError("Give at least one scorer.")
    specs, built = [], []
    for i, item in enumerate(items):
        opts = dict(options or {}) if i == 0 else {}
        if isinstance(item, str):
            for key, value in list((options or {}).items()):
                if key.startswith(item + "."):
                    opts[key[len(item) + 1 :]] = value
            opts = {k: v for k, v in opts.items() if "." not in k}
            scorer = resolve_scorer(item, **opts)
            specs.append(ScorerSpec(spec=item, options=opts))
        else:
            scorer = resolve_scorer(item)
            specs.append(ScorerSpec(spec=scorer.spec, options=dict(scorer.options)))
        built.append(scorer)
    names = [s.spec for s in specs]
    if len(set(names)) != len(names):
        raise InputError(f"The scorers {names} name one scorer twice.")
    return specs, built


def _coerce_inputs(flow: Any, workflow: str | None, ds: Dataset) -> None:
    """CSV cells are text: read declared number/boolean/json/list inputs as JSON, then check
    every row's inputs against the workflow (a mismatch is bad input, said before any run)."""
    wf = flow.workflow(workflow)
    kinds = {f.name: f.type.split()[0] for f in wf.inputs}
    for row in ds.rows:
        for name, value in list(row.inputs.items()):
            if isinstance(value, str) and kinds.get(name) in ("number", "boolean", "json", "list"):
                with contextlib.suppress(orjson.JSONDecodeError):
                    row.inputs[name] = orjson.loads(value)
        try:
            flow.check_inputs(row.inputs, wf.name)
        except InputError as e:
            raise DatasetError(
                f"The dataset {ds.name} does not fit the flow: row {row.id}: {e.message}"
            ) from None


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "row"


def read_results(path: Path) -> tuple[dict[str, Any] | None, list[RowReport]]:
    """The header and row lines of a results file; a torn last line (a kill mid-write) is
    dropped, and the file is cut back to its last full line so appending stays valid."""
    if not path.is_file():
        raise InputError(f"There is no results file {path} to resume from.")
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        with path.open("r+b") as f:
            f.truncate(cut)
        data = data[:cut]
    header, rows = None, []
    for n, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = orjson.loads(line)
        except orjson.JSONDecodeError:
            raise InputError(f"The results file {path} is damaged: line {n} is not JSON.") from None
        if item.get("kind") == "header":
            header = item
        elif item.get("kind") == "row":
            item.pop("kind")
            rows.append(RowReport.model_validate(item))
    if header is None:
        raise InputError(f"{path} is not a treadle results file (it has no header line).")
    return header, rows


class _ResultsFile:
    """Appends one JSON line per finished row-epoch and flushes it to the OS at once."""

    def __init__(self, path: Path, header: dict[str, Any] | None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        if header is not None:
            self.f = path.open("wb")
            self._write({"kind": "header", **header})
        else:
            self.f = path.open("ab")

    def _write(self, item: dict[str, Any]) -> None:
        self.f.write(orjson.dumps(item, default=str) + b"\n")
        self.f.flush()

    def add(self, row: RowReport) -> None:
        self._write({"kind": "row", **row.model_dump(mode="json")})

    def close(self) -> None:
        self.f.close()


def _max_errors(value: int | float | str | None, total: int) -> int | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        raise InputError(f"--max-errors takes a count or a fraction, got {value!r}.") from None
    if number < 0:
        raise InputError(f"--max-errors must not be negative, got {value!r}.")
    if 0 < number < 1:
        return int(number * total)
    return int(number)


def _default_concurrency(model: Any) -> int:
    spec = model if isinstance(model, str) else ""
    if spec.startswith(("scripted:", "openai:")) or (
        model is not None and not isinstance(model, str)
    ):
        return 16
    return 4  # the embedded model computes one call at a time; a few rows keep it busy


async def evaluate(
    flow: str | Path | Any,
    data: str | Path | Dataset | Sequence[Mapping[str, Any]],
    *,
    scorers: str | Scorer | Sequence[str | Scorer] = "exact",
    scorer_options: Mapping[str, Any] | None = None,
    target: str | None = None,
    input_map: Mapping[str, str] | None = None,
    output: str | None = None,
    model: Any = None,
    models: Mapping[str, Any] | None = None,
    concurrency: int | None = None,
    cache: Any = True,
    seed: int = 0,
    epochs: int = 1,
    reducer: str = "mean",
    limit: int | None = None,
    rows: str | tuple[int, int] | None = None,
    ids: Sequence[str] | str | None = None,
    shuffle: bool = False,
    workflow: str | None = None,
    results: str | Path | None = None,
    resume: str | Path | None = None,
    report: str | Path | None = None,
    display: str | Progress | None = None,
    executor: str = "local",
    ray_address: str | None = None,
    ray_workers: int | None = None,
    row_timeout: float | None = None,
    step_timeout: float | None = None,
    max_errors: int | float | str | None = None,
    resources: EvalResources | None = None,
    trace_dir: str | Path | bool | None = None,
    sandbox: str = "docker",
    isolation: str | None = None,
    plain_every: int = 10,
) -> EvalReport:
    """Run `flow` on every selected row of `data` (`epochs` times each), score each output with
    `scorers` (the first is the primary one), and return the `EvalReport`. See docs/evaluation.md
    for every option; the CLI's `treadle eval` is a thin layer over this."""
    started = time.monotonic()
    # ---- check everything before anything runs
    if epochs < 1:
        raise InputError(f"--epochs must be at least 1, got {epochs}.")
    try:
        parse_reducer(reducer, epochs)
    except ValueError as e:
        raise InputError(f"--reducer: {e}.") from None
    if executor not in ("local", "ray"):
        raise InputError(f"--executor is local or ray, got {executor!r}.")
    if concurrency is not None and concurrency < 1:
        raise InputError(f"--concurrency must be at least 1, got {concurrency}.")
    if executor == "ray" and not isinstance(model, str | None):
        raise InputError("executor='ray' needs the model as a spec string (it goes to workers).")
    if ray_workers is not None and executor != "ray":
        raise InputError("--ray-workers is for --executor ray.")
    if ray_workers is not None and ray_workers < 1:
        raise InputError(f"--ray-workers must be at least 1, got {ray_workers}.")
    the_flow, source, flow_path = _flow_of(flow)
    wf = the_flow.workflow(workflow)
    if output is not None and output not in {f.name for f in wf.outputs}:
        names = ", ".join(f.name for f in wf.outputs)
        raise InputError(f"--output {output}: the workflow {wf.name} returns {names}.")
    header_prev: dict[str, Any] | None = None
    done: list[RowReport] = []
    if resume is not None:
        header_prev, done = read_results(Path(resume))
    ds = load_dataset(
        data,
        input_map=input_map,
        target=target,
        limit=limit,
        rows=rows,
        ids=ids,
        shuffle=shuffle,
        seed=seed,
    )
    ds = ds.bind([f.name for f in wf.inputs] or list(wf.graph.params), input_map)
    _coerce_inputs(the_flow, wf.name, ds)
    specs, built = _scorer_specs(scorers, scorer_options)
    model_name = (
        model
        if isinstance(model, str | None)
        else f"{getattr(model, 'backend', type(model).__name__)}:{getattr(model, 'model', '')}"
    )
    header = {
        "version": RESULTS_VERSION,
        "flow": flow_path or wf.name,
        "program_hash": the_flow.program.content_hash(),
        "workflow": wf.name,
        "dataset": ds.name,
        "model": model_name,
        "scorers": [s.model_dump() for s in specs],
        "epochs": epochs,
        "seed": seed,
        "reducer": reducer,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    if header_prev is not None:
        for key in ("program_hash", "model", "seed"):
            if header_prev.get(key) != header[key]:
                raise InputError(
                    f"--resume {resume}: that results file was made with a different {key} "
                    f"({header_prev.get(key)!r}, now {header[key]!r}); resuming would mix two "
                    "evaluations. Start a new results file instead."
                )
    # ---- where things go
    if resume is not None:
        results_path = Path(resume)
    elif results is not None:
        results_path = Path(results)
    else:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        results_path = DEFAULT_DIR / f"{stamp}-{_safe(wf.name)}.jsonl"
    traces = (
        Path(trace_dir)
        if isinstance(trace_dir, str | Path)
        else results_path.with_suffix("").with_name(results_path.stem + "-traces")
    )
    # ---- the jobs
    kept = {(r.id, r.epoch): r for r in done if r.status != "error"}  # errors are retried on resume
    wanted = {(row.id, e) for row in ds.rows for e in range(epochs)}
    prior = [r for key, r in kept.items() if key in wanted]
    jobs = [
        RowJob(
            flow_source=source,
            flow_path=flow_path,
            flow_ir=None if source else the_flow.program.model_dump_json(),
            workflow=wf.name,
            row=row,
            epoch=e,
            seed=seed + e,
            scorers=specs,
            output=output,
            model=model_name if isinstance(model, str | None) else None,
            trace_path=None if trace_dir is False else str(traces / f"{_safe(row.id)}-e{e}.jsonl"),
            row_timeout=row_timeout,
            step_timeout=step_timeout,
        )
        for row in ds.rows
        for e in range(epochs)
        if (row.id, e) not in kept
    ]
    budget = _max_errors(max_errors, len(wanted))
    progress = make_progress(display, every=plain_every)
    writer = _ResultsFile(results_path, None if resume is not None else header)
    finished: list[RowReport] = list(prior)
    stopped: list[str] = []
    errors = 0

    def on_result(row: RowReport) -> None:
        nonlocal errors
        writer.add(row)
        finished.append(row)
        if progress is not None:
            progress.update(row)
        if row.status == "error":
            errors += 1
            if budget is not None and errors > budget and not stopped:
                stopped.append(
                    f"stopped after {errors} errors (--max-errors {max_errors}); "
                    f"the last: {row.error}"
                )

    if progress is not None:
        progress.start(len(wanted), len(prior))
    own = resources is None
    limit_ = concurrency or _default_concurrency(model)
    res = resources or EvalResources(
        model=model,
        models=models,
        cache=cache,
        sandbox=sandbox,
        isolation=isolation,
        sandbox_pool=min(limit_, 8),
    )
    for spec, scorer in zip(specs, built, strict=True):
        res.add_scorer(spec, scorer)
    try:
        if executor == "ray":
            # each worker builds its own `EvalResources` from these settings
            from treadle.eval import ray_executor

            await ray_executor.run_jobs(
                jobs,
                on_result,
                model=model,
                cache=cache,
                sandbox=sandbox,
                isolation=isolation,
                concurrency=concurrency,
                address=ray_address,
                workers=ray_workers,
                should_stop=lambda: bool(stopped),
            )
        else:
            await _run_local(jobs, res, on_result, limit_, lambda: bool(stopped))
    finally:
        if progress is not None:
            progress.finish()
        writer.close()
        if own:
            await res.aclose()
    final = build_report(
        finished,
        reducer=reducer,
        order=[r.id for r in ds.rows],
        flow=str(flow_path or wf.name),
        dataset=ds.name,
        model=model_name,
        scorer=specs[0].spec,
        epochs=epochs,
    )
    final.stopped = stopped[0] if stopped else None
    final.results_path = str(results_path)
    final.wall_s = round(time.monotonic() - started, 3)
    if report is not None:
        out = Path(report)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(final.to_json())
    return final


async def _run_local(
    jobs: list[RowJob],
    resources: EvalResources,
    on_result: OnResult,
    concurrency: int,
    should_stop: Callable[[], bool],
) -> None:
    """The local executor: `concurrency` workers pull jobs in order and run them."""
    queue = iter(jobs)
    workers: list[asyncio.Task[None]] = []

    async def worker() -> None:
        for job in queue:
            if should_stop():
                break
            on_result(await run_row(job, resources))
            if should_stop():
                break
        if should_stop():  # past the error budget: stop the rows still running, cleanly
            current = asyncio.current_task()
            for w in workers:
                if w is not current:
                    w.cancel()

    async with asyncio.TaskGroup() as tg:
        workers.extend(tg.create_task(worker()) for _ in range(max(1, min(concurrency, len(jobs)))))


def study(
    kind: str,
    data: str | Path | Dataset | Sequence[Mapping[str, Any]],
    *,
    work_dir: str | Path | None,
    resources: EvalResources | None,
    model: Any,
    models: Mapping[str, Any] | None,
    cache: Any,
    sandbox: str,
    isolation: str | None = None,
    **selection: Any,
) -> tuple[Dataset, Path, EvalResources, bool]:
    """What a study of many evaluations on one dataset (attribution, ranking) sets up: the
    rows (`selection` as `load_dataset` takes it; a given `Dataset` as it is), the work
    directory (default `.treadle/KIND/<time>`), and the resources every evaluation shares,
    with whether the study made them (then it closes them)."""
    ds = data if isinstance(data, Dataset) else load_dataset(data, **selection)
    work = Path(work_dir) if work_dir else Path(".treadle") / kind / time.strftime("%Y%m%d-%H%M%S")
    if resources is not None:
        return ds, work, resources, False
    made = EvalResources(
        model=model, models=models, cache=cache, sandbox=sandbox, isolation=isolation
    )
    return ds, work, made, True


def evaluate_sync(*args: Any, **kwargs: Any) -> EvalReport:
    """`evaluate` for code without an event loop (same arguments)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(evaluate(*args, **kwargs))
    raise TreadleError(
        "evaluate_sync was called inside a running event loop; use `await evaluate(...)`."
    )
