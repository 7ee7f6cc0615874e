"""Fixtures for the generation tests: llama-cpp-python's own OpenAI-compatible server on
127.0.0.1 (tests/conftest.py starts it). Traffic stays on loopback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import pytest


@pytest.fixture(scope="session")
def gen_llama_server(
    llama_server_factory: Callable[..., AbstractContextManager[str]],
) -> Iterator[str]:
    """A llama_cpp.server for SmolLM2 on 127.0.0.1 with a context long enough for the
    generator's prompt, on one thread (see GENERATION_THREADS); yields its /v1 base URL."""
    with llama_server_factory(n_ctx=4096, n_threads=1) as base:
        yield base
