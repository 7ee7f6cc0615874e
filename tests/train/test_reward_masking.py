"""A reward of None is masked by TRL's own advantage computation, not turned into a fake 0
(issue 16, item 7): the pinned TRL range (`trl>=1.6,<2`) is the one whose GRPO leaves a
completion every reward function scored None out of its group's baseline and gives it no
advantage. Run through a real GRPOTrainer step on SmolLM2 (CPU), with the trainer's advantages
read where TRL computes them; a FlowReward whose flows' model fails gives None, never 0."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.train, pytest.mark.model]

#: per group of 4 completions: one unscorable, three scored; then a group with no score at all
REWARDS: list[float | None] = [None, 1.0, 0.0, 1.0, None, None, None, None]


def _trainer(tmp_path: Path, reward: Any) -> Any:
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from treadle.train.hf_model import load_smollm2_for_training

    model, tokenizer = load_smollm2_for_training()
    config = GRPOConfig(
        output_dir=str(tmp_path / "run"), max_steps=1, per_device_train_batch_size=8,
        num_generations=4, max_completion_length=4, learning_rate=1e-6, logging_steps=1,
        save_strategy="no", report_to="none", use_cpu=True, bf16=False, seed=0,
    )  # fmt: skip
    data = Dataset.from_list([{"prompt": "Write a flow."}, {"prompt": "Write another flow."}])

    class Recording(GRPOTrainer):  # type: ignore[misc]
        seen: ClassVar[list[Any]] = []

        def _generate_and_score_completions(self, inputs: Any) -> Any:
            out = super()._generate_and_score_completions(inputs)
            self.seen.append(out["advantages"].detach().clone())
            return out

    return Recording(
        model=model, reward_funcs=[reward], args=config, train_dataset=data,
        processing_class=tokenizer,
    )  # fmt: skip


def test_a_none_reward_is_left_out_of_the_group_baseline(tmp_path: Path) -> None:
    import torch
    import trl

    major, minor = (int(x) for x in trl.__version__.split(".")[:2])
    assert (1, 6) <= (major, minor) < (2, 0), trl.__version__

    returned: list[float | None] = []

    def reward(prompts: Any = None, completions: Any = None, **_: Any) -> list[float | None]:
        # each prompt's group gets its script in order (whatever order the groups come in)
        by_prompt = {"Write a flow.": REWARDS[:4], "Write another flow.": REWARDS[4:]}
        counters: dict[str, int] = {}
        out = []
        for p in prompts:
            text = p if isinstance(p, str) else p[-1]["content"]
            i = counters.get(text, 0)
            counters[text] = i + 1
            out.append(by_prompt[text][i])
        returned.extend(out)
        return out

    trainer = _trainer(tmp_path, reward)
    trainer.train()
    advantages = torch.cat(trainer.seen)
    assert advantages.numel() == len(returned) == 8 and not torch.isnan(advantages).any()
    by_reward: dict[float | None, list[float]] = {}
    for r, a in zip(returned, advantages.tolist(), strict=True):
        by_reward.setdefault(r, []).append(a)
    # the unscorable completions move nothing, and the scored ones are judged among themselves
    assert by_reward[None] == [0.0] * 5
    scored = by_reward[1.0] + by_reward[0.0]
    assert abs(sum(scored)) < 1e-4  # mean over the three scored only (a fake 0 would shift it)
    assert all(a > 0 for a in by_reward[1.0]) and all(a < 0 for a in by_reward[0.0])


def test_flow_reward_gives_none_for_an_infrastructure_error_not_a_zero(tmp_path: Path) -> None:
    from treadle.eval.options import RunConfig
    from treadle.runtime.models.scripted import ScriptedBackend
    from treadle.runtime.session import SandboxConfig
    from treadle.train.rewards import FlowReward

    def down(_messages: Any) -> str:
        from treadle.errors import ModelError

        raise ModelError("the flows' model server is down")

    flow = (
        "```flow\nworkflow solve(problem: text) -> answer: number\n"
        '  text = generate from "{problem}"\n  answer = extract number from text\nend\n```'
    )
    reward = FlowReward(
        [{"problem": "1+1", "answer": 2}], scorer="numeric", instances=1,
        run=RunConfig(model=ScriptedBackend(down), cache=False, sandbox=SandboxConfig("process"),
                      retries=0),
        workdir=tmp_path / "w",
    )  # fmt: skip
    try:
        assert reward(prompts=["p", "p"], completions=[flow, "not a flow"]) == [None, -1.0]
        assert reward.records[0].status == "error" and "down" in (reward.records[0].error or "")
    finally:
        reward.close()
