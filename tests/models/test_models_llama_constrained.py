"""The token-level constrained decoder beside the llama backend, on the real SmolLM2 GGUF:
an llguidance grammar (Lark text) holds the sampled text to its language, a piece can be
rewound and sampled again, and the decoder has the model to itself while it works."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import numpy as np
import pytest

from treadle.runtime.models import GenParams, Message
from treadle.runtime.models.llama import LlamaBackend
from treadle.runtime.models.llama_constrained import Decoded, EmbeddedDecoder

pytest.importorskip("llguidance")
pytestmark = pytest.mark.model

QUESTION = [Message(role="user", content="Is the sky blue? Answer yes or no.")]
YES_NO = 'start: "yes" | "no"'


async def test_a_grammar_holds_the_piece_to_its_language(gguf_path: Path) -> None:
    def work(decoder: EmbeddedDecoder) -> tuple[Decoded, Decoded, Decoded]:
        rng = np.random.default_rng(0)
        decoder.start(decoder.chat_prompt(QUESTION))
        mark = decoder.position
        first = decoder.piece(YES_NO, rng=rng, temperature=0.0, max_tokens=8)
        assert decoder.position > mark
        decoder.rewind(mark)
        assert decoder.position == mark
        decoder.recent = []  # the repeat penalty remembers what was written, rewound or not
        again = decoder.piece(YES_NO, rng=rng, temperature=0.0, max_tokens=8)
        decoder.rewind(mark)
        free = decoder.piece(None, rng=rng, temperature=0.7, max_tokens=3)
        return first, again, free

    first, again, free = await LlamaBackend(gguf_path).with_decoder(work)
    assert first.complete and first.text in ("yes", "no"), first
    assert first.stats.grammars == 1 and first.stats.mask_seconds > 0
    assert again.text == first.text  # greedy after a rewind: the same context, the same piece
    assert free.complete and free.stats.tokens <= 3 and free.stats.grammars == 0


async def test_a_bad_grammar_is_reported_not_decoded(gguf_path: Path) -> None:
    def work(decoder: EmbeddedDecoder) -> Decoded:
        decoder.start(decoder.chat_prompt(QUESTION))
        return decoder.piece(
            "start: ( ", rng=np.random.default_rng(0), temperature=0.0, max_tokens=4
        )

    result = await LlamaBackend(gguf_path).with_decoder(work)
    assert not result.complete and result.error and result.error.startswith("grammar:")


async def test_the_decoder_has_its_context_to_itself_and_calls_run_beside_it(
    gguf_path: Path,
) -> None:
    backend = LlamaBackend(gguf_path)
    started, call_done = threading.Event(), threading.Event()
    order: list[str] = []

    def work(decoder: EmbeddedDecoder) -> int:
        started.set()
        decoder.start(decoder.chat_prompt(QUESTION))
        call_done.wait(120)  # a completion is batched in its own context meanwhile
        order.append("first decoder")
        return backend.calls

    def second(decoder: EmbeddedDecoder) -> None:
        order.append("second decoder")

    decoding = asyncio.create_task(backend.with_decoder(work))
    await asyncio.to_thread(started.wait, 60)
    waiting = asyncio.create_task(backend.with_decoder(second))
    reply = await backend.complete(QUESTION, GenParams(max_tokens=2))
    call_done.set()
    assert reply.usage.output_tokens <= 2
    assert await decoding == 1  # the call finished while the decoder held its context
    await waiting
    assert order == ["first decoder", "second decoder"]
