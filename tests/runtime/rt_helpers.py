"""Helpers shared by the runtime tests: a recorder for the test operators, IR builders, a
failing HTTP server."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

from treadle.runtime import ir


@dataclass
class Recorder:
    """What the test operators saw: (event, step id, monotonic time) and per-key counters."""

    events: list[tuple[str, str, float]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    running: int = 0
    max_running: int = 0

    def times(self, event: str) -> dict[str, float]:
        return {step: t for e, step, t in self.events if e == event}


# ---------------------------------------------------------------- IR builders


def c(value: Any) -> ir.Const:
    return ir.Const(value=value)


def r(name: str, *path: str) -> ir.Ref:
    return ir.Ref(name=name, path=tuple(path))


def step(id: str, op: str, *, options: dict[str, Any] | None = None, **args: Any) -> ir.Step:
    """A step; plain Python values become constants."""
    return ir.Step(
        id=id,
        name=id.rsplit(".", 1)[-1],
        op=op,
        args={k: _expr(v) for k, v in args.items()},
        options={k: _expr(v) for k, v in (options or {}).items()},
    )


def _expr(v: Any) -> Any:
    exprs = ir.Const | ir.Ref | ir.Template | ir.ListExpr | ir.Unary | ir.Binary
    return v if isinstance(v, exprs) else c(v)


def program(
    *nodes: Any, outputs: dict[str, Any], inputs: dict[str, str] | None = None, name: str = "main"
) -> ir.Program:
    inputs = inputs or {}
    wf = ir.Workflow(
        name=name,
        inputs=tuple(ir.Field_(name=k, type=t) for k, t in inputs.items()),
        outputs=tuple(ir.Field_(name=k, type="json") for k in outputs),
        graph=ir.Graph(
            params=tuple(inputs), nodes=nodes, outputs={k: _expr(v) for k, v in outputs.items()}
        ),
    )
    return ir.Program(entry=name, workflows={name: wf})


# ---------------------------------------------------------------- a real HTTP server


class FailingServer:
    """An HTTP/1.1 server on 127.0.0.1 that answers every request with `status` and counts
    the requests (keep-alive included): a model server that keeps failing."""

    def __init__(self, status: int = 500, body: bytes = b'{"error": {"message": "down"}}'):
        self.status = status
        self.body = body
        self.requests = 0
        self.url = ""
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> FailingServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/v1"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
                length = 0
                for line in head.split("\r\n"):
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                if length:
                    await reader.readexactly(length)
                self.requests += 1
                writer.write(
                    f"HTTP/1.1 {self.status} X\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(self.body)}\r\n\r\n".encode()
                    + self.body
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
