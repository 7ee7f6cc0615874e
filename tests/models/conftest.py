"""Fixtures for the model tests: the real SmolLM2 GGUF, a real llama.cpp OpenAI-compatible
server on loopback, and tiny scripted HTTP servers for faults. Traffic stays on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest
from http_faults import FaultServer, ok_reply

from treadle.runtime.models.spec import default_model_path


@pytest.fixture(scope="session")
def gguf_path() -> Path:
    return default_model_path()


@pytest.fixture(scope="session")
def llama_server(llama_server_factory: Callable[..., AbstractContextManager[str]]) -> Iterator[str]:
    """llama-cpp-python's own OpenAI-compatible server on 127.0.0.1; yields its /v1 base URL."""
    with llama_server_factory(n_ctx=2048) as base:
        yield base


@pytest.fixture
def fault_server() -> type[FaultServer]:
    """The FaultServer class: `async with fault_server(reply, ...) as server:`."""
    return FaultServer


@pytest.fixture
def ok() -> Any:
    """`ok(text)` builds a well-formed chat completion reply for a FaultServer."""
    return ok_reply
