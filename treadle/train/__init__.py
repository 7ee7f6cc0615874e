"""Training workflow generators: reward functions over the row runner, SFT data export, and the
transformers model loader. `treadle.rewards` is the public alias of `treadle.train.rewards`.

Training sits beside generation and may use its prompts (an SFT pair is a generation prompt and
the flow it should produce); generation never imports training.
"""

from __future__ import annotations

from treadle.train.rewards import FlowReward, RewardRecord, RewardUnavailable

__all__ = ["FlowReward", "RewardRecord", "RewardUnavailable"]
