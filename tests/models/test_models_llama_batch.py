"""Batched decoding and prompt-prefix reuse on the real SmolLM2 GGUF: a call gives the same
tokens alone and inside a batch of 8, and with and without a restored prefix."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from treadle.runtime.models import GenParams, Message
from treadle.runtime.models.llama import LlamaBackend
from treadle.runtime.models.llama_batch import BatchEngine, Request
from treadle.runtime.models.llama_constrained import EmbeddedDecoder
from treadle.runtime.models.llama_prefix import BLOCK, MIN_PREFIX, PrefixStore, blocks

pytestmark = pytest.mark.model

#: a system turn of ~700 tokens, shared by the prefix tests' prompts
SHARED = "You answer questions about this list of facts.\n" + "\n".join(
    f"- Fact {i}: the box number {i} holds {i * 7 % 13} red and {i * 5 % 11} blue marbles."
    for i in range(40)
)


def ask(text: str, system: str | None = None) -> list[Message]:
    turns = [Message(role="system", content=system)] if system else []
    return [*turns, Message(role="user", content=text)]


QUESTIONS = [f"In two sentences, what is special about the number {i}?" for i in range(8)]


@pytest.mark.slow
@pytest.mark.parametrize(
    "params",
    [
        GenParams(temperature=0.0, max_tokens=24),
        GenParams(temperature=0.9, max_tokens=24, seed=11),
    ],
    ids=["greedy", "seeded"],
)
async def test_a_call_gives_the_same_tokens_alone_and_in_a_batch_of_8(
    gguf_path: Path, params: GenParams
) -> None:
    model = LlamaBackend(gguf_path)
    engine = await model.batch_engine()
    alone = await model.complete(ask(QUESTIONS[3]), params)
    steps = engine.steps
    batch = await asyncio.gather(*(model.complete(ask(q), params) for q in QUESTIONS))
    assert engine.steps - steps < sum(1 + r.usage.output_tokens for r in batch) / 3
    assert batch[3].text == alone.text and batch[3].usage == alone.usage
    # and again after the batch (nothing left behind changes it)
    assert (await model.complete(ask(QUESTIONS[3]), params)).text == alone.text


@pytest.mark.slow
async def test_grammar_calls_are_batched_and_hold_to_their_grammar(gguf_path: Path) -> None:
    model = LlamaBackend(gguf_path)
    choice = GenParams(temperature=0.7, max_tokens=8, seed=3, grammar='root ::= "yes" | "no"')
    free = GenParams(temperature=0.0, max_tokens=12)
    calls = [model.complete(ask(q), choice if i % 2 else free) for i, q in enumerate(QUESTIONS)]
    results = await asyncio.gather(*calls)
    assert all(r.text in ("yes", "no") for r in results[1::2])
    assert all(r.text not in ("yes", "no") and r.text.strip() for r in results[::2])


@pytest.mark.slow
async def test_a_restored_prefix_gives_the_same_tokens_as_evaluating_it(gguf_path: Path) -> None:
    model = LlamaBackend(gguf_path)
    llama = await model.load()
    reused = BatchEngine(llama, n_ctx=2048, slots=2, n_threads=1, prefixes=PrefixStore(64 << 20))
    fresh = BatchEngine(llama, n_ctx=2048, slots=2, n_threads=1, prefixes=PrefixStore(0))
    try:
        from treadle.runtime.models import _llama_internals as internals

        prompts = [internals.chat_tokens(llama, ask(q, SHARED)) for q in QUESTIONS[:3]]
        assert len(prompts[0]) > MIN_PREFIX + BLOCK

        def run(engine: BatchEngine, tokens: list[int]) -> tuple[tuple[int, ...], int]:
            request = Request(tokens=tokens, max_tokens=16, temperature=0.0, top_p=1.0, seed=0)
            result = engine.submit(request).result(timeout=600)
            return result.tokens, result.reused_tokens

        outcomes = [run(reused, p) for p in prompts]
        # the second prompt shows the prefix is shared (and saves it); the third restores it
        assert [r for _, r in outcomes][:2] == [0, 0] and outcomes[2][1] >= MIN_PREFIX
        assert reused.prefixes.saved == 1 and reused.prefixes.hits == 1
        for tokens, (out, _) in zip(prompts, outcomes, strict=True):
            assert run(fresh, tokens) == (out, 0)
    finally:
        reused.close()
        fresh.close()


@pytest.mark.slow
async def test_the_decoder_restores_a_saved_prefix_deterministically(gguf_path: Path) -> None:
    model = LlamaBackend(gguf_path)
    llama = await model.load()
    store = PrefixStore(64 << 20)

    def decode(decoder: EmbeddedDecoder, question: str) -> tuple[str, int]:
        llama.reset()  # no common prefix with the context: only the store can help
        stats = decoder.start(decoder.chat_prompt(ask(question, SHARED)))
        piece = decoder.piece(None, rng=np.random.default_rng(0), temperature=0.0, max_tokens=12)
        return piece.text, stats.reused_tokens

    def work(decoder: EmbeddedDecoder) -> list[tuple[str, int]]:
        with_store = EmbeddedDecoder(decoder.llama, decoder.identity, store)
        without = EmbeddedDecoder(decoder.llama, decoder.identity, None)
        first = [decode(with_store, q) for q in QUESTIONS[:3]]
        return first + [decode(without, q) for q in QUESTIONS[:3]]

    results = await model.with_decoder(work)
    assert [r for _, r in results][:3] == [0, 0, results[2][1]] and results[2][1] >= MIN_PREFIX
    assert [t for t, _ in results[:3]] == [t for t, _ in results[3:]]


def test_prompt_blocks_end_at_fixed_positions() -> None:
    assert list(blocks(0, 2 * BLOCK + 5)) == [
        (0, BLOCK),
        (BLOCK, 2 * BLOCK),
        (2 * BLOCK, 2 * BLOCK + 5),
    ]
    assert list(blocks(BLOCK + 3, 2 * BLOCK + 1)) == [
        (BLOCK + 3, 2 * BLOCK),
        (2 * BLOCK, 2 * BLOCK + 1),
    ]
    assert list(blocks(5, 5)) == []


def test_the_prefix_store_is_bounded_and_finds_the_longest_prefix() -> None:
    store = PrefixStore(max_bytes=3000)
    base = list(range(2000))
    assert store.worth_saving([*base, 1]) == 0  # nothing seen yet shares a prefix
    assert store.worth_saving([*base, 2]) == 2000 // BLOCK * BLOCK  # cut to a block boundary
    store.save(base[:512], b"a" * 1000)
    store.save(base[:1024], b"b" * 1000)
    assert store.lookup([*base, 3]) == (1024, b"b" * 1000)
    assert store.lookup(base[:1024]) == (512, b"a" * 1000)  # one token is left to evaluate
    store.save(base[:1536], b"c" * 1500)  # over the bound: the least recently used goes
    assert store.size <= 3000
    assert store.lookup([*base, 4]) == (1536, b"c" * 1500)
    assert store.lookup(base[:1536]) == (512, b"a" * 1000)  # the 1024-token one was evicted
    store.save(base[:1792], b"d" * 4000)  # larger than the whole bound: not kept
    assert store.lookup([*base, 5]) == (1536, b"c" * 1500)
    assert PrefixStore(max_bytes=0).worth_saving(base) == 0
