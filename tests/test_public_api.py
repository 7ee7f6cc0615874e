"""The public names of `treadle` resolve to the layers that implement them."""

from __future__ import annotations

import subprocess
import sys

import treadle


def test_every_public_name_resolves() -> None:
    assert set(treadle.__all__) == {*treadle._LAZY, "__version__"}
    for name in treadle.__all__:
        assert getattr(treadle, name) is not None, name
    assert treadle.evaluate.__module__ == "treadle.eval.evaluate"
    assert treadle.rewards.FlowReward.__module__ == "treadle.train.rewards"


def test_rewards_is_an_importable_module() -> None:
    from treadle.rewards import FlowReward, openrlhf_reward_func, verl_compute_score

    assert callable(FlowReward) and callable(verl_compute_score) and callable(openrlhf_reward_func)


def test_import_treadle_stays_cheap() -> None:
    code = "import sys, treadle; print(sorted(m for m in sys.modules if m.startswith('treadle')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    # the package and its version, nothing of the pipeline
    assert out.stdout.strip() == "['treadle', 'treadle.version']"
