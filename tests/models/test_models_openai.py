"""The OpenAI-compatible backend: against llama-cpp-python's real server, and against tiny
fault servers on 127.0.0.1 for refused connections, hangs, 5xx, 429, 4xx and garbage."""

from __future__ import annotations

import email.utils
import time
from typing import Any

import pytest

from treadle.errors import ModelError
from treadle.runtime.models import GenParams, Message, load_model
from treadle.runtime.models.openai import OpenAIBackend

P = GenParams(temperature=0.0, max_tokens=16)
Q = [Message(role="user", content="What is the capital of France?")]


def fast(url: str, **options: Any) -> OpenAIBackend:
    """A backend with short backoffs, so fault tests stay quick."""
    options = {"backoff_base": 0.05, "backoff_max": 0.2, "timeout": 5.0, **options}
    return OpenAIBackend(url, "fake", api_key="", **options)


@pytest.mark.model
async def test_real_llama_cpp_server(llama_server: str) -> None:
    model = load_model(f"openai:{llama_server}#smollm2")
    try:
        result = await model.complete(Q, P)
        again = await model.complete(Q, P)
    finally:
        await model.aclose()
    assert result.text.strip()
    assert result.usage.input_tokens > 5 and 0 < result.usage.output_tokens <= 16
    assert result.finish_reason in ("stop", "length")
    assert again.text == result.text


@pytest.mark.model
async def test_real_server_rejects_an_oversized_prompt(llama_server: str) -> None:
    model = OpenAIBackend(llama_server, "smollm2", max_retries=0)
    huge = [Message(role="user", content="word " * 5000)]  # more than the server's 2048 ctx
    with pytest.raises(ModelError, match="rejected the request with HTTP 400") as info:
        await model.complete(huge, P)
    assert not info.value.retryable
    await model.aclose()


async def test_refused_connection_names_the_url(unused_port: int) -> None:
    url = f"http://127.0.0.1:{unused_port}/v1"
    model = fast(url, max_retries=2)
    with pytest.raises(ModelError) as info:
        await model.complete(Q, P)
    message = info.value.message
    assert f"{url}/chat/completions" in message and "connection refused" in message
    assert "tried 3 times" in message and "Is the server running" in message
    assert info.value.retryable and model.requests == 3


async def test_hanging_server_times_out(fault_server: Any) -> None:
    async with fault_server("hang") as server:
        model = fast(server.url, timeout=0.5, max_retries=0)
        start = time.monotonic()
        with pytest.raises(ModelError, match=r"did not answer within 0\.5 s") as info:
            await model.complete(Q, P)
        elapsed = time.monotonic() - start
        await model.aclose()
    assert 0.45 <= elapsed < 3
    assert info.value.retryable and server.url in info.value.message


async def test_500_then_200_is_retried(fault_server: Any, ok: Any) -> None:
    async with fault_server((500, {}, "oops"), ok("Paris", 9, 2)) as server:
        model = fast(server.url)
        result = await model.complete(Q, P)
        await model.aclose()
    assert result.text == "Paris" and result.usage.input_tokens == 9
    assert result.usage.output_tokens == 2 and result.model == "fake"
    assert len(server.requests) == 2
    body = server.requests[1][1]
    assert body["model"] == "fake" and body["messages"][0]["content"] == Q[0].content
    assert body["max_tokens"] == 16 and body["temperature"] == 0.0


async def test_429_retry_after_is_honoured(fault_server: Any, ok: Any) -> None:
    limited = (429, {"Retry-After": "1"}, {"error": {"message": "slow down"}})
    async with fault_server(limited, ok()) as server:
        model = fast(server.url)
        start = time.monotonic()
        result = await model.complete(Q, P)
        await model.aclose()
    (first, _), (second, _) = server.requests
    assert result.text == "hello"
    assert second - first >= 0.95 and time.monotonic() - start >= 0.95


def http_date(seconds_from_now: float) -> str:
    return email.utils.formatdate(time.time() + seconds_from_now, usegmt=True)


async def test_429_retry_after_as_an_http_date(fault_server: Any, ok: Any) -> None:
    wall_minus_monotonic = time.time() - time.monotonic()
    target = int(time.time()) + 3  # an HTTP date has whole seconds
    date = email.utils.formatdate(target, usegmt=True)
    limited = (429, {"Retry-After": date}, {"error": {"message": "slow down"}})
    async with fault_server(limited, ok()) as server:
        model = fast(server.url, backoff_base=0.01, backoff_max=0.01)
        result = await model.complete(Q, P)
        await model.aclose()
    (first, _), (second, _) = server.requests
    assert result.text == "hello"
    # the retry waits for the date (the 0.01 s backoff alone would retry at once)
    assert first + wall_minus_monotonic < target - 1
    assert target - 0.05 <= second + wall_minus_monotonic < target + 2


async def test_retry_after_date_in_the_past_retries_at_once(fault_server: Any, ok: Any) -> None:
    stale = (503, {"Retry-After": http_date(-3600)}, "busy")
    async with fault_server(stale, ok()) as server:
        model = fast(server.url, backoff_base=5, backoff_max=5)  # the date wins over backoff
        result = await model.complete(Q, P)
        await model.aclose()
    (first, _), (second, _) = server.requests
    assert result.text == "hello" and second - first < 1.0


async def test_excessive_retry_after_date_fails_at_once(fault_server: Any) -> None:
    async with fault_server((429, {"Retry-After": http_date(7200)}, "busy")) as server:
        model = fast(server.url, max_retry_after=5)
        with pytest.raises(ModelError, match=r"asks to wait 7\d{3}(\.\d+)? s") as info:
            await model.complete(Q, P)
        await model.aclose()
    assert info.value.retryable and len(server.requests) == 1


async def test_unreadable_retry_after_falls_back_to_backoff(fault_server: Any, ok: Any) -> None:
    async with fault_server((503, {"Retry-After": "soon"}, "busy"), ok()) as server:
        model = fast(server.url, backoff_base=0.05, backoff_max=0.05)
        result = await model.complete(Q, P)
        await model.aclose()
    (first, _), (second, _) = server.requests
    assert result.text == "hello" and 0.02 <= second - first < 1.0


async def test_excessive_retry_after_fails_at_once(fault_server: Any) -> None:
    async with fault_server((429, {"Retry-After": "3600"}, "busy")) as server:
        model = fast(server.url, max_retry_after=5)
        with pytest.raises(ModelError, match="asks to wait 3600 s") as info:
            await model.complete(Q, P)
        await model.aclose()
    assert info.value.retryable and len(server.requests) == 1


async def test_persistent_503_gives_up_retryable(fault_server: Any) -> None:
    async with fault_server((503, {}, {"detail": "warming up"})) as server:
        model = fast(server.url, max_retries=2)
        with pytest.raises(ModelError, match=r"HTTP 503: 'warming up' \(tried 3 times\)") as info:
            await model.complete(Q, P)
        await model.aclose()
    assert info.value.retryable and len(server.requests) == 3


async def test_400_is_not_retried_and_quotes_the_server(fault_server: Any) -> None:
    bad = (400, {}, {"error": {"message": "max_tokens is too large", "type": "invalid"}})
    async with fault_server(bad) as server:
        model = fast(server.url)
        with pytest.raises(ModelError) as info:
            await model.complete(Q, P)
        await model.aclose()
    assert "HTTP 400: 'max_tokens is too large'" in info.value.message
    assert not info.value.retryable and len(server.requests) == 1


async def test_401_hints_at_the_key(fault_server: Any) -> None:
    async with fault_server((401, {}, {"error": {"message": "bad key"}})) as server:
        model = OpenAIBackend(server.url, "m", api_key="sk-wrong")
        with pytest.raises(ModelError, match="OPENAI_API_KEY"):
            await model.complete(Q, P)
        await model.aclose()


async def test_garbage_json_is_a_model_error(fault_server: Any) -> None:
    async with fault_server((200, {"Content-Type": "application/json"}, "{not json")) as server:
        model = fast(server.url)
        with pytest.raises(ModelError, match=r"not JSON: '\{not json'") as info:
            await model.complete(Q, P)
        await model.aclose()
    assert "/v1" in info.value.message


async def test_json_that_is_not_a_completion(fault_server: Any) -> None:
    async with fault_server((200, {}, {"choices": []})) as server:
        model = fast(server.url)
        with pytest.raises(ModelError, match="not a chat completion"):
            await model.complete(Q, P)
        await model.aclose()


async def test_rate_limit_spaces_requests(fault_server: Any, ok: Any) -> None:
    async with fault_server(ok()) as server:
        model = fast(server.url, rate_limit=2, rate_period=0.5)
        for _ in range(5):
            await model.complete(Q, P)
        await model.aclose()
    times = [t for t, _ in server.requests]
    assert len(times) == 5
    assert times[4] - times[0] >= 0.9  # 2 per 0.5 s: requests 3 and 5 each wait a period


async def test_key_and_seed_are_sent(fault_server: Any, ok: Any) -> None:
    async with fault_server(ok()) as server:
        model = OpenAIBackend(server.url, "m", api_key="sk-123")
        await model.complete(Q, GenParams(seed=42, stop=("\n",), temperature=0.7))
        await model.aclose()
    body = server.requests[0][1]
    assert server.headers[0]["authorization"] == "Bearer sk-123"
    assert body["seed"] == 42 and body["stop"] == ["\n"] and body["temperature"] == 0.7


async def test_a_grammar_is_refused_before_any_request(fault_server: Any, ok: Any) -> None:
    """An OpenAI-compatible server may ignore or reject a grammar field: the backend refuses
    the call instead (`takes_grammar` is False), and nothing is sent."""
    async with fault_server(ok("0.5")) as server:
        model = OpenAIBackend(server.url, "m", api_key="")
        assert model.takes_grammar is False
        with pytest.raises(ModelError, match="cannot constrain"):
            await model.complete(
                [Message(role="user", content="p?")], GenParams(grammar='root ::= "1"')
            )
        await model.aclose()
    assert server.requests == []
