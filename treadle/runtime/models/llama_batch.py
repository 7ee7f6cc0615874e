"""Continuous batching on the embedded model: concurrent calls share each `llama_decode`.

One engine per loaded model owns a second llama.cpp context with `slots` sequences, each in its
own KV stream (`kv_unified=False`), and a worker thread that loops as llama.cpp's server does:
admit waiting requests into free slots, put every active sequence's next tokens (a prompt block
or the last sampled token) into one batch, decode, and sample each sequence that produced
logits with its own seeded sampler chain. A finished sequence frees its slot at once, so a new
request starts on the next step rather than after the whole batch.

Why this gives the same answer alone and in a batch: a sequence's KV stream starts empty and
holds only its own cells, at the same indices as when it runs alone; its prompt is evaluated in
blocks at fixed positions (`prefix.blocks`); its sampler is its own, seeded by the call. The
tests check the resulting tokens alone against inside a batch of 8.
"""

from __future__ import annotations

import ctypes
import queue
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from treadle.errors import ModelError
from treadle.runtime.models import _llama_internals as internals
from treadle.runtime.models.llama_prefix import BLOCK, PrefixStore, blocks

if TYPE_CHECKING:
    from llama_cpp import Llama

#: tokens per `llama_decode` (llama.cpp's default batch size)
N_BATCH = 512
#: llama-cpp-python's sampling defaults, so a batched call samples as `create_chat_completion`
TOP_K = 40
MIN_P = 0.05
#: how many recent tokens a repeat penalty looks back over (llama-cpp-python's default)
PENALTY_LAST_N = 64


@dataclass(frozen=True)
class Request:
    """One completion: prompt tokens and how to sample the continuation."""

    tokens: Sequence[int]
    max_tokens: int
    temperature: float
    top_p: float
    seed: int
    stop: Sequence[str] = ()
    grammar: tuple[str, str] | None = None  # GBNF text and root rule
    #: llama.cpp's repeat penalty over the last `PENALTY_LAST_N` tokens (None: none)
    repeat_penalty: float | None = None


@dataclass(frozen=True)
class Result:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    tokens: tuple[int, ...]
    #: prompt tokens restored from a saved prefix instead of evaluated
    reused_tokens: int = 0


@dataclass(eq=False)
class _Sequence:
    request: Request
    future: Future[Result]
    slot: int
    sampler: Any
    evaluated: int = 0  # prompt tokens already in the KV stream
    reused: int = 0
    out: list[int] = field(default_factory=list)
    text: bytes = b""
    save_at: int = 0  # a prompt position whose state goes to the prefix store once reached

    @property
    def prefilling(self) -> bool:
        return self.evaluated < len(self.request.tokens)


class BatchEngine:
    """The batched decoder of one loaded model (thread-safe `submit`; one worker thread)."""

    def __init__(
        self, llama: Llama, *, n_ctx: int, slots: int, n_threads: int, prefixes: PrefixStore
    ) -> None:
        import llama_cpp

        self.llama = llama
        self.n_ctx = n_ctx
        self.slots = slots
        self.prefixes = prefixes
        self.ctx = internals.new_context(
            llama, n_ctx=n_ctx * slots, n_seq_max=slots, n_batch=N_BATCH, n_threads=n_threads
        )
        self.memory = llama_cpp.llama_get_memory(self.ctx)
        self.vocab = internals.vocab(llama)
        self.batch = llama_cpp.llama_batch_init(N_BATCH, 0, 1)
        self._queue: queue.SimpleQueue[tuple[Request, Future[Result]] | None] = queue.SimpleQueue()
        self._waiting: list[tuple[Request, Future[Result]]] = []
        self._active: dict[int, _Sequence] = {}
        self._dropped: set[int] = set()  # ids of futures whose caller gave up
        self._dropped_lock = threading.Lock()
        #: decode steps and tokens decoded, for the benchmarks
        self.steps = 0
        self.decoded_tokens = 0
        self.busy_seconds = 0.0
        self._thread = threading.Thread(target=self._loop, name="treadle-llama-batch", daemon=True)
        self._closed = False
        self._thread.start()

    # ------------------------------------------------------------ the public side

    def submit(self, request: Request) -> Future[Result]:
        if len(request.tokens) >= self.n_ctx:
            raise ModelError(
                f"The prompt is too long for the embedded model: {len(request.tokens)} tokens "
                f"do not fit in the context window of {self.n_ctx} tokens. Shorten the prompt, "
                "or give the model a larger context in its spec (e.g. "
                "`--model default?n_ctx=16384`)."
            )
        future: Future[Result] = Future()
        self._queue.put((request, future))
        return future

    def cancel(self, future: Future[Result]) -> None:
        """The caller no longer wants this result: a running sequence stops at the next step."""
        if not future.cancel():
            with self._dropped_lock:
                self._dropped.add(id(future))

    def _gone(self, seq: _Sequence) -> bool:
        with self._dropped_lock:
            return seq.future.cancelled() or id(seq.future) in self._dropped

    def close(self) -> None:
        """Stop the worker (its running calls fail) and free the context."""
        import llama_cpp

        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join(timeout=30)
        if self._thread.is_alive():
            return  # a decode is stuck; the process frees the memory
        llama_cpp.llama_batch_free(self.batch)
        llama_cpp.llama_free(self.ctx)

    # ------------------------------------------------------------ the worker

    def _loop(self) -> None:
        while True:
            if not self._take(block=not self._active and not self._waiting):
                break
            self._admit()
            if not self._active:
                continue
            t0 = time.perf_counter()
            try:
                self._step()
            except Exception as e:  # a decode failure fails the calls in it, not the engine
                for seq in list(self._active.values()):
                    self._finish(seq, error=e)
            self.busy_seconds += time.perf_counter() - t0
        for seq in list(self._active.values()):
            self._finish(seq, error=ModelError("The embedded model was closed.", retryable=True))
        for _, future in self._waiting:
            future.set_exception(ModelError("The embedded model was closed.", retryable=True))

    def _take(self, *, block: bool) -> bool:
        """Move submitted requests to the waiting list; False once closed."""
        try:
            item = self._queue.get(block=block)
            while True:
                if item is None:
                    return False
                self._waiting.append(item)
                item = self._queue.get_nowait()
        except queue.Empty:
            return True

    def _admit(self) -> None:
        import llama_cpp

        free = [s for s in range(self.slots) if s not in self._active]
        while free and self._waiting:
            request, future = self._waiting.pop(0)
            if not future.set_running_or_notify_cancel():
                continue
            try:
                sampler = _sampler_chain(self.vocab, request)
            except ModelError as e:
                future.set_exception(e)
                continue
            slot = free.pop(0)
            llama_cpp.llama_memory_seq_rm(self.memory, slot, -1, -1)
            seq = _Sequence(request=request, future=future, slot=slot, sampler=sampler)
            self._restore_prefix(seq)
            self._active[slot] = seq

    def _restore_prefix(self, seq: _Sequence) -> None:
        """Start from a saved prompt prefix when one matches; else mark where to save one."""
        tokens = seq.request.tokens
        hit = self.prefixes.lookup(tokens)
        if hit is not None:
            length, state = hit
            if internals.set_sequence_state(self.ctx, state, seq.slot):
                seq.evaluated = seq.reused = length
                return
            internals.clear_sequence(self.ctx, seq.slot)
        seq.save_at = self.prefixes.worth_saving(tokens)

    def _step(self) -> None:
        """One `llama_decode` over every active sequence, then one sample per sequence whose
        prompt is complete."""
        import llama_cpp

        batch = self.batch
        n = 0
        outputs: list[tuple[int, _Sequence]] = []
        live = [s for s in self._active.values() if not self._gone(s)]
        # decoding sequences first (one token each), then prompt blocks in the room left
        for seq in sorted(live, key=lambda s: s.prefilling):
            if not seq.prefilling:
                pos = len(seq.request.tokens) + len(seq.out) - 1
                _put(batch, n, seq.out[-1], pos, seq.slot, True)
                outputs.append((n, seq))
                n += 1
                continue
            start, end = next(blocks(seq.evaluated, len(seq.request.tokens)))
            if seq.save_at > seq.evaluated:
                end = min(end, seq.save_at)
            if n + end - start > N_BATCH:
                continue  # a prompt block is never split: it waits for the next step
            last = end == len(seq.request.tokens)
            for pos in range(start, end):
                _put(batch, n, seq.request.tokens[pos], pos, seq.slot, last and pos == end - 1)
                n += 1
            seq.evaluated = end
            if last:
                outputs.append((n - 1, seq))
        for seq in [s for s in self._active.values() if self._gone(s)]:
            self._finish(seq)
        if n == 0:
            return
        batch.n_tokens = n
        code = llama_cpp.llama_decode(self.ctx, batch)
        if code != 0:
            raise ModelError(f"llama.cpp could not decode a batch (code {code}).", retryable=True)
        self.steps += 1
        self.decoded_tokens += n
        for seq in list(self._active.values()):
            if seq.save_at and seq.evaluated == seq.save_at:
                self.prefixes.save(
                    seq.request.tokens[: seq.save_at],
                    internals.sequence_state(self.ctx, seq.slot),
                )
                seq.save_at = 0
        for index, seq in outputs:
            self._sample(seq, index)

    def _sample(self, seq: _Sequence, index: int) -> None:
        import llama_cpp

        token = int(llama_cpp.llama_sampler_sample(seq.sampler, self.ctx, index))
        request = seq.request
        if llama_cpp.llama_vocab_is_eog(self.vocab, token):
            self._finish(seq, reason="stop")
            return
        seq.out.append(token)
        seq.text += self.llama.detokenize([token])
        if request.stop:
            text = seq.text.decode("utf-8", "ignore")
            if any(s in text for s in request.stop):
                self._finish(seq, reason="stop")
                return
        budget = min(request.max_tokens, self.n_ctx - len(request.tokens))
        if len(seq.out) >= budget:
            self._finish(seq, reason="length")

    def _finish(
        self, seq: _Sequence, *, reason: str = "stop", error: BaseException | None = None
    ) -> None:
        import llama_cpp

        del self._active[seq.slot]
        llama_cpp.llama_sampler_free(seq.sampler)
        internals.clear_sequence(self.ctx, seq.slot)
        if self._gone(seq):
            with self._dropped_lock:
                self._dropped.discard(id(seq.future))
            if not seq.future.cancelled():
                seq.future.set_exception(ModelError("The model call was cancelled."))
            return
        if error is not None:
            seq.future.set_exception(error)
            return
        text = seq.text.decode("utf-8", "ignore")
        for s in seq.request.stop:
            if s in text:
                text = text[: text.index(s)]
        seq.future.set_result(
            Result(
                text=text,
                prompt_tokens=len(seq.request.tokens),
                completion_tokens=len(seq.out),
                finish_reason=reason,
                tokens=tuple(seq.out),
                reused_tokens=seq.reused,
            )
        )


def _put(batch: Any, i: int, token: int, pos: int, seq_id: int, logits: bool) -> None:
    batch.token[i] = token
    batch.pos[i] = pos
    batch.n_seq_id[i] = 1
    batch.seq_id[i][0] = seq_id
    batch.logits[i] = logits


def _sampler_chain(vocab: Any, request: Request) -> Any:
    """The sampler chain `create_chat_completion` builds (grammar, then greedy or top-k,
    typical, top-p, min-p, temperature and a seeded draw), one per sequence."""
    import llama_cpp

    chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
    if request.grammar is not None:
        text, root = request.grammar
        grammar = llama_cpp.llama_sampler_init_grammar(
            vocab, text.encode("utf-8"), root.encode("utf-8")
        )
        if not grammar:
            llama_cpp.llama_sampler_free(chain)
            raise ModelError(
                "The grammar of a model call is not valid GBNF (llama.cpp could not parse it); "
                "see llama.cpp's grammars/README.md for the format."
            )
        llama_cpp.llama_sampler_chain_add(chain, grammar)
    if request.repeat_penalty is not None:  # as llama-cpp-python adds it (its binding's form)
        penalties = llama_cpp.llama_sampler_init_penalties(
            llama_cpp.llama_vocab_n_tokens(vocab), PENALTY_LAST_N, request.repeat_penalty, 0.0, 0.0
        )
        llama_cpp.llama_sampler_chain_add(chain, penalties)
    if request.temperature <= 0:
        llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_greedy())
        return chain
    for sampler in (
        llama_cpp.llama_sampler_init_top_k(TOP_K),
        llama_cpp.llama_sampler_init_typical(1.0, 1),
        llama_cpp.llama_sampler_init_top_p(request.top_p, 1),
        llama_cpp.llama_sampler_init_min_p(MIN_P, 1),
        llama_cpp.llama_sampler_init_temp(request.temperature),
        llama_cpp.llama_sampler_init_dist(ctypes.c_uint32(request.seed).value),
    ):
        llama_cpp.llama_sampler_chain_add(chain, sampler)
    return chain


__all__ = ["BLOCK", "BatchEngine", "Request", "Result"]
