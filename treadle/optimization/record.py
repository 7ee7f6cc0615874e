"""The search's record on disk, written after every step so a killed search loses at most the
round it was in (and `--resume` redoes that round: the model cache makes the replay free).

    DIR/identity.json        what the search is about (seeds, dataset, scorers, seed, settings)
    DIR/state.json           every node so far and the budget spent (atomic: tmp + rename)
    DIR/experience.jsonl     one line per round: parent, move, outcome (labelled by the test)
    DIR/rounds/NNN/          child.flow, proposal.json, results.jsonl, report.json, node.json
    DIR/best.flow, DIR/result.json (portfolio, test scores, coverage, Pareto front, lineage)
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import BaseModel, Field

from treadle.errors import InputError
from treadle.optimization.budget import Spent

STATE_VERSION = 1

Status = Literal["seed", "accepted", "rejected", "screened-out", "incomplete"]


class Comparison(BaseModel):
    """The child against its parent on their common validation rows."""

    rows: int
    diff: float | None
    ci_low: float | None
    ci_high: float | None
    verdict: str


class Node(BaseModel):
    """One flow the search evaluated: a seed or a round's child."""

    id: int
    round: int
    parent: int | None = None
    #: "seed", "model", or a deterministic move's name
    move: str = "seed"
    path: str
    ir_hash: str
    #: the static bound of model calls one row costs (sandbox runs beside)
    cost_calls: int = 0
    status: Status = "seed"
    #: the mean over the whole validation split (None: not run in full)
    val: float | None = None
    val_rows: int = 0
    #: the calibrated surrogate Ŝ and its parts (rounds after the warm-up)
    surrogate: float | None = None
    s_pred: float | None = None
    s_few: float | None = None
    alpha: float | None = None
    #: executor tokens this flow's validation runs cost, and per row
    tokens: int = 0
    tokens_per_row: float = 0.0
    comparison: Comparison | None = None
    #: per-row validation scores (row id → score), for pairing, strata and the Pareto parents
    scores: dict[str, float] = Field(default_factory=dict)
    test: float | None = None
    leaks: list[str] = Field(default_factory=list)


class State(BaseModel):
    version: int = STATE_VERSION
    #: the last round whose every step is on disk
    round: int = -1
    nodes: list[Node] = Field(default_factory=list)
    spent: Spent = Field(default_factory=Spent)
    seconds: float = 0.0
    #: IR hashes of every flow proposed so far (valid or not), for de-duplication
    seen: list[str] = Field(default_factory=list)
    invalid_proposals: int = 0
    #: rounds that ended without a valid child (the budget aside)
    wasted_rounds: int = 0
    #: the top-3 mean of the frontier after each round
    top3: list[float] = Field(default_factory=list)
    stopped: str | None = None
    #: a round found no valid, new change for any flow
    converged: bool = False
    done: bool = False

    def node(self, node_id: int) -> Node:
        return next(n for n in self.nodes if n.id == node_id)


class Experience(BaseModel):
    """A round as the optimizer reads it later: what was tried on which parent, and what came
    of it, judged by the paired test (AFlow #17 labelled a success as a failure)."""

    round: int
    parent: int | None
    child: int | None
    move: str
    summary: str
    before: float | None
    after: float | None
    outcome: Literal[
        "better", "worse", "no significant change", "invalid", "screened out", "incomplete"
    ]


def write_json(path: Path, data: Any) -> None:
    """Write atomically: a kill leaves the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    payload = data.model_dump(mode="json") if isinstance(data, BaseModel) else data
    with tmp.open("wb") as f:
        f.write(orjson.dumps(payload, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class Record:
    """The directory of one search."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def round_dir(self, r: int) -> Path:
        return self.root / "rounds" / f"{r:03d}"

    @property
    def state_path(self) -> Path:
        return self.root / "state.json"

    def save(self, state: State) -> None:
        write_json(self.state_path, state)

    def load(self) -> State:
        if not self.state_path.is_file():
            raise InputError(f"--resume {self.root}: there is no search there (no state.json).")
        return State.model_validate(orjson.loads(self.state_path.read_bytes()))

    def start(self, identity: dict[str, Any]) -> None:
        if self.state_path.exists():
            raise InputError(
                f"--out {self.root} already holds a search; continue it with --resume {self.root} "
                "or choose another directory."
            )
        write_json(self.root / "identity.json", identity)

    def check_identity(self, identity: dict[str, Any]) -> None:
        """Refuse to resume with another seed flow, dataset, scorer, seed or settings."""
        before = orjson.loads((self.root / "identity.json").read_bytes())
        for key, value in identity.items():
            if orjson.loads(orjson.dumps(value, default=str)) != before.get(key):
                raise InputError(
                    f"--resume {self.root}: that search was made with a different {key} "
                    f"({before.get(key)!r}, now {value!r}); resuming would mix two searches. "
                    "Start a new one with --out."
                )

    def clear_after(self, r: int) -> None:
        """Forget rounds after `r` (an unfinished round is redone from its start)."""
        rounds = self.root / "rounds"
        if rounds.is_dir():
            for d in rounds.iterdir():
                if d.is_dir() and d.name.isdigit() and int(d.name) > r:
                    shutil.rmtree(d)
        exp = self.root / "experience.jsonl"
        if exp.is_file():
            kept = [
                ln
                for ln in exp.read_bytes().splitlines()
                if ln.strip() and orjson.loads(ln)["round"] <= r
            ]
            tmp = exp.with_name(exp.name + ".tmp")
            tmp.write_bytes(b"".join(ln + b"\n" for ln in kept))
            os.replace(tmp, exp)

    def add_experience(self, item: Experience) -> None:
        with (self.root / "experience.jsonl").open("ab") as f:
            f.write(orjson.dumps(item.model_dump(mode="json")) + b"\n")
            f.flush()
            os.fsync(f.fileno())

    def experience(self) -> list[Experience]:
        exp = self.root / "experience.jsonl"
        if not exp.is_file():
            return []
        lines = [ln for ln in exp.read_bytes().splitlines() if ln.strip()]
        return [Experience.model_validate(orjson.loads(ln)) for ln in lines]


__all__ = ["Comparison", "Experience", "Node", "Record", "State", "write_json"]
