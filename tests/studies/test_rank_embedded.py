"""End to end on the real embedded model (SmolLM2-135M): `treadle rank --verify` over the
shipped QA dataset, few rows and short flows, and `treadle attribute` on one short flow."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest
from cli_runner import treadle as run_treadle

#: the subprocesses get their own budgets; the global pytest timeout must not cut them
pytestmark = [pytest.mark.timeout(1300), pytest.mark.slow, pytest.mark.model]

ROOT = Path(__file__).resolve().parents[2]
QA = ROOT / "examples" / "data" / "qa.jsonl"
VARIANTS = ROOT / "examples" / "variants"


#: `treadle ARGS` in a fresh process, with this file's time budget
treadle = functools.partial(run_treadle, timeout=1200)


def test_rank_verify_on_the_embedded_model(tmp_path: Path) -> None:
    flows = [str(VARIANTS / n) for n in ("qa_short.flow", "qa_quiz.flow", "qa_direct.flow")]
    out = treadle(
        "rank", *flows, str(QA), "--scorer", "contains", "--limit", "4", "--warmup", "1",
        "--min-rows", "2", "--verify", "--report", "rank.json", "--progress", "plain",
        cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    data = json.loads((tmp_path / "rank.json").read_text())
    assert len(data["flows"]) == 3 and data["tokens_full_measured"]
    assert data["tokens_spent"] > 0 and data["tokens_full"] > 0
    for f in data["flows"]:
        assert f["rank"] in (1, 2, 3) and 0 <= f["score"] <= 1 and 0 <= f["full"] <= 1
        if f["warmup"]:
            continue
        assert len(data["few_ids"]) == 2 and 0 <= f["s_few"] <= 1
        # the model's self-prediction is a probability, or an error that says so: never 0.5
        # in silence
        assert (f["s_pred"] is not None and 0 <= f["s_pred"] <= 1 and f["error"] is None) or (
            f["s_pred"] is None and "unreadable" in f["error"] and f["alpha"] == 1.0
        )
    assert "mae" in data and data["mae"] is not None
    assert "Spearman" in out.stdout


def test_attribute_on_the_embedded_model(tmp_path: Path) -> None:
    out = treadle(
        "attribute", str(VARIANTS / "qa_revise.flow"), str(QA), "--scorer", "contains",
        "--limit", "3", "--report", "attr.json", "--progress", "plain", cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    data = json.loads((tmp_path / "attr.json").read_text())
    answer = next(u for u in data["units"] if u["unit"] == "qa.answer")
    assert answer["removable"] and answer["effect"] is not None and answer["rows"] == 3
    # the draft is a cache hit when revise is removed: one call per row is saved at least
    assert data["model_calls"] <= data["model_calls_naive"] - 3
