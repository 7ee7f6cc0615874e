"""Scripted HTTP/1.1 servers on 127.0.0.1 for model-server faults (refusals, errors,
Retry-After, hangs), shared by the model and runtime tests. Traffic stays on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
import time
from typing import Any

Reply = tuple[int, dict[str, str], bytes | str | dict[str, Any]] | str


class FaultServer:
    """An HTTP/1.1 server on 127.0.0.1 that answers from a script.

    Each reply is `(status, headers, body)`, "hang" (accept, read, never answer) or "reset"
    (read the request, then reset the connection: a TCP RST, no reply); the last reply
    repeats. `requests` records (monotonic time, parsed JSON body) of each request.
    """

    def __init__(self, *replies: Reply) -> None:
        self.replies = list(replies)
        self.requests: list[tuple[float, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._server: asyncio.Server | None = None
        self.url = ""

    async def __aenter__(self) -> FaultServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/v1"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
                headers = {}
                for line in head.split("\r\n")[1:]:
                    name, _, value = line.partition(":")
                    if name.strip():
                        headers[name.strip().lower()] = value.strip()
                self.headers.append(headers)
                length = int(headers.get("content-length", 0))
                body = await reader.readexactly(length) if length else b""
                self.requests.append((time.monotonic(), json.loads(body) if body else None))
                reply = self.replies[min(len(self.requests), len(self.replies)) - 1]
                if reply == "hang":
                    await asyncio.sleep(3600)
                    return
                if reply == "reset":
                    sock = writer.get_extra_info("socket")
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    writer.transport.abort()
                    return
                assert not isinstance(reply, str)
                status, headers, payload = reply
                data = (
                    json.dumps(payload).encode()
                    if isinstance(payload, dict)
                    else payload.encode()
                    if isinstance(payload, str)
                    else payload
                )
                lines = [f"HTTP/1.1 {status} X", f"Content-Length: {len(data)}"]
                lines += [f"{k}: {v}" for k, v in headers.items()]
                writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + data)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()


def ok_reply(text: str = "hello", prompt_tokens: int = 5, completion_tokens: int = 1) -> Reply:
    """A well-formed chat completion reply."""
    return (
        200,
        {"Content-Type": "application/json"},
        {
            "id": "x",
            "object": "chat.completion",
            "model": "fake",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        },
    )
