"""A search killed with SIGKILL mid-round and resumed ends in the same state as one that ran
through: the same best flow, the same nodes, scores, budget and experience (a scripted model;
each run in its own process, as a crash would leave it)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson

SCRIPT = Path(__file__).with_name("run_search.py")
ENV = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}


def _search(out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), str(out), *args],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=300,
    )


def _state(root: Path) -> dict[str, Any]:
    text = (root / "record" / "state.json").read_text().replace(str(root), "ROOT")
    state = orjson.loads(text)
    state.pop("seconds")
    return state


def test_sigkill_mid_round_then_resume_ends_as_an_uninterrupted_run(tmp_path: Path) -> None:
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    done = _search(whole, "0")
    assert done.returncode == 0, done.stderr

    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), str(killed), "0", "--delay", "0.02"],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    state_path = killed / "record" / "state.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if state_path.is_file() and orjson.loads(state_path.read_bytes())["round"] >= 2:
            break
        time.sleep(0.02)
    time.sleep(0.15)  # into the next round's evaluation
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    interrupted = orjson.loads(state_path.read_bytes())
    assert not interrupted["done"] and interrupted["round"] < 5

    refused = _search(killed, "1", "--resume")
    assert refused.returncode != 0 and "different seed" in refused.stderr

    resumed = _search(killed, "0", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert (killed / "record" / "best.flow").read_text() == (
        whole / "record" / "best.flow"
    ).read_text()
    assert _state(killed) == _state(whole)
    exp = [(r / "record" / "experience.jsonl").read_text() for r in (killed, whole)]
    assert exp[0] == exp[1]
    a, b = (
        orjson.loads(r.stdout.replace(str(root), "ROOT"))
        for r, root in ((resumed, killed), (done, whole))
    )
    for key in ("best_val", "best_test", "portfolio", "lineage", "spent", "pareto"):
        assert a[key] == b[key], key
