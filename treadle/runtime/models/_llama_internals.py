"""Every read of a llama-cpp-python internal, in one module.

llama-cpp-python's public API (`create_chat_completion`, `tokenize`, `eval`) does not cover
what treadle needs: checking a grammar before llama.cpp's sampler crashes on it, loading
without the extra weight buffers, and driving the context token by token (the last logits,
cutting the context back). Those lean on attributes and behaviour the library does not promise
to keep, so they live here and nowhere else: pyproject.toml pins llama-cpp-python to the range
where they are known to hold (`KNOWN_RANGE`), and tests/models/test_models_llama_internals.py
checks each one on the installed version, so a version bump fails there, not deep in a run.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    from llama_cpp import Llama, LlamaGrammar
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter
    from llama_cpp.llama_cpp import llama_model_params, llama_vocab_p

#: the llama-cpp-python versions these internals are known to hold for: from the first (major,
#: minor) up to, not including, the second; pyproject.toml pins the same range
KNOWN_RANGE = ((0, 3), (0, 4))


# ------------------------------------------------------------ grammars


def grammar_source(grammar: LlamaGrammar) -> tuple[str, str]:
    """The GBNF text and root rule a `LlamaGrammar` holds (it keeps only these until the
    sampler is built, in private attributes)."""
    return grammar._grammar, grammar._root


def grammar_parses(llama: Llama, text: str, root: str) -> bool:
    """Whether llama.cpp's own grammar parser accepts `text`: built for a grammar that does not
    parse, llama-cpp-python's sampler chain gets a null sampler and the process dies of a
    segmentation fault on the first token."""
    import llama_cpp

    sampler = llama_cpp.llama_sampler_init_grammar(
        vocab(llama), text.encode("utf-8"), root.encode("utf-8")
    )
    if not sampler:
        return False
    llama_cpp.llama_sampler_free(sampler)
    return True


# ------------------------------------------------------------ loading


@contextlib.contextmanager
def no_extra_buffers() -> Iterator[None]:
    """Load without llama.cpp's "extra" weight buffers (AMX tiles, CPU repacking) unless
    TREADLE_LLAMA_EXTRA_BUFTS=1: where the CPU advertises AMX but the kernel or sandbox does not
    enable it (seen here), the AMX kernel's first `tilezero` kills the process with SIGILL.
    `Llama()` takes no such option, so the default-params function it calls is wrapped while it
    loads; the caller holds a lock that keeps other loads out meanwhile."""
    import llama_cpp

    lib: Any = getattr(llama_cpp, "llama_cpp", None)
    original = getattr(lib, "llama_model_default_params", None)
    if os.environ.get("TREADLE_LLAMA_EXTRA_BUFTS") == "1" or original is None:
        yield
        return

    def params() -> llama_model_params:
        p = original()
        if hasattr(p, "use_extra_bufts"):
            p.use_extra_bufts = False
        return p

    lib.llama_model_default_params = params
    try:
        yield
    finally:
        lib.llama_model_default_params = original


# ------------------------------------------------------------ the vocabulary


def vocab(llama: Llama) -> llama_vocab_p:
    """The model's `llama_vocab` pointer (llguidance builds its tokenizer from it)."""
    return llama._model.vocab


def token_text(llama: Llama, token: int) -> str:
    """A token's text as the vocabulary stores it (special tokens spelled out)."""
    return llama._model.token_get_text(token)


def chat_formatter(template: str, *, eos_token: str, bos_token: str) -> Jinja2ChatFormatter:
    """llama-cpp-python's Jinja2 chat-template renderer (the one `create_chat_completion` uses
    for a GGUF's template): called with `messages=[...]`, its result's `.prompt` is the text."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    return Jinja2ChatFormatter(template=template, eos_token=eos_token, bos_token=bos_token)


# ------------------------------------------------------------ the context, token by token


def last_logits(llama: Llama, n_vocab: int) -> npt.NDArray[np.float32]:
    """A copy of the last evaluated token's logits: llama-cpp-python keeps no scores row unless
    every position's logits are computed (`logits_all`), which costs memory and time."""
    import numpy as np

    ptr = llama._ctx.get_logits()
    return np.ctypeslib.as_array(ptr, shape=(n_vocab,)).astype(np.float32, copy=True)


def context_tokens(llama: Llama) -> list[int]:
    """The tokens in the context now, oldest first."""
    return [int(t) for t in llama.input_ids[: llama.n_tokens]]


def context_length(llama: Llama) -> int:
    return int(llama.n_tokens)


def truncate_context(llama: Llama, length: int) -> None:
    """Keep the first `length` tokens of the context: the next `eval` drops the KV entries
    after them and continues from there."""
    llama.n_tokens = length
