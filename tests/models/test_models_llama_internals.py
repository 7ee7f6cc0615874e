"""The contract with llama-cpp-python's internals (`treadle/runtime/models/_llama_internals.py`):
each internal the module reads exists and behaves as assumed on the installed version, against
the real SmolLM2 GGUF. A llama-cpp-python release that moves one fails here, not deep in a run;
the version pin in pyproject.toml must match the range the module states."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from treadle.runtime.models import _llama_internals as internals
from treadle.runtime.models.llama import LlamaBackend

if TYPE_CHECKING:
    from llama_cpp import Llama

llama_cpp = pytest.importorskip("llama_cpp")
pytestmark = pytest.mark.model

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


@pytest.fixture
def llama(gguf_path: Path) -> Iterator[Llama]:
    """The shared loaded model; its context is left reset for the next test's calls."""
    import asyncio

    model = asyncio.run(LlamaBackend(gguf_path).load())
    model.reset()
    yield model
    model.reset()


def test_installed_version_is_in_the_pinned_range() -> None:
    (lo_major, lo_minor), (hi_major, hi_minor) = internals.KNOWN_RANGE
    installed = tuple(int(part) for part in llama_cpp.__version__.split(".")[:2])
    assert internals.KNOWN_RANGE[0] <= installed < internals.KNOWN_RANGE[1], installed
    pin = f">={lo_major}.{lo_minor},<{hi_major}.{hi_minor}"
    specs = re.findall(r'"llama-cpp-python(?:\[\w+\])?([^"]*)"', PYPROJECT.read_text())
    assert specs and all(s == pin for s in specs), (specs, pin)


def test_loading_with_or_without_extra_buffers(
    llama: Llama, monkeypatch: pytest.MonkeyPatch
) -> None:
    lib = llama_cpp.llama_cpp
    original = lib.llama_model_default_params
    assert original().use_extra_bufts is True  # llama.cpp's default
    for extra in (False, True):
        with internals.weight_buffers(extra=extra):
            assert lib.llama_model_default_params().use_extra_bufts is extra
        assert lib.llama_model_default_params is original
    # `Llama()` reads the wrapped function: the shared model was loaded as the policy says
    monkeypatch.delenv("TREADLE_LLAMA_EXTRA_BUFTS", raising=False)
    has_amx = "AMX" in llama_cpp.llama_print_system_info().decode()
    assert internals.extra_buffers_safe() is not has_amx
    assert llama.model_params.use_extra_bufts is internals.extra_buffers_safe()
    for value, expected in (("0", False), ("1", True)):
        monkeypatch.setenv("TREADLE_LLAMA_EXTRA_BUFTS", value)
        assert internals.extra_buffers_safe() is expected


def test_chat_tokens_are_the_prompt_create_chat_completion_evaluates(llama: Llama) -> None:
    from treadle.runtime.models import Message

    tokens = internals.chat_tokens(llama, [Message(role="user", content="Say yes.")])
    reply: Any = llama.create_chat_completion(
        messages=[{"role": "user", "content": "Say yes."}], max_tokens=1, temperature=0.0
    )
    assert reply["usage"]["prompt_tokens"] == len(tokens)
    assert internals.context_tokens(llama)[: len(tokens)] == tokens


def test_a_batching_context_saves_and_restores_one_sequence(llama: Llama) -> None:
    ctx = internals.new_context(llama, n_ctx=512, n_seq_max=2, n_batch=64, n_threads=1)
    try:
        assert llama_cpp.llama_n_seq_max(ctx) == 2
        tokens = llama.tokenize(b"One, two, three, four,", add_bos=False)
        batch = llama_cpp.llama_batch_init(len(tokens), 0, 1)
        for i, token in enumerate(tokens):
            batch.token[i], batch.pos[i], batch.n_seq_id[i] = token, i, 1
            batch.seq_id[i][0], batch.logits[i] = 0, i == len(tokens) - 1
        batch.n_tokens = len(tokens)
        assert llama_cpp.llama_decode(ctx, batch) == 0
        llama_cpp.llama_batch_free(batch)
        state = internals.sequence_state(ctx, 0)
        assert len(state) > 1000
        memory = llama_cpp.llama_get_memory(ctx)
        assert llama_cpp.llama_memory_seq_pos_max(memory, 0) == len(tokens) - 1
        internals.clear_sequence(ctx, 0)
        assert llama_cpp.llama_memory_seq_pos_max(memory, 0) == -1
        assert internals.set_sequence_state(ctx, state, 1)
        assert llama_cpp.llama_memory_seq_pos_max(memory, 1) == len(tokens) - 1
        # a state of one kind of context does not load into the other: refused, not a crash
        assert not internals.restore_context(llama, tokens, state)
        assert internals.context_length(llama) == 0
        # the decoder's own context saves and restores the same way
        llama.eval(tokens)
        own = internals.context_state(llama)
        llama.reset()
        internals.clear_sequence(internals.context_pointer(llama), 0)
        assert internals.restore_context(llama, tokens, own)
        assert internals.context_tokens(llama) == tokens
        assert internals.context_state(llama) == own
    finally:
        llama_cpp.llama_free(ctx)


def test_vocabulary_token_text_and_chat_template(llama: Llama) -> None:
    vocab = internals.vocab(llama)
    assert vocab and llama_cpp.llama_vocab_n_tokens(vocab) == llama.n_vocab()
    eos, bos = llama.token_eos(), llama.token_bos()
    assert internals.token_text(llama, eos) == "<|im_end|>"
    assert internals.token_text(llama, bos) == "<|im_start|>"
    render = internals.chat_template(llama)
    prompt = render(messages=[{"role": "user", "content": "Say yes."}]).prompt
    assert "<|im_start|>user\nSay yes.<|im_end|>" in prompt
    assert prompt.endswith("<|im_start|>assistant\n")


def test_last_logits_are_a_copy_of_the_last_tokens_row(llama: Llama) -> None:
    n_vocab = llama.n_vocab()
    tokens = llama.tokenize(b"The capital of France is", add_bos=False)
    llama.eval(tokens)
    logits = internals.last_logits(llama, n_vocab)
    assert logits.shape == (n_vocab,) and logits.dtype == np.float32
    assert np.isfinite(logits).all()
    row = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llama.ctx, -1), shape=(n_vocab,))
    assert np.array_equal(logits, row)
    logits[:] = 0
    assert np.array_equal(internals.last_logits(llama, n_vocab), row)


def test_truncating_the_context_continues_from_there(llama: Llama) -> None:
    n_vocab = llama.n_vocab()
    head = llama.tokenize(b"One, two, three,", add_bos=False)
    wrong = llama.tokenize(b" banana split", add_bos=False)
    right = llama.tokenize(b" four,", add_bos=False)
    llama.eval(head + wrong)
    assert internals.context_tokens(llama) == head + wrong
    assert internals.context_length(llama) == len(head + wrong)
    internals.truncate_context(llama, len(head))
    assert internals.context_tokens(llama) == head
    llama.eval(right)
    assert internals.context_tokens(llama) == head + right
    continued = internals.last_logits(llama, n_vocab)
    llama.reset()
    llama.eval(head + right)
    fresh = internals.last_logits(llama, n_vocab)
    # the banana tokens left no trace: the continuation is the fresh evaluation's (up to the
    # last bits a batch split changes)
    assert int(np.argmax(continued)) == int(np.argmax(fresh))
    assert np.allclose(continued, fresh, atol=0.05), float(np.abs(continued - fresh).max())
