"""FlowReward: the fenced-block rule, the reward rules, and TRL's own reward-calling code.

The flows' model is scripted, so every reward here is exact. `GRPOTrainer._calculate_rewards`
(TRL's method that calls reward functions) is driven on a minimal trainer object: the same
kwargs, the same None → NaN masking, the same async path on a daemon loop.
"""

from __future__ import annotations

import math
import types
from pathlib import Path
from typing import Any

import pytest

from treadle.errors import ModelError
from treadle.eval.options import RunConfig
from treadle.runtime.models.scripted import ScriptedBackend
from treadle.runtime.session import SandboxConfig
from treadle.train.rewards import (
    FlowReward,
    RewardUnavailable,
    completion_text,
    extract_flow,
    openrlhf_reward_func,
    verl_compute_score,
)

GOOD = """workflow solve(problem: text) -> answer: number
  reply = generate from "{problem}"
  answer = extract number from reply
end"""

# compiles, but takes an input no task instance has
MISFIT = """workflow solve(question: text) -> answer: number
  reply = generate from "{question}"
  answer = extract number from reply
end"""

BROKEN = """workflow solve(problem: text) -> answer: number
  reply = generat from "{problem}"
end"""

ROWS = [
    {"id": "a", "problem": "What is 2 + 3?", "answer": 5},
    {"id": "b", "problem": "What is 4 + 4?", "answer": 8},
    {"id": "c", "problem": "What is 10 - 7?", "answer": 3},
    {"id": "d", "problem": "What is 6 * 2?", "answer": 12},
]

#: the sandbox of the reward tests: no Docker needed
PROCESS = SandboxConfig("process")
#: the flows' model: right on a, b and c, wrong on d
ANSWERS = {"2 + 3": "5", "4 + 4": "8", "10 - 7": "3", "6 * 2": "13"}


def fenced(body: str, tag: str = "flow") -> str:
    return f"Here is the workflow:\n```{tag}\n{body}\n```\nIt votes."


@pytest.fixture
def reward(tmp_path: Path) -> Any:
    r = FlowReward(
        dataset=ROWS,
        scorer="numeric",
        run=RunConfig(model=ScriptedBackend(ANSWERS), sandbox=PROCESS, cache=False),
        instances=10,  # ≥ the dataset: every row
        workdir=tmp_path / "runs",
    )
    yield r
    r.close()


# ---------------------------------------------------------------- the fenced-block rule


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('  workflow w() -> x: text\n  x = "a"\nend\n', 'workflow w() -> x: text\n  x = "a"\nend'),
        ("```\nA\n```", "A"),
        ("text\n```python\nP\n```\n```flow\nF\n```", "F"),  # a `flow` tag wins
        ("```treadle\nT\n```", "T"),
        ("```python\nP\n```\n```js\nJ\n```", "P"),  # else the first block
        ("prose\n```flow\nF cut at the token limit", "F cut at the token limit"),
        ("~~~flow\nF\n~~~", "F"),
        ("````flow\nhas ``` inside\n````", "has ``` inside"),
    ],
)
def test_extract_flow(text: str, expected: str) -> None:
    assert extract_flow(text) == expected


def test_completion_text_plain_and_conversational() -> None:
    assert completion_text("abc") == "abc"
    assert completion_text([{"role": "assistant", "content": "abc"}]) == "abc"
    parts = [{"role": "assistant", "content": [{"type": "text", "text": "a"}, {"text": "b"}]}]
    assert completion_text(parts) == "ab"


# ---------------------------------------------------------------- the reward rules


def test_rewards_compile_failure_mismatch_and_scores(reward: Any) -> None:
    completions = [fenced(GOOD), BROKEN, fenced(MISFIT), GOOD]
    out = reward(prompts=["p"] * 4, completions=completions, completion_ids=[[1]] * 4)
    assert out == [0.75, -1.0, -1.0, 0.75]  # 3 of 4 instances right
    statuses = [r.status for r in reward.records]
    assert statuses == ["ok", "compile_failure", "compile_failure", "ok"]
    broken = reward.records[1]
    assert any("generat" in d and "error[" in d for d in broken.diagnostics), broken.diagnostics
    assert "problem" in " ".join(reward.records[2].diagnostics)
    assert reward.records[0].instances == 4 and reward.records[0].scored == 4


def test_infrastructure_error_is_none_not_zero(tmp_path: Path) -> None:
    down = ScriptedBackend(lambda _m: (_ for _ in ()).throw(ModelError("server down")))
    with FlowReward(
        dataset=ROWS, scorer="numeric", workdir=tmp_path,
        run=RunConfig(model=down, sandbox=PROCESS, cache=False),
    ) as r:  # fmt: skip
        out = r(prompts=["p", "p"], completions=[GOOD, BROKEN])
        assert out == [None, -1.0]
        assert r.records[0].status == "error" and "server down" in (r.records[0].error or "")
        with pytest.raises(RewardUnavailable):
            verl_compute_score(r)("arith", GOOD)
        assert verl_compute_score(r, on_error=0.5)("arith", GOOD)["score"] == 0.5


def test_instances_from_the_row_and_sampled_with_a_fixed_seed(tmp_path: Path) -> None:
    with FlowReward(
        dataset=ROWS, scorer="numeric", instances=2, workdir=tmp_path,
        run=RunConfig(model=ScriptedBackend(ANSWERS), sandbox=PROCESS, cache=False),
    ) as r:  # fmt: skip
        # the row carries its own instances: only d, which the model gets wrong
        out = r(prompts=["p"], completions=[GOOD], instances=[[ROWS[3]]])
        assert out == [0.0]
        # sampled: 2 rows, the same for the same prompt, every call
        first = r(prompts=["q"] * 3, completions=[GOOD] * 3)
        assert len(set(first)) == 1 and r.records[0].instances == 2
        assert r(prompts=["q"], completions=[GOOD]) == first[:1]
    with FlowReward(
        scorer="numeric", workdir=tmp_path,
        run=RunConfig(model=ScriptedBackend(ANSWERS), sandbox=PROCESS, cache=False),
    ) as r:  # fmt: skip
        # no dataset: the row's own columns are the one instance
        out = r(prompts=["p", "p"], completions=[GOOD, GOOD], problem=[ROWS[0]["problem"],
                ROWS[3]["problem"]], answer=[5, 12])  # fmt: skip
        assert out == [1.0, 0.0]


def test_resources_are_shared_across_calls(reward: Any) -> None:
    reward(prompts=["p"], completions=[GOOD])
    first = reward._session
    reward(prompts=["p"], completions=[GOOD])
    assert reward._session is first and not first.closed
    backend = first.default_model
    assert len(backend.calls) == 8  # 4 instances × 2 calls, one backend


def test_openrlhf_adapter(reward: Any) -> None:
    fn = openrlhf_reward_func(reward)
    out = fn(["P:" + GOOD, "P:" + BROKEN], ["P:", "P:"], None)
    assert [round(float(x), 4) for x in out["rewards"]] == [0.75, -1.0]
    assert float(out["extra_logs"]["compile_rate"][0]) == 0.5


# ---------------------------------------------------------------- TRL's own call


def _trainer_stub(reward_funcs: list[Any]) -> Any:
    """The attributes `GRPOTrainer._calculate_rewards` reads, on a plain object."""
    from collections import defaultdict

    import torch
    from accelerate import PartialState
    from transformers import TrainerState
    from trl import GRPOTrainer
    from trl.trainer.utils import get_callable_name, is_async_callable

    PartialState(cpu=True)  # what the trainer's Accelerator sets up (TRL's logger needs it)
    stub = types.SimpleNamespace()
    stub.accelerator = types.SimpleNamespace(device=torch.device("cpu"), is_main_process=True)
    stub.args = types.SimpleNamespace(report_to=[])
    stub.state = TrainerState()
    stub.reward_funcs = reward_funcs
    stub.reward_processing_classes = [None] * len(reward_funcs)
    stub.reward_func_names = [get_callable_name(f) for f in reward_funcs]
    stub.environments = None
    stub.chat_template_kwargs = {}
    stub._pending_extra_logs = defaultdict(list)
    stub._pending_metrics = defaultdict(list)
    stub._log_completion_extra = types.MethodType(GRPOTrainer._log_completion_extra, stub)
    stub._log_metric = types.MethodType(GRPOTrainer._log_metric, stub)
    if any(is_async_callable(f) for f in reward_funcs):
        from trl.trainer.utils import start_event_loop_in_daemon

        stub.async_loop_thread, stub.async_loop, ready = start_event_loop_in_daemon(name="t")
        ready.wait()
    return stub


@pytest.mark.slow  # importing torch + TRL takes 20-40 s on a loaded 2-core machine
@pytest.mark.train
@pytest.mark.parametrize("path", ["sync", "async"])
def test_trl_calculate_rewards_calls_it_and_masks_none(path: str, tmp_path: Path) -> None:
    from trl import GRPOTrainer
    from trl.trainer.utils import is_async_callable

    def answers(messages: Any) -> str:
        text = messages[-1].content
        if "6 * 2" in text:
            raise ModelError("server down")
        return next(v for k, v in ANSWERS.items() if k in text)

    with FlowReward(
        scorer="numeric", workdir=tmp_path,
        run=RunConfig(model=ScriptedBackend(answers), sandbox=PROCESS, cache=False),
    ) as r:  # fmt: skip
        func = r if path == "sync" else r.as_async()
        assert is_async_callable(func) == (path == "async")
        stub = _trainer_stub([func])
        # a conversational batch, as TRL builds it: the dataset's columns ride in `inputs`
        prompts = [[{"role": "user", "content": "Write a flow."}]] * 3
        completions = [
            [{"role": "assistant", "content": fenced(GOOD)}],
            [{"role": "assistant", "content": BROKEN}],
            [{"role": "assistant", "content": GOOD}],
        ]
        inputs = [
            {"prompt": prompts[0], "problem": ROWS[0]["problem"], "answer": 5},
            {"prompt": prompts[1], "problem": ROWS[1]["problem"], "answer": 8},
            {"prompt": prompts[2], "problem": ROWS[3]["problem"], "answer": 12},
        ]
        out = GRPOTrainer._calculate_rewards(stub, inputs, prompts, completions, [[1], [2], [3]])
        values = out[:, 0].tolist()
        assert values[:2] == [1.0, -1.0]
        assert math.isnan(values[2])  # the infrastructure error: None, masked by TRL as NaN
        name = r.__name__
        assert stub._pending_metrics[f"{name}/compile_rate"] == [pytest.approx(2 / 3)]
        assert stub._pending_metrics[f"{name}/run_errors"] == [1.0]
        assert stub._pending_extra_logs[f"{name}/status"] == ["ok", "compile_failure", "error"]
        diags = stub._pending_extra_logs[f"{name}/diagnostics"]
        assert diags[0] == "" and "generat" in diags[1]
        if path == "async":
            stub.async_loop.call_soon_threadsafe(stub.async_loop.stop)


def test_a_prompt_that_opens_the_fence_primes_the_flow() -> None:
    prompt = "Write the workflow.\n```flow\nworkflow solve(problem: text) -> answer: number\n"
    completion = "  answer = extract number from problem\nend\n```\nDone."
    assert extract_flow(completion, prompt) == (
        "workflow solve(problem: text) -> answer: number\n"
        "  answer = extract number from problem\nend"
    )
    closed = "Example:\n```flow\nX\n```\nNow yours:\n"
    assert extract_flow("```flow\nY\n```", closed) == "Y"  # a closed fence primes nothing


def test_verl_adapter(reward: Any) -> None:
    score = verl_compute_score(reward)
    assert score("arith", fenced(GOOD), None, {}) == {
        "score": 0.75,
        "compiled": True,
        "run_error": False,
    }
    # the instances ride in extra_info: only row d, which the flows' model gets wrong
    assert score("arith", GOOD, None, {"instances": [ROWS[3]]})["score"] == 0.0
    assert score("arith", BROKEN)["score"] == -1.0
