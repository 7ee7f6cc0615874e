"""The contract with llama-cpp-python's internals (`treadle/runtime/models/_llama_internals.py`):
each internal the module reads exists and behaves as assumed on the installed version, against
the real SmolLM2 GGUF. A llama-cpp-python release that moves one fails here, not deep in a run;
the version pin in pyproject.toml must match the range the module states."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

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


def test_a_grammar_holds_its_text_and_root() -> None:
    text = 'root ::= "yes" | "no"'
    assert internals.grammar_source(llama_cpp.LlamaGrammar.from_string(text, verbose=False)) == (
        text,
        "root",
    )


def test_llama_cpp_parses_a_grammar_without_crashing(llama: Llama) -> None:
    assert internals.grammar_parses(llama, 'root ::= "yes" | "no"', "root")
    assert not internals.grammar_parses(llama, "root ::= (", "root")
    assert not internals.grammar_parses(llama, 'start ::= "x"', "root")


def test_loading_without_extra_buffers(
    llama: Llama, gguf_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lib = llama_cpp.llama_cpp
    original = lib.llama_model_default_params
    assert original().use_extra_bufts is True  # llama.cpp's default, which the loader turns off
    monkeypatch.delenv("TREADLE_LLAMA_EXTRA_BUFTS", raising=False)
    with internals.no_extra_buffers():
        assert lib.llama_model_default_params().use_extra_bufts is False
    assert lib.llama_model_default_params is original
    # `Llama()` reads the wrapped function: the shared model was loaded without them
    assert llama.model_params.use_extra_bufts is False
    monkeypatch.setenv("TREADLE_LLAMA_EXTRA_BUFTS", "1")
    with internals.no_extra_buffers():
        assert lib.llama_model_default_params().use_extra_bufts is True


def test_vocabulary_token_text_and_chat_template(llama: Llama) -> None:
    vocab = internals.vocab(llama)
    assert vocab and llama_cpp.llama_vocab_n_tokens(vocab) == llama.n_vocab()
    eos, bos = llama.token_eos(), llama.token_bos()
    assert internals.token_text(llama, eos) == "<|im_end|>"
    assert internals.token_text(llama, bos) == "<|im_start|>"
    template = llama.metadata["tokenizer.chat_template"]
    render = internals.chat_formatter(template, eos_token="<|im_end|>", bos_token="<|im_start|>")
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
