"""`treadle.rewards`: reward functions for RL training of workflow generators (TRL's GRPOTrainer,
verl, OpenRLHF). The public face of `treadle.train.rewards`; see docs/rewards.md."""

from treadle.train.rewards import (
    FlowReward,
    RewardRecord,
    RewardUnavailable,
    completion_text,
    extract_flow,
    openrlhf_reward_func,
    verl_compute_score,
)

__all__ = [
    "FlowReward",
    "RewardRecord",
    "RewardUnavailable",
    "completion_text",
    "extract_flow",
    "openrlhf_reward_func",
    "verl_compute_score",
]
