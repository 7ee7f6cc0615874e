"""`treadle` with two extra operators, for CLI tests that need a slow or a failing step.

    python cli_launcher.py run FILE ...

`t.sleep VALUE for SECONDS` sleeps then returns VALUE; `t.boom VALUE` raises ValueError. They
exist only in this process, never in the installed registry.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from treadle.cli import main
from treadle.runtime.op_context import OpContext
from treadle.stdlib_ops import registry
from treadle.stdlib_ops.registry import OpArgs, Operator, prep, subject


class SleepArgs(OpArgs):
    value: Any = subject("returned")
    seconds: float = prep("for", "how long")


class BoomArgs(OpArgs):
    value: Any = subject("in the message")


async def _sleep(ctx: OpContext, args: SleepArgs, options: Any) -> Any:
    await asyncio.sleep(args.seconds)
    return args.value


async def _boom(ctx: OpContext, args: BoomArgs, options: Any) -> Any:
    raise ValueError(f"boom: {args.value}")


if __name__ == "__main__":
    registry.operators()
    registry.register(Operator("t.sleep", "Sleep.", SleepArgs, Any, _sleep))
    registry.register(Operator("t.boom", "Raise.", BoomArgs, Any, _boom))
    sys.argv[0] = "treadle"
    main()
