"""Rewards for RL training of workflow *generators*: a completion is `.flow` text, its reward is
how well that flow does on task instances, through the same runner as `treadle.evaluate`.

    reward = FlowReward(dataset="examples/data/arithmetic.jsonl", scorer="numeric", instances=4)
    GRPOTrainer(..., reward_funcs=[reward])             # TRL, sync path
    GRPOTrainer(..., reward_funcs=[reward.as_async()])  # TRL's async reward path
    verl_compute_score(reward) / openrlhf_reward_func(reward)   # the other trainers' contracts

For each completion:
1. the flow text is extracted (`extract_flow`, rule below);
2. it is compiled; a compile failure gets `compile_failure` (default -1.0, below every score a
   running flow can get) and its diagnostics are recorded and logged;
3. a flow that compiles runs on K task instances (the row's `instances` column; else the row's
   own columns when no dataset was given; else K rows sampled without replacement from the
   dataset with a seed fixed per prompt, all of them when K ≥ its size) and gets the mean
   score in [0, 1]; a flow whose inputs do not fit the instances counts as a compile failure;
4. an infrastructure error (model down, sandbox failure, timeout) gives `None`: TRL masks
   `None` (NaN in its tensor, ignored by its nan-aware means); a fake 0 would poison the
   advantage of every other completion in the group.

Why one background event loop: the shared `EvalResources` (model backends, cache, ONE sandbox
pool) belong to the loop that opened them. TRL calls reward functions synchronously, or from
its own short-lived loop on the async path, so every batch is run on one long-lived loop in a
daemon thread, and the resources are opened once and reused across the whole training run.

The fenced-block rule (`extract_flow`): if the completion holds a Markdown code fence, the
first block tagged `flow` or `treadle` wins, else the first fenced block of any tag; a fence
left open (the completion hit its token limit) runs to the end of the text. Without a fence the
whole completion is the flow. Surrounding whitespace is stripped. When a plain-text prompt
ends inside an open fence (the generator is primed with the start of the flow, say its
signature), the completion continues that block: the flow is the prompt's open block plus the
completion, cut at the completion's closing fence.
"""

from __future__ import annotations

import asyncio
import atexit
import hashlib
import json
import logging
import random
import re
import tempfile
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Literal, TypeVar, Unpack

from pydantic import BaseModel, Field

from treadle.errors import CompileError, InputError, TreadleError
from treadle.eval.evaluate import DataSource, evaluate, scorer_specs
from treadle.eval.options import RunConfig, Scoring, Shortcuts, settle
from treadle.eval.runner import trace_stream_path
from treadle.runtime.session import Session
from treadle.runtime.tracing import open_stream

log = logging.getLogger("treadle.rewards")

_T = TypeVar("_T")

#: keyword arguments TRL passes that are not dataset columns
TRL_KWARGS = frozenset(
    {
        "prompts",
        "completions",
        "completion_ids",
        "trainer_state",
        "log_extra",
        "log_metric",
        "environments",
    }
)

_FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})[ \t]*([\w.+-]*)[^\n]*$", re.MULTILINE)
_FLOW_TAGS = ("flow", "treadle")


def _blocks(text: str) -> tuple[list[tuple[str, str]], int | None]:
    """The fenced blocks of `text` as (tag, body), and where a fence left open starts."""
    blocks: list[tuple[str, str]] = []
    pos = 0
    while True:
        opening = _FENCE.search(text, pos)
        if opening is None:
            return blocks, None
        fence, tag = opening.group(1), opening.group(2).lower()
        body_start = opening.end() + 1
        closing = re.compile(
            rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$", re.MULTILINE
        ).search(text, body_start)
        if closing is None:
            blocks.append((tag, text[body_start:]))
            return blocks, opening.start()
        blocks.append((tag, text[body_start : closing.start()]))
        pos = closing.end()


def extract_flow(text: str, prompt: str | None = None) -> str:
    """The `.flow` text in a completion (the module docstring states the rule).

    When a plain-text `prompt` ends inside an open fence (a generator primed with the start
    of the flow, e.g. its signature), the completion continues that block.
    """
    if prompt:
        _, open_at = _blocks(prompt)
        if open_at is not None:
            text = prompt[open_at:] + text
    blocks, _ = _blocks(text)
    if not blocks:
        return text.strip()
    for tag, body in blocks:
        if tag in _FLOW_TAGS:
            return body.strip()
    return blocks[0][1].strip()


def completion_text(completion: Any) -> str:
    """The text of a TRL completion: a string, or a conversation (list of messages)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Mapping):
        return _content(completion.get("content"))
    if isinstance(completion, Sequence):
        messages = [m for m in completion if isinstance(m, Mapping)]
        replies = [m for m in messages if m.get("role", "assistant") == "assistant"]
        return "\n".join(_content(m.get("content")) for m in (replies or messages))
    raise TypeError(f"a completion is text or a list of messages, got {type(completion)!r}")


def _content(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):  # multimodal parts: [{"type": "text", "text": ...}]
        return "".join(
            str(p.get("text", "")) if isinstance(p, Mapping) else str(p) for p in content
        )
    return str(content)


class RewardRecord(BaseModel):
    """What happened to one completion: kept in `FlowReward.records`, logged, and given to TRL."""

    index: int
    status: Literal["ok", "compile_failure", "error"]
    reward: float | None
    #: rendered diagnostics of a compile failure (or the input mismatch)
    diagnostics: list[str] = Field(default_factory=list)
    instances: int = 0
    scored: int = 0
    errors: int = 0
    error: str | None = None
    flow_digest: str = ""
    #: the extracted flow text (first 4000 characters), for inspecting what the policy wrote
    flow: str = ""


class _LoopThread:
    """One long-lived event loop in a daemon thread, owning the shared resources."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="treadle-rewards")
        self.thread.daemon = True
        self.thread.start()

    def submit(self, coro: Awaitable[_T]) -> Future[_T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)  # type: ignore[arg-type]

    def stop(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)
        if not self.loop.is_running() and not self.loop.is_closed():
            self.loop.close()


class FlowReward:
    """A TRL-compatible reward function scoring generated `.flow` completions.

    `dataset`: task instances (anything `load_dataset` takes) to sample from when a row does not
    carry its own (in the column `instances_column`); `scoring`: what to score, as `evaluate`
    takes it (the first scorer is the reward); `run`: how the flows run (their model — not the
    generator being trained —, cache, sandbox, seed, time limits); `instances`: K per
    completion; `compile_failure`: the reward of a flow that does not compile; `workdir`: where
    results files go (a temporary folder by default); `name`: the column TRL logs. The keyword
    shortcuts (`scorer=`, `model=`, ...) are `evaluate`'s. Every completion of every batch runs
    in one `Session`, opened on the reward's own event loop.

    A configuration error (an unknown scorer, a bad option) raises here, at construction: it
    must never turn every completion into the compile-failure reward.
    """

    def __init__(
        self,
        dataset: DataSource | None = None,
        *,
        scoring: Scoring | None = None,
        run: RunConfig | None = None,
        instances: int = 4,
        compile_failure: float = -1.0,
        instances_column: str = "instances",
        name: str = "flow_reward",
        workdir: str | Path | None = None,
        **shortcuts: Unpack[Shortcuts],
    ) -> None:
        if instances < 1:
            raise ValueError("instances must be at least 1")
        self.scoring, _, self.run = settle(scoring, None, run, shortcuts)
        scorer_specs(self.scoring)  # an unknown scorer or a bad option raises now
        self.dataset_source = dataset
        self.instances = instances
        self.compile_failure = float(compile_failure)
        self.instances_column = instances_column
        #: TRL names a reward function's log columns after `__name__`
        self.__name__ = name
        #: the records of the last batch, one per completion
        self.records: list[RewardRecord] = []
        #: running totals over every batch: completions, compiled, errors
        self.totals: dict[str, int] = {"completions": 0, "compiled": 0, "errors": 0}
        self.workdir = Path(workdir) if workdir is not None else None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._batches = 0
        self._dataset: Any = None
        self._session: Session | None = None
        self._loop: _LoopThread | None = None
        self._lock = threading.Lock()
        atexit.register(self.close)

    # -- the TRL contract ----------------------------------------------------------------------

    def __call__(
        self,
        prompts: Sequence[Any] | None = None,
        completions: Sequence[Any] | None = None,
        completion_ids: Sequence[Any] | None = None,
        **kwargs: Any,
    ) -> list[float | None]:
        """TRL's GRPOTrainer contract: one reward (or None) per completion, in order."""
        future = self._background().submit(
            self.acall(prompts, completions, completion_ids, **kwargs)
        )
        return future.result()

    async def acall(
        self,
        prompts: Sequence[Any] | None = None,
        completions: Sequence[Any] | None = None,
        completion_ids: Sequence[Any] | None = None,
        **kwargs: Any,
    ) -> list[float | None]:
        """The batch, evaluated concurrently; runs on the reward's own loop whatever loop awaits."""
        loop = self._background().loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is not loop:
            fut = self._background().submit(
                self.acall(prompts, completions, completion_ids, **kwargs)
            )
            return await asyncio.wrap_future(fut)
        if completions is None:
            raise TypeError("FlowReward needs `completions` (TRL passes them by keyword)")
        n = len(completions)
        columns = {k: v for k, v in kwargs.items() if k not in TRL_KWARGS}
        for k, v in columns.items():
            if not isinstance(v, Sequence) or isinstance(v, str) or len(v) != n:
                raise TypeError(
                    f"dataset column {k!r} must be a list with one value per completion ({n})"
                )
        prompt_list = list(prompts) if prompts is not None else [None] * n
        if self.dataset_source is not None:
            self._load_dataset()  # a bad dataset is the caller's error: raise, not a None reward
        await self._open()
        self._batches += 1
        run = self._batch_run()
        # the batch's runs write ONE trace stream, held open until the last completion is done
        stream = (
            open_stream(trace_stream_path(run.traces)) if isinstance(run.traces, Path) else None
        )
        try:
            records = await asyncio.gather(
                *(
                    self._one(
                        i,
                        completions[i],
                        prompt_list[i] if i < len(prompt_list) else None,
                        {k: v[i] for k, v in columns.items()},
                        run,
                    )
                    for i in range(n)
                )
            )
        finally:
            if stream is not None:
                stream.close()
        self.records = list(records)
        self._log(self.records, kwargs.get("log_metric"), kwargs.get("log_extra"))
        return [r.reward for r in self.records]

    def as_async(self) -> Callable[..., Awaitable[list[float | None]]]:
        """An `async def` reward function over the same state, for TRL's async reward path."""

        async def flow_reward(
            prompts: Sequence[Any] | None = None,
            completions: Sequence[Any] | None = None,
            completion_ids: Sequence[Any] | None = None,
            **kwargs: Any,
        ) -> list[float | None]:
            return await self.acall(prompts, completions, completion_ids, **kwargs)

        flow_reward.__name__ = self.__name__
        flow_reward.__qualname__ = self.__name__
        return flow_reward

    # -- one completion ------------------------------------------------------------------------

    async def _one(
        self, index: int, completion: Any, prompt: Any, row: dict[str, Any], run: RunConfig
    ) -> RewardRecord:
        text = extract_flow(
            completion_text(completion), prompt if isinstance(prompt, str) else None
        )
        record = await self._score(index, text, prompt, row, run)
        record.flow = text[:4000]
        return record

    async def _score(
        self, index: int, text: str, prompt: Any, row: dict[str, Any], run: RunConfig
    ) -> RewardRecord:
        from treadle.flow import Flow

        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        try:
            flow = Flow.from_source(text)
        except CompileError as e:
            return self._failed(index, digest, e.diagnostics, e.message)
        except TreadleError as e:  # an import the flow names, unreadable
            return self._failed(index, digest, [], e.message)
        try:
            instances = self._instances(row, prompt)
        except TreadleError as e:
            return RewardRecord(
                index=index, status="error", reward=None, error=e.message, flow_digest=digest
            )
        results = self._workdir() / f"b{self._batches:05d}-c{index:03d}.jsonl"
        try:
            report = await evaluate(
                flow,
                instances,
                scoring=self.scoring,
                run=run,
                session=await self._open(),
                results=results,
            )
        except (InputError, CompileError) as e:
            # the flow compiles but cannot take these instances: the generator's fault
            return self._failed(index, digest, getattr(e, "diagnostics", []), e.message)
        except TreadleError as e:
            log.warning("flow reward: run error on completion %d: %s", index, e.message)
            return RewardRecord(
                index=index,
                status="error",
                reward=None,
                instances=len(instances),
                errors=len(instances),
                error=e.message,
                flow_digest=digest,
            )
        errors = int(report.errors)
        first_error = next((r.error for r in report.rows if r.status == "error"), None)
        if errors or not report.scored or report.mean is None:
            return RewardRecord(
                index=index,
                status="error",
                reward=None,
                instances=int(report.n),
                scored=int(report.scored),
                errors=errors,
                error=first_error or "no instance was scored",
                flow_digest=digest,
            )
        return RewardRecord(
            index=index,
            status="ok",
            reward=float(report.mean),
            instances=int(report.n),
            scored=int(report.scored),
            flow_digest=digest,
        )

    def _failed(
        self, index: int, digest: str, diagnostics: Sequence[Any], message: str
    ) -> RewardRecord:
        rendered = [d.render() if hasattr(d, "render") else str(d) for d in diagnostics]
        return RewardRecord(
            index=index,
            status="compile_failure",
            reward=self.compile_failure,
            diagnostics=rendered or [message],
            flow_digest=digest,
        )

    def _instances(self, row: Mapping[str, Any], prompt: Any) -> Any:
        """The K task instances for one completion (the module docstring states the order):
        a list of column dicts, or a `Dataset` of rows sampled from `dataset`."""
        carried = row.get(self.instances_column)
        if carried is not None:
            if isinstance(carried, str):
                carried = json.loads(carried)
            if isinstance(carried, Mapping):
                carried = [carried]
            return [dict(x) for x in carried]
        if self.dataset_source is None:
            if not row:
                raise TreadleError(
                    "FlowReward has no task instances: give `dataset=`, or a dataset column "
                    f"`{self.instances_column}` (or the task's own columns) to the trainer."
                )
            return [dict(row)]
        from treadle.eval.datasets import Dataset

        dataset = self._load_dataset()
        rows = list(dataset.rows)
        if self.instances >= len(rows):
            chosen = rows
        else:
            # a seed fixed per prompt: the completions of one GRPO group meet the same rows
            salt = json.dumps(prompt, sort_keys=True, default=str)
            rng = random.Random(f"{self.run.seed}:{salt}")
            chosen = rng.sample(rows, self.instances)
        return Dataset(chosen, dataset.name, target=dataset.target, input_map=dataset.input_map)

    def _load_dataset(self) -> Any:
        """The task dataset, read once (a missing or malformed file raises at the first call)."""
        if self._dataset is None:
            from treadle.eval.datasets import Dataset, load_dataset

            source = self.dataset_source
            assert source is not None  # the callers check
            self._dataset = (
                source
                if isinstance(source, Dataset)
                else load_dataset(
                    source, input_map=self.scoring.input_map, target=self.scoring.target
                )
            )
        return self._dataset

    # -- shared resources, loop, logging ------------------------------------------------------

    def _batch_run(self) -> RunConfig:
        """How this batch's flows run: in the reward's session, their traces in one stream
        for the batch (`bNNNNN-traces/`) unless `run.traces` says otherwise."""
        run = self.run.without_resources()
        if run.traces is None or run.traces is True:
            run = run.with_(traces=self._workdir() / f"b{self._batches:05d}-traces")
        return run

    def _workdir(self) -> Path:
        """Where each completion's results file and traces go (a temporary directory unless
        `workdir=` keeps them)."""
        if self.workdir is not None:
            self.workdir.mkdir(parents=True, exist_ok=True)
            return self.workdir
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="treadle-rewards-")
        return Path(self._tmp.name)

    def __getstate__(self) -> dict[str, Any]:
        """Settings only: a copy (another process, a pickled trainer) opens its own resources."""
        state = dict(self.__dict__)
        for key in ("_loop", "_lock", "_tmp", "_dataset", "_session"):
            state[key] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def _background(self) -> _LoopThread:
        with self._lock:
            if self._loop is None:
                self._loop = _LoopThread()
            return self._loop

    async def _open(self) -> Session:
        """The reward's one session, opened on its own loop at the first batch."""
        if self._session is None:
            self._session = self.run.session(name=f"reward-{self.__name__}")
        return self._session

    async def _aclose(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.aclose()

    def close(self) -> None:
        """Release the shared resources (model backends, sandbox pool) and the loop thread."""
        loop = self._loop
        if loop is None:
            return
        try:
            if loop.loop.is_running():
                loop.submit(self._aclose()).result(timeout=60)
        finally:
            loop.stop()
            self._loop = None
            if self._tmp is not None:
                self._tmp.cleanup()
                self._tmp = None

    def __enter__(self) -> FlowReward:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def metrics(self, records: Sequence[RewardRecord] | None = None) -> dict[str, float]:
        """Batch metrics: compile rate, mean diagnostics per completion, run errors, reward."""
        recs = list(self.records if records is None else records)
        if not recs:
            return {}
        n = len(recs)
        rewards = [r.reward for r in recs if r.status == "ok" and r.reward is not None]
        return {
            "compile_rate": sum(r.status != "compile_failure" for r in recs) / n,
            "mean_diagnostics": sum(
                len(r.diagnostics) for r in recs if r.status == "compile_failure"
            )
            / n,
            "run_errors": float(sum(r.status == "error" for r in recs)),
            "run_score": sum(rewards) / len(rewards) if rewards else 0.0,
        }

    def _log(self, records: Sequence[RewardRecord], log_metric: Any, log_extra: Any) -> None:
        self.totals["completions"] += len(records)
        self.totals["compiled"] += sum(r.status != "compile_failure" for r in records)
        self.totals["errors"] += sum(r.status == "error" for r in records)
        metrics = self.metrics(records)
        log.info("flow reward batch: %s", metrics)
        for r in records:
            if r.status == "compile_failure":
                log.info(
                    "flow reward: completion %d does not compile:\n%s",
                    r.index,
                    "\n".join(r.diagnostics),
                )
            elif r.status == "error":
                log.warning(
                    "flow reward: completion %d: infrastructure error: %s", r.index, r.error
                )
        if callable(log_metric):
            for k, v in metrics.items():
                log_metric(f"{self.__name__}/{k}", v)
        if callable(log_extra):
            log_extra(f"{self.__name__}/status", [r.status for r in records])
            log_extra(
                f"{self.__name__}/diagnostics",
                ["\n".join(r.diagnostics[:3]) for r in records],
            )


# -- other trainers' contracts -------------------------------------------------------------------


class RewardUnavailable(TreadleError):
    """An infrastructure error where the trainer cannot mask a missing reward."""

    exit_code = 3


def verl_compute_score(
    reward: FlowReward, *, on_error: float | None = None
) -> Callable[..., dict[str, Any]]:
    """verl's `compute_score(data_source, solution_str, ground_truth, extra_info=None)`.

    `extra_info` may carry the row's `instances` (or the task's columns); `ground_truth` is the
    instance target when the instances come from the row itself. verl cannot mask a reward, so
    an infrastructure error raises `RewardUnavailable` unless `on_error` gives a value.
    """

    def compute_score(
        data_source: Any,
        solution_str: str,
        ground_truth: Any = None,
        extra_info: Mapping[str, Any] | None = None,
        **_: Any,
    ) -> dict[str, Any]:
        columns = {k: [v] for k, v in dict(extra_info or {}).items() if k not in TRL_KWARGS}
        if ground_truth is not None and reward.instances_column not in columns:
            columns.setdefault("target", [ground_truth])
        value = reward(prompts=[data_source], completions=[solution_str], **columns)[0]
        record = reward.records[0]
        if value is None:
            if on_error is None:
                raise RewardUnavailable(
                    f"The flow reward could not be computed: {record.error}. verl cannot mask a "
                    "missing reward; pass on_error=VALUE to substitute one."
                )
            value = on_error
        return {
            "score": float(value),
            "compiled": record.status != "compile_failure",
            "run_error": record.status == "error",
        }

    return compute_score


def openrlhf_reward_func(
    reward: FlowReward, *, on_error: float | None = None
) -> Callable[..., dict[str, Any]]:
    """OpenRLHF's remote reward `reward_func(queries, prompts, labels)`.

    A query is prompt + response; the completion is the query past its prompt. Returns the dict
    OpenRLHF reads (`rewards`, `scores`, `extra_logs`), tensors when torch is installed. Like
    verl it cannot mask, so an infrastructure error raises unless `on_error` gives a value.
    """

    def reward_func(
        queries: Sequence[str], prompts: Sequence[str], labels: Sequence[Any] | None = None
    ) -> dict[str, Any]:
        completions = [
            q[len(p) :] if q.startswith(p) else q for q, p in zip(queries, prompts, strict=True)
        ]
        columns: dict[str, list[Any]] = {}
        if labels is not None:
            parsed = [_maybe_json(x) for x in labels]
            if all(isinstance(x, list | dict) for x in parsed):
                columns[reward.instances_column] = parsed
            else:
                columns["target"] = list(labels)
        values = reward(prompts=list(prompts), completions=completions, **columns)
        missing = [i for i, v in enumerate(values) if v is None]
        if missing and on_error is None:
            raise RewardUnavailable(
                f"The flow reward could not be computed for {len(missing)} completion(s): "
                f"{reward.records[missing[0]].error}. OpenRLHF cannot mask a missing reward; "
                "pass on_error=VALUE to substitute one."
            )
        filled = [float(v) if v is not None else float(on_error or 0.0) for v in values]
        metrics = reward.metrics()
        extra = {k: [v] * len(filled) for k, v in metrics.items()}
        out: dict[str, Any] = {"rewards": filled, "scores": filled, "extra_logs": extra}
        try:
            import torch
        except ImportError:
            return out
        tensor = torch.tensor(filled, dtype=torch.float32)
        out["rewards"] = tensor
        out["scores"] = tensor.clone()
        out["extra_logs"] = {k: torch.tensor(v) for k, v in extra.items()}
        return out

    return reward_func


def _maybe_json(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


__all__ = [
    "FlowReward",
    "RewardRecord",
    "RewardUnavailable",
    "completion_text",
    "extract_flow",
    "openrlhf_reward_func",
    "verl_compute_score",
]
