"""A search on the simulated task in its own process (the SIGKILL test kills it mid-round):
`python run_search.py OUT SEED [--resume] [--delay S]`; prints the result as JSON."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import simulated_task as sim

from treadle.eval.options import RunConfig
from treadle.optimization import OptimizeSettings, optimize
from treadle.runtime.cache import ModelCache

SETTINGS = OptimizeSettings(
    rounds=5, warmup=1, optimizer_model=sim.optimizer(broken_every=3), patience=10
)


async def main(out: Path, seed: int, resume: bool, delay: float) -> None:
    out.mkdir(parents=True, exist_ok=True)
    flow = out.parent / "seed.flow"
    flow.write_text(sim.SEED_FLOW)
    run = RunConfig(
        model=sim.executor(delay),
        cache=ModelCache(out / "cache"),
        sandbox="process",
        seed=seed,
    )
    where = {"resume": out / "record"} if resume else {"out": out / "record"}
    result = await optimize(
        flow,
        sim.rows(40),
        test=sim.rows(20, 1000),
        scorer="exact",
        settings=SETTINGS,
        run=run,
        **where,
    )  # type: ignore[arg-type]
    print(result.model_dump_json())


if __name__ == "__main__":
    args = sys.argv[1:]
    delay = float(args[args.index("--delay") + 1]) if "--delay" in args else 0.0
    asyncio.run(main(Path(args[0]), int(args[1]), "--resume" in args, delay))
