"""Every read of a llama-cpp-python internal, in one module.

llama-cpp-python's public API (`create_chat_completion`, `tokenize`, `eval`) does not cover
what treadle needs: choosing whether to load with the extra weight buffers, driving the
context token by token (the last logits, cutting the context back), a second context with
several sequences for batching, and saving and restoring one sequence's KV state. Those lean
on attributes and behaviour the library does not promise to keep, so they live here and
nowhere else: pyproject.toml pins llama-cpp-python to the range where they are known to hold
(`KNOWN_RANGE`), and tests/models/test_models_llama_internals.py checks each one on the
installed version, so a version bump fails there, not deep in a run.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    from llama_cpp import Llama
    from llama_cpp.llama_chat_format import ChatFormatterResponse, Jinja2ChatFormatter
    from llama_cpp.llama_cpp import llama_model_params, llama_vocab_p
    from llama_cpp.llama_types import ChatCompletionRequestMessage

    from treadle.runtime.models.base import Message

#: the llama-cpp-python versions these internals are known to hold for: from the first (major,
#: minor) up to, not including, the second; pyproject.toml pins the same range
KNOWN_RANGE = ((0, 3), (0, 4))


# ------------------------------------------------------------ loading


def extra_buffers_safe() -> bool:
    """Whether to load with llama.cpp's "extra" weight buffers (CPU repacking, AMX tiles).

    $TREADLE_LLAMA_EXTRA_BUFTS=1 or 0 decides; otherwise they are on unless this build has the
    AMX buffer type: where the CPU advertises AMX but the kernel or sandbox does not enable it
    (seen with a `-march=native` build), the AMX kernel's first `tilezero` kills the process
    with SIGILL. The portable build (the Makefile's flags) has no AMX and repacks safely."""
    import llama_cpp

    value = os.environ.get("TREADLE_LLAMA_EXTRA_BUFTS", "").strip()
    if value in {"0", "1"}:
        return value == "1"
    info = llama_cpp.llama_print_system_info().decode("utf-8", "replace")
    return "AMX" not in info


@contextlib.contextmanager
def weight_buffers(*, extra: bool) -> Iterator[None]:
    """Load with (or without) the extra weight buffers: `Llama()` takes no such option, so the
    default-params function it calls is wrapped while it loads; the caller holds a lock that
    keeps other loads out meanwhile."""
    import llama_cpp

    lib: Any = getattr(llama_cpp, "llama_cpp", None)
    original = getattr(lib, "llama_model_default_params", None)
    if original is None:
        yield
        return

    def params() -> llama_model_params:
        p = original()
        if hasattr(p, "use_extra_bufts"):
            p.use_extra_bufts = extra
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


@functools.lru_cache(maxsize=8)
def _formatter(template: str, eos_token: str, bos_token: str) -> Jinja2ChatFormatter:
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    return Jinja2ChatFormatter(template=template, eos_token=eos_token, bos_token=bos_token)


def chat_template(llama: Llama) -> Jinja2ChatFormatter:
    """llama-cpp-python's renderer of the GGUF's chat template, built as `Llama` builds the one
    `create_chat_completion` uses: called with `messages=[...]`, its result's `.prompt` is the
    text and `.added_special` says whether the template wrote the BOS token itself."""
    from treadle.errors import ModelError

    template = llama.metadata.get("tokenizer.chat_template")
    if not template:
        raise ModelError("The model file has no chat template; chat calls need one.")
    return _formatter(
        template,
        token_text(llama, int(llama.token_eos())),
        token_text(llama, int(llama.token_bos())),
    )


def chat_prompt(llama: Llama, messages: Sequence[Message]) -> ChatFormatterResponse:
    """The chat template applied to `messages`, ending where the assistant's turn starts."""
    turns = [{"role": m.role, "content": m.content} for m in messages]
    return chat_template(llama)(messages=cast("list[ChatCompletionRequestMessage]", turns))


def chat_tokens(llama: Llama, messages: Sequence[Message]) -> list[int]:
    """A chat's prompt tokens, as `create_chat_completion` tokenizes them."""
    result = chat_prompt(llama, messages)
    return list(
        llama.tokenize(
            str(result.prompt).encode("utf-8"), add_bos=not result.added_special, special=True
        )
    )


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


def context_pointer(llama: Llama) -> Any:
    """The `llama_context` pointer of a `Llama`."""
    return llama._ctx.ctx


def restore_context(llama: Llama, tokens: list[int], state: bytes) -> bool:
    """Replace the context with a saved state of sequence 0 holding `tokens` (False when
    llama.cpp refuses it; the context is then empty)."""
    if not set_sequence_state(context_pointer(llama), state, 0):
        llama.n_tokens = 0
        return False
    llama.input_ids[: len(tokens)] = tokens
    llama.n_tokens = len(tokens)
    return True


def context_state(llama: Llama) -> bytes:
    """The saved KV state of the context's tokens (sequence 0)."""
    return sequence_state(context_pointer(llama), 0)


# ------------------------------------------------------------ a batching context


def new_context(llama: Llama, *, n_ctx: int, n_seq_max: int, n_batch: int, n_threads: int) -> Any:
    """A second llama.cpp context on the loaded model, with `n_seq_max` sequences each in its
    own KV stream of `n_ctx // n_seq_max` cells (the model's weights are shared)."""
    import llama_cpp

    params = llama_cpp.llama_context_default_params()
    params.n_ctx = n_ctx
    params.n_batch = params.n_ubatch = n_batch
    params.n_seq_max = n_seq_max
    params.kv_unified = False
    params.n_threads = params.n_threads_batch = n_threads
    params.no_perf = True
    ctx = llama_cpp.llama_init_from_model(llama._model.model, params)
    if not ctx:
        raise MemoryError(f"llama.cpp could not create a context of {n_ctx} cells")
    return ctx


def sequence_state(ctx: Any, seq: int) -> bytes:
    """One sequence's KV cells, as llama.cpp serializes them."""
    import ctypes

    import llama_cpp

    size = llama_cpp.llama_state_seq_get_size(ctx, seq)
    buf = (ctypes.c_uint8 * size)()
    written = llama_cpp.llama_state_seq_get_data(ctx, buf, size, seq)
    return bytes(buf[:written])


def set_sequence_state(ctx: Any, state: bytes, seq: int) -> bool:
    import ctypes

    import llama_cpp

    buf = (ctypes.c_uint8 * len(state)).from_buffer_copy(state)
    return bool(llama_cpp.llama_state_seq_set_data(ctx, buf, len(state), seq))


def clear_sequence(ctx: Any, seq: int) -> None:
    import llama_cpp

    llama_cpp.llama_memory_seq_rm(llama_cpp.llama_get_memory(ctx), seq, -1, -1)
