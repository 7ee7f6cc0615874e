"""SFT export: chat records whose system and user turns are exactly the generator's prompt,
the assistant turn the canonical flow; only compiling flows. Then TRL's SFTTrainer fine-tunes
SmolLM2 (loaded by treadle.train.hf_model) for 2 steps on such a file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from treadle.generation.decoding.vocabulary import vocabulary
from treadle.generation.example_bank import EXAMPLES
from treadle.generation.prompt import messages as build
from treadle.generation.selection import select_examples
from treadle.train.sft import export_sft

BROKEN = "workflow w(x: text) -> y: text\n  y = nosuchop x\nend\n"


def test_records_are_the_generators_prompt(tmp_path: Path) -> None:
    out = tmp_path / "sft.jsonl"
    pairs = [(e.task, e.flow) for e in EXAMPLES[:3]] + [("broken", BROKEN)]
    assert export_sft(out, pairs) == 3
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    task = EXAMPLES[0].task
    want = build(task, vocabulary(), [], select_examples(task))
    turns = rows[0]["messages"]
    assert [t["role"] for t in turns] == ["system", "user", "assistant"]
    assert turns[0]["content"] == want[0].content and turns[1]["content"] == want[1].content
    assert turns[2]["content"] == EXAMPLES[0].flow


@pytest.mark.timeout(1200)  # a real trainer on 2 shared cores: its own budget
@pytest.mark.slow
@pytest.mark.train
def test_sft_trainer_two_steps(tmp_path: Path) -> None:
    import torch
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from treadle.train.hf_model import load_smollm2_for_training

    out = tmp_path / "sft.jsonl"
    export_sft(out, [(e.task, e.flow) for e in EXAMPLES[:4]])
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    model, tokenizer = load_smollm2_for_training()
    before = {k: v.detach().clone() for k, v in model.named_parameters() if v.requires_grad}
    config = SFTConfig(
        output_dir=str(tmp_path / "run"),
        max_steps=2,
        per_device_train_batch_size=1,
        learning_rate=1e-4,
        max_length=2048,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
    )
    trainer = SFTTrainer(
        model=model,
        args=config,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
    )
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(x)) for x in losses)
    changed = sum(
        not torch.equal(before[k], v.detach()) for k, v in model.named_parameters() if k in before
    )
    assert changed > 0
