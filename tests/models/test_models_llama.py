"""The embedded backend against the real SmolLM2-135M-Instruct GGUF."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from treadle.errors import ModelError
from treadle.runtime.models import GenParams, Message, load_model
from treadle.runtime.models.llama import LlamaBackend, file_identity

pytestmark = pytest.mark.model

GREEDY = GenParams(temperature=0.0, max_tokens=16)


def ask(text: str) -> list[Message]:
    return [Message(role="user", content=text)]


async def test_completion_has_text_and_usage(gguf_path: Path) -> None:
    model = load_model(None)
    assert isinstance(model, LlamaBackend) and model.path == gguf_path.resolve()
    result = await model.complete(ask("What is the capital of France?"), GREEDY)
    assert result.text.strip()
    assert result.usage.input_tokens > 5
    assert 0 < result.usage.output_tokens <= 16
    assert result.finish_reason in ("stop", "length")
    assert result.model == gguf_path.name and not result.cached


async def test_chat_template_is_applied(gguf_path: Path) -> None:
    model = LlamaBackend(gguf_path)
    result = await model.complete(ask("Say hi."), GREEDY)
    # SmolLM2's template wraps turns in <|im_start|>...<|im_end|>; the reply must not echo it
    assert "<|im_start|>" not in result.text and "<|im_end|>" not in result.text
    # its template adds a default system prompt, so the prompt is longer than the question
    assert result.usage.input_tokens > 20


async def test_greedy_calls_agree_and_seeds_reproduce(gguf_path: Path) -> None:
    model = LlamaBackend(gguf_path)
    a = await model.complete(ask("Name three colours."), GREEDY)
    b = await model.complete(ask("Name three colours."), GREEDY)
    assert a.text == b.text and a.usage == b.usage
    hot = GenParams(temperature=1.2, max_tokens=16, seed=7)
    s1 = await model.complete(ask("Write a word."), hot)
    s2 = await model.complete(ask("Write a word."), hot)
    assert s1.text == s2.text


async def test_stop_and_max_tokens(gguf_path: Path) -> None:
    model = LlamaBackend(gguf_path)
    r = await model.complete(ask("Count from 1 to 50, comma separated."), GenParams(max_tokens=8))
    assert r.usage.output_tokens == 8 and r.finish_reason == "length"
    r2 = await model.complete(
        ask("Count from 1 to 50, comma separated."), GenParams(max_tokens=32, stop=("5",))
    )
    assert "5" not in r2.text and r2.finish_reason == "stop"


async def test_a_grammar_constrains_the_reply_and_is_part_of_the_cache_key(
    gguf_path: Path, tmp_path: Path
) -> None:
    """`GenParams.grammar` (GBNF) goes to llama.cpp's grammar sampler: SmolLM2, which answers
    this in a sentence when free, can only say one of the grammar's words; through the
    evaluation's cached backend the constrained call is cached apart from the free one."""
    from treadle.runtime.cache import ModelCache
    from treadle.runtime.session import Session

    question = ask("Is Paris the capital of France? Answer in a full sentence.")
    choice = GenParams(max_tokens=8, grammar='root ::= "yes" | "no" | "maybe"')
    session = Session(model=None, cache=ModelCache(tmp_path / "c.sqlite"), sandbox="process")
    try:
        model = await session.model(None)  # the shared backend behind the cache, as rank uses it
        assert model.takes_grammar
        free = await model.complete(question, GenParams(max_tokens=8))
        constrained = await model.complete(question, choice)
        again = await model.complete(question, choice)
    finally:
        await session.aclose()
    assert free.text.strip() not in ("yes", "no", "maybe")
    assert constrained.text in ("yes", "no", "maybe") and not constrained.cached
    assert again.text == constrained.text and again.cached
    # llama-cpp-python would crash the process on a grammar that does not parse
    model = LlamaBackend(gguf_path)
    for bad in ("root ::= (", 'start ::= "yes"', "root ::= undefined_rule"):
        with pytest.raises(ModelError, match="not valid GBNF"):
            await model.complete(question, GenParams(max_tokens=4, grammar=bad))
    assert model.calls == 0
    assert (await model.complete(question, choice)).text in ("yes", "no", "maybe")


async def test_model_is_loaded_once_and_shared(gguf_path: Path) -> None:
    a, b = LlamaBackend(gguf_path), LlamaBackend(str(gguf_path))
    assert await a.load() is await b.load()
    assert a.model == b.model == file_identity(gguf_path.resolve())


async def test_concurrent_calls_are_decoded_together_and_all_complete(gguf_path: Path) -> None:
    model = LlamaBackend(gguf_path)
    engine = await model.batch_engine()
    ticks = 0

    async def heartbeat() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    beat = asyncio.create_task(heartbeat())
    steps = engine.steps
    questions = [f"What is {i} plus {i}?" for i in range(5)]
    results = await asyncio.gather(*(model.complete(ask(q), GREEDY) for q in questions))
    beat.cancel()
    assert all(r.text.strip() for r in results)
    # one at a time would take a prompt step plus a step per token for each call
    one_by_one = sum(1 + r.usage.output_tokens for r in results)
    assert engine.steps - steps < one_by_one / 2
    assert ticks > 5  # the event loop kept running while the model worked


async def test_cancelled_call_does_not_break_the_model(gguf_path: Path) -> None:
    model = LlamaBackend(gguf_path)
    await model.load()
    story = GenParams(max_tokens=24)
    running = asyncio.create_task(model.complete(ask("Tell a long story."), story))
    queued = asyncio.create_task(model.complete(ask("Tell another story."), story))
    await asyncio.sleep(0.05)
    running.cancel()
    queued.cancel()
    for task in (running, queued):
        with pytest.raises(asyncio.CancelledError):
            await task
    # the running generation finishes in its thread; the queued one never starts; the model
    # stays usable (a deadlock would hit the wait_for)
    after = await asyncio.wait_for(model.complete(ask("Say yes."), GREEDY), 300)
    assert after.text.strip()
    assert model.calls <= 2


async def test_a_different_file_has_a_different_identity(gguf_path: Path, tmp_path: Path) -> None:
    copy = tmp_path / gguf_path.name
    shutil.copyfile(gguf_path, copy)
    assert file_identity(copy) == file_identity(gguf_path.resolve())  # same bytes, same model
    with copy.open("r+b") as f:
        f.seek(copy.stat().st_size - 10)
        f.write(b"0123456789")
    assert file_identity(copy) != file_identity(gguf_path.resolve())


async def test_prompt_longer_than_the_context(gguf_path: Path) -> None:
    small = LlamaBackend(gguf_path, n_ctx=64)
    with pytest.raises(ModelError, match="context window of 64 tokens") as info:
        await small.complete(ask("word " * 100), GREEDY)
    assert not info.value.retryable
    # the model is still usable after the failure
    assert (await small.complete(ask("Hi"), GenParams(max_tokens=4))).text


async def test_missing_model_file(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"Model file not found: .*gone\.gguf"):
        LlamaBackend(tmp_path / "gone.gguf")


async def test_truncated_gguf_fails_to_load_clearly(gguf_path: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.gguf"
    with gguf_path.open("rb") as src:
        broken.write_bytes(src.read(1 << 20))
    model = LlamaBackend(broken)
    with pytest.raises(ModelError, match="could not load the model"):
        await model.complete(ask("hi"), GREEDY)


def test_threads_come_from_the_environment_when_not_given(
    gguf_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    monkeypatch.delenv("TREADLE_LLAMA_THREADS", raising=False)
    assert LlamaBackend(gguf_path).n_threads == (os.cpu_count() or 1)
    monkeypatch.setenv("TREADLE_LLAMA_THREADS", "1")
    assert LlamaBackend(gguf_path).n_threads == 1
    assert LlamaBackend(gguf_path, n_threads=3).n_threads == 3
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv("TREADLE_LLAMA_THREADS", bad)
        with pytest.raises(ModelError, match="TREADLE_LLAMA_THREADS"):
            LlamaBackend(gguf_path)
