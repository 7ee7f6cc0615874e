"""`evaluate(flow, data, ...)`: score a workflow on a dataset, resumably, and report.

Everything that can be wrong with the input (the flow, the dataset, the mapping, a scorer) is
checked before any row runs and raised as one `InputError` paragraph. Then the dataset becomes
row-jobs (`runner.RowJob`, one per row and epoch) and an executor runs them through
`runner.run_row`: `LocalExecutor` (an asyncio map with bounded concurrency in one shared
`Session`) or `RayExecutor` (workers with a session each); either calls `on_result` once per
finished job (`treadle.eval.executors`).

The results file (JSONL: a header line, then one line per finished row-epoch, flushed as it
finishes) is the record: `resume=PATH` reads it back, runs only what is missing (and re-runs
rows that ended in an infrastructure error), and the report is built from the file's lines, so
it equals an uninterrupted run's.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Unpack

import orjson

from treadle.errors import InputError, TreadleError
from treadle.eval.datasets import Dataset, DatasetError, load_dataset
from treadle.eval.executors import Executor, LocalExecutor, RayExecutor
from treadle.eval.options import Epochs, RowSelection, RunConfig, Scoring, Shortcuts, settle
from treadle.eval.progress import Progress, make_progress
from treadle.eval.report import EvalReport, RowReport, build_report
from treadle.eval.runner import RowJob, RowRunner, ScorerSpec
from treadle.eval.scorers import Scorer, resolve_scorer
from treadle.flow import Flow
from treadle.runtime.session import Session, check_specs

#: what a dataset may be given as: a path, "humaneval", rows as dicts, or a loaded `Dataset`
DataSource = str | Path | Dataset | Sequence[Mapping[str, Any]]
#: 2: the header holds the dataset's content digest, and a resume rewrites the file so it
#: keeps one line per row-epoch
RESULTS_VERSION = 2
#: what a resumed run must share with the results file it continues
_RESUME_KEYS = ("version", "program_hash", "dataset_digest", "scorers", "model", "seed")
DEFAULT_DIR = Path(".treadle") / "evals"


def load_flow(flow: str | Path | Flow) -> Flow:
    """A `Flow` for a path or a `Flow` (compiled once: the row jobs carry its program)."""
    if isinstance(flow, Flow):
        return flow
    path = Path(flow)
    if not path.is_file():
        raise InputError(f"There is no flow file {path}.")
    return Flow.load(path)


def scorer_specs(scoring: Scoring) -> tuple[list[ScorerSpec], list[Scorer]]:
    """The scorers' specs (they pickle) and the scorers built from them, checked now."""
    options = scoring.options
    specs, built = [], []
    for i, item in enumerate(scoring.scorers):
        opts = dict(options) if i == 0 else {}
        if isinstance(item, str):
            for key, value in options.items():
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


def dataset_digest(data: DataSource) -> str:
    """The content digest of a dataset as given (before rows are selected): a resumed run must
    read the same data, whatever its file is called."""
    h = hashlib.sha256()
    if isinstance(data, str | Path) and Path(data).is_file():
        with Path(data).open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    elif isinstance(data, str | Path):
        h.update(f"builtin:{data}".encode())  # "humaneval": what its package ships
    elif isinstance(data, Dataset):
        for r in data.rows:
            h.update(orjson.dumps([r.id, r.columns], option=orjson.OPT_SORT_KEYS, default=str))
    else:
        for item in data:
            h.update(orjson.dumps(dict(item), option=orjson.OPT_SORT_KEYS, default=str))
    return h.hexdigest()[:32]


def _check_resumable(path: Path, before: Mapping[str, Any], now: Mapping[str, Any]) -> None:
    """Refuse to continue a results file made by another flow, dataset, scorer set, model or
    seed: the report would silently mix two evaluations."""
    for key in _RESUME_KEYS:
        if before.get(key) != now[key]:
            what = {"program_hash": "flow", "dataset_digest": "dataset (content)"}.get(key, key)
            raise InputError(
                f"--resume {path}: that results file was made with a different {what} "
                f"({before.get(key)!r}, now {now[key]!r}); resuming would mix two "
                "evaluations. Start a new results file instead."
            )


def _rewrite(path: Path, header: Mapping[str, Any], rows: list[RowReport]) -> None:
    """Replace the results file with `header` and `rows`, atomically (a kill midway leaves
    the old file); the lines are written as a run writes them."""
    tmp = path.with_name(path.name + ".tmp")
    writer = _ResultsFile(tmp, dict(header))
    for row in rows:
        writer.add(row)
    os.fsync(writer.f.fileno())
    writer.close()
    os.replace(tmp, path)


def select_rows(data: DataSource, scoring: Scoring, rows: RowSelection) -> Dataset:
    """The dataset's selected rows, with the target column and input map `scoring` names."""
    return load_dataset(
        data,
        input_map=scoring.input_map,
        target=scoring.target,
        limit=rows.limit,
        rows=rows.rows,
        ids=rows.ids,
        shuffle=rows.shuffle,
        seed=rows.seed,
    )


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


def read_results(
    path: Path, *, repair: bool = True
) -> tuple[dict[str, Any] | None, list[RowReport]]:
    """The header and row lines of a results file; a torn last line (a kill mid-write) is
    dropped, and (`repair`, for a resume) the file is cut back to its last full line so
    appending stays valid. A reader of a file still being written passes `repair=False`."""
    if not path.is_file():
        raise InputError(f"There is no results file {path} to resume from.")
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        if repair:
            with path.open("r+b") as f:
                f.truncate(cut)
        data = data[:cut]
    header: dict[str, Any] | None = None
    rows: dict[tuple[str, int], RowReport] = {}
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
            row = RowReport.model_validate(item)
            rows[(row.id, row.epoch)] = row  # a row-epoch run again (an error retried): the last
    if header is None:
        raise InputError(f"{path} is not a treadle results file (it has no header line).")
    return header, list(rows.values())


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


def _max_errors(value: int | float | None, total: int) -> int | None:
    if value is None:
        return None
    if 0 < value < 1:
        return int(value * total)
    return int(value)


async def evaluate(
    flow: str | Path | Flow,
    data: DataSource,
    *,
    scoring: Scoring | None = None,
    rows: RowSelection | None = None,
    run: RunConfig | None = None,
    epochs: Epochs | int = 1,
    executor: Executor | None = None,
    session: Session | None = None,
    results: str | Path | None = None,
    resume: str | Path | None = None,
    report: str | Path | None = None,
    display: str | Progress | None = None,
    **shortcuts: Unpack[Shortcuts],
) -> EvalReport:
    """Run `flow` on every selected row of `data` (`epochs` times each), score each output as
    `scoring` says (the first scorer is the primary one), and return the `EvalReport`.

    `rows` selects rows, `run` says how to run them (models, cache, sandbox, seed, concurrency,
    time limits), `executor` where (`LocalExecutor`, the default, or `RayExecutor`), `session`
    lends an open session (its backends, cache and sandbox; then `run` gives only the rest).
    `results` is the results file (`resume` continues one), `report` where the report's JSON
    goes. The common case fits in keywords: `evaluate(flow, data, scorer="numeric",
    model="...", limit=20)`. See docs/evaluation.md; `treadle eval` is a thin layer over this.
    """
    started = time.monotonic()
    # ---- check everything before anything runs
    scoring, rows, run = settle(scoring, rows, run, shortcuts)
    epochs = Epochs.of(epochs)
    executor = executor or LocalExecutor()
    if session is not None and run.sets_resources:
        raise InputError(
            "evaluate takes the models, cache and sandbox either from session= or from run=, "
            "not both."
        )
    if isinstance(executor, RayExecutor):
        if session is not None:
            raise InputError("executor ray opens a session on each worker; give no session=.")
        run = executor.check(run)
    the_flow = load_flow(flow)
    wf = the_flow.workflow(scoring.workflow)
    if scoring.output is not None and scoring.output not in {f.name for f in wf.outputs}:
        names = ", ".join(f.name for f in wf.outputs)
        raise InputError(f"--output {scoring.output}: the workflow {wf.name} returns {names}.")
    header_prev: dict[str, Any] | None = None
    done: list[RowReport] = []
    if resume is not None:
        header_prev, done = read_results(Path(resume))
    ds = select_rows(data, scoring, rows)
    ds = ds.bind(
        [f.name for f in wf.inputs] or list(wf.graph.params),
        scoring.input_map,
        optional=[f.name for f in wf.inputs if f.default is not None],
    )
    _coerce_inputs(the_flow, wf.name, ds)
    if session is not None:
        session.check_specs(the_flow.model_specs)
    else:
        check_specs([run.model, *the_flow.model_specs], run.models or {})
    specs, built = scorer_specs(scoring)
    model_name = session.model_name if session is not None else run.model_name
    flow_path = str(the_flow.path) if the_flow.path else None
    header = {
        "version": RESULTS_VERSION,
        "flow": flow_path or wf.name,
        "program_hash": the_flow.program.content_hash(),
        "workflow": wf.name,
        "dataset": ds.name,
        "dataset_digest": dataset_digest(data),
        "model": model_name,
        "scorers": [s.model_dump() for s in specs],
        "epochs": epochs.n,
        "seed": run.seed,
        "reducer": epochs.reducer,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    if header_prev is not None:
        _check_resumable(Path(str(resume)), header_prev, header)
    # ---- where things go
    if resume is not None:
        results_path = Path(resume)
    elif results is not None:
        results_path = Path(results)
    else:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        results_path = DEFAULT_DIR / f"{stamp}-{_safe(wf.name)}.jsonl"
    traces = (
        run.traces
        if isinstance(run.traces, Path)
        else results_path.with_suffix("").with_name(results_path.stem + "-traces")
    )
    # ---- the jobs: one compiled program for every row
    # errors are run again on resume; the file keeps one line per row-epoch (the last)
    kept = {(r.id, r.epoch): r for r in done if r.status != "error"}
    if resume is not None and len(kept) != len(done):
        _rewrite(results_path, header_prev or header, list(kept.values()))
    wanted = {(row.id, e) for row in ds.rows for e in range(epochs.n)}
    prior = [r for key, r in kept.items() if key in wanted]
    jobs = [
        RowJob(
            program=the_flow.program,
            flow_path=flow_path,
            workflow=wf.name,
            row=row,
            epoch=e,
            seed=run.seed + e,
            scorers=specs,
            output=scoring.output,
            traces=None if run.traces is False else os.path.abspath(traces),
            trace_group=results_path.name,
        )
        for row in ds.rows
        for e in range(epochs.n)
        if (row.id, e) not in kept
    ]
    budget = _max_errors(run.max_errors, len(wanted))
    progress = make_progress(display)
    writer = _ResultsFile(results_path, None if resume is not None else header)
    stopped: list[str] = []
    errors = 0

    def on_result(row: RowReport) -> None:
        nonlocal errors
        writer.add(row)
        if progress is not None:
            progress.update(row)
        if row.status == "error":
            errors += 1
            if budget is not None and errors > budget and not stopped:
                stopped.append(
                    f"stopped after {errors} errors (--max-errors {run.max_errors:g}); "
                    f"the last: {row.error}"
                )

    if progress is not None:
        progress.start(len(wanted), prior)
    own = session is None
    the_session = session if session is not None else run.session()
    runner = RowRunner(the_session, run)
    for spec, scorer in zip(specs, built, strict=True):
        runner.add_scorer(spec, scorer)
    try:
        await executor.run(jobs, runner, on_result, lambda: bool(stopped))
    finally:
        if progress is not None:
            progress.finish()
        writer.close()
        runner.close_traces()
        if own:
            await the_session.aclose()
    # the report comes from the record, so a resumed run reports exactly what the file holds
    _, recorded = read_results(results_path)
    final = build_report(
        [r for r in recorded if (r.id, r.epoch) in wanted],
        reducer=epochs.reducer,
        order=[r.id for r in ds.rows],
        flow=str(flow_path or wf.name),
        dataset=ds.name,
        model=model_name,
        scorer=specs[0].spec,
        epochs=epochs.n,
    )
    final.stopped = stopped[0] if stopped else None
    final.results_path = str(results_path)
    final.wall_s = round(time.monotonic() - started, 3)
    if report is not None:
        out = Path(report)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(final.to_json())
    return final


@dataclass
class Study:
    """Many evaluations of one dataset sharing one session (attribution, ranking, search):
    every model call upstream of a change is a cache hit, and one sandbox pool serves all."""

    dataset: Dataset
    work: Path
    session: Session
    scoring: Scoring
    run: RunConfig
    display: Progress | None = None

    def say(self, message: str) -> None:
        """Tell the person watching what the study does next (through its progress display)."""
        if self.display is not None:
            self.display.log(message)

    async def evaluate(
        self,
        flow: str | Path | Flow,
        name: str,
        *,
        ids: Sequence[str] | None = None,
        epochs: Epochs | int = 1,
    ) -> EvalReport:
        """Evaluate `flow` on the study's rows (or `ids` of them); results in WORK/NAME.jsonl."""
        return await evaluate(
            flow,
            self.dataset,
            scoring=self.scoring,
            rows=RowSelection(ids=ids) if ids is not None else None,
            run=self.run,
            epochs=epochs,
            session=self.session,
            results=self.work / f"{name}.jsonl",
            display=self.display,
        )


@contextlib.asynccontextmanager
async def open_study(
    kind: str,
    data: DataSource,
    *,
    scoring: Scoring,
    rows: RowSelection,
    run: RunConfig,
    session: Session | None = None,
    work_dir: str | Path | None = None,
    display: str | Progress | None = None,
) -> AsyncIterator[Study]:
    """Set a study up: its rows (selected once), its work directory (default
    `.treadle/KIND/<time>`) and its session (the given one, or one it opens and closes)."""
    ds = data if isinstance(data, Dataset) else select_rows(data, scoring, rows)
    work = Path(work_dir) if work_dir else Path(".treadle") / kind / time.strftime("%Y%m%d-%H%M%S")
    if session is not None and run.sets_resources:
        raise InputError(
            f"the {kind} takes the models, cache and sandbox either from session= or from run=, "
            "not both."
        )
    own = session is None
    the_session = session if session is not None else run.session()
    try:
        progress = make_progress(display)
        yield Study(ds, work, the_session, scoring, run.without_resources(), progress)
    finally:
        if own:
            await the_session.aclose()


def evaluate_sync(*args: Any, **kwargs: Any) -> EvalReport:
    """`evaluate` for code without an event loop (same arguments)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(evaluate(*args, **kwargs))
    raise TreadleError(
        "evaluate_sync was called inside a running event loop; use `await evaluate(...)`."
    )
