"""Any OpenAI-compatible chat-completions server (vLLM, llama.cpp server, Ollama, OpenAI).

Servers fail in ordinary ways: they refuse connections while starting, hang under load, answer
429 with a Retry-After, or 5xx while a worker restarts. Those are retried with exponential
backoff and jitter (honouring Retry-After) up to a bound, then reported as a retryable
`ModelError`. A 4xx other than 429 means the request itself is wrong, so it is reported at once,
quoting the server's own message.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import os
import random
import socket
import time
from typing import TYPE_CHECKING, Any

from treadle.errors import ModelError
from treadle.runtime.models.base import (
    Completion,
    GenParams,
    Message,
    ModelBackend,
    Usage,
    refuse_grammar,
)

if TYPE_CHECKING:
    import httpx

DEFAULT_BASE_URL = "https://api.openai.com/v1"

_HINTS = {
    401: "Check the API key (the OPENAI_API_KEY environment variable or the api_key option).",
    403: "Check the API key and that it may use this model.",
    404: "Check the base URL (it usually ends in /v1) and the model name.",
}


class OpenAIBackend(ModelBackend):
    """Chat completions over httpx with rate limits, retries and one-paragraph errors."""

    backend = "openai"

    def __init__(
        self,
        base_url: str | None = None,
        model: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float = 120.0,
        connect_timeout: float = 10.0,
        max_retries: int = 4,
        backoff_base: float = 0.5,
        backoff_max: float = 20.0,
        max_retry_after: float = 60.0,
        rate_limit: int | None = None,
        rate_period: float = 1.0,
        max_concurrency: int = 4,
    ) -> None:
        base = (base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).strip()
        if not base.startswith(("http://", "https://")):
            raise ModelError(
                f"The model server URL {base!r} is not an http(s) URL. Write the spec as "
                "openai:http://HOST:PORT/v1#MODEL."
            )
        name = model or os.environ.get("OPENAI_MODEL")
        if not name:
            raise ModelError(
                f"No model name given for the server at {base}. Write the spec as "
                f"openai:{base}#MODEL (or set OPENAI_MODEL)."
            )
        self.base_url = base.rstrip("/")
        self.model_name = name
        self.model = f"{self.base_url}#{name}"
        self.url = f"{self.base_url}/chat/completions"
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.max_retry_after = max_retry_after
        self.max_concurrency = max_concurrency
        self.rate_limit = rate_limit
        self.rate_period = rate_period
        self._throttler: Any = None
        self._client: httpx.AsyncClient | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None
        #: HTTP requests sent (retries included)
        self.requests = 0

    def __repr__(self) -> str:
        return f"OpenAIBackend({self.model!r})"

    def _get_client(self) -> httpx.AsyncClient:
        """One client per event loop (an httpx client's connections belong to one loop)."""
        try:
            import httpx
        except ImportError as e:
            raise ModelError(
                "The OpenAI-compatible backend needs httpx, which is not installed. Install it "
                "with `pip install httpx asyncio-throttle` (or `pip install treadle[run]`)."
            ) from e

        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop or self._client.is_closed:
            headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
            self._client = httpx.AsyncClient(
                headers=headers,
                timeout=httpx.Timeout(
                    self.timeout, connect=min(self.connect_timeout, self.timeout)
                ),
                limits=httpx.Limits(max_connections=max(self.max_concurrency, 1) * 2),
            )
            self._client_loop = loop
        if self.rate_limit and self._throttler is None:
            from asyncio_throttle import Throttler

            self._throttler = Throttler(rate_limit=self.rate_limit, period=self.rate_period)
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def request_body(self, messages: list[Message], params: GenParams) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model_name,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_tokens": params.max_tokens,
        }
        if params.seed is not None:
            body["seed"] = params.seed
        if params.stop:
            body["stop"] = list(params.stop)
        if params.repeat_penalty is not None:  # llama.cpp's server and vLLM name it apart
            body["repeat_penalty"] = body["repetition_penalty"] = params.repeat_penalty
        return body

    async def complete(self, messages: list[Message], params: GenParams) -> Completion:
        refuse_grammar(self, params)
        client = self._get_client()
        import httpx

        body = self.request_body(messages, params)
        where = f"the model server at {self.url}"
        attempt = 0
        while True:
            delay: float | None = None
            try:
                self.requests += 1
                if self._throttler is not None:
                    async with self._throttler:
                        response = await client.post(self.url, json=body)
                else:
                    response = await client.post(self.url, json=body)
            except httpx.TimeoutException:
                failure = f"{where} did not answer within {self.timeout:g} s"
                advice = "It may be overloaded or hung; check it, or raise the timeout option."
            except httpx.ConnectError as e:
                failure = f"could not connect to {where} ({_reason(e)})"
                advice = "Is the server running, and are the host and port right?"
            except httpx.TransportError as e:
                failure = f"the connection to {where} broke ({_reason(e)})"
                advice = "Check the server's logs; it may have crashed or restarted."
            else:
                status = response.status_code
                if 200 <= status < 300:
                    return self._parse(response, where)
                message = _server_message(response)
                if status != 429 and status < 500:
                    raise ModelError(
                        f"Model call failed: {where} rejected the request with HTTP {status}: "
                        f"{message}. "
                        + _HINTS.get(status, "Check the model name and the request parameters."),
                        retryable=False,
                    )
                failure = f"{where} answered HTTP {status}: {message}"
                advice = (
                    "The server is rate-limiting; lower the concurrency or set a rate_limit."
                    if status == 429
                    else "The server has a problem; check its logs."
                )
                delay = _retry_after(response)
                if delay is not None and delay > self.max_retry_after:
                    raise ModelError(
                        f"Model call failed: {failure}, and asks to wait {delay:g} s before "
                        f"retrying, longer than the {self.max_retry_after:g} s treadle waits. "
                        f"{advice}",
                        retryable=True,
                    )
            if attempt >= self.max_retries:
                tries = f" (tried {attempt + 1} times)" if attempt else ""
                raise ModelError(f"Model call failed: {failure}{tries}. {advice}", retryable=True)
            if delay is None:
                cap = min(self.backoff_max, self.backoff_base * 2**attempt)
                delay = random.uniform(cap / 2, cap)  # jitter keeps retrying clients apart
            await asyncio.sleep(delay)
            attempt += 1

    def _parse(self, response: httpx.Response, where: str) -> Completion:
        try:
            data = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ModelError(
                f"Model call failed: {where} answered with something that is not JSON: "
                f"{_snippet(response.text)}. "
                "Check that the URL points at an OpenAI-compatible API (it usually ends in /v1).",
                retryable=False,
            ) from None
        try:
            choice = data["choices"][0]
            content = choice["message"].get("content") or ""
            if not isinstance(content, str):
                raise TypeError("content is not text")
            usage = data.get("usage") or {}
            return Completion(
                text=content,
                usage=Usage(
                    input_tokens=int(usage.get("prompt_tokens") or 0),
                    output_tokens=int(usage.get("completion_tokens") or 0),
                ),
                finish_reason=choice.get("finish_reason") or "stop",
                model=str(data.get("model") or self.model_name),
            )
        except (KeyError, IndexError, TypeError, AttributeError, ValueError):
            raise ModelError(
                f"Model call failed: {where} answered JSON that is not a chat completion: "
                f"{_snippet(response.text)}. "
                "Check that the URL points at an OpenAI-compatible chat completions API.",
                retryable=False,
            ) from None


def _reason(e: Exception) -> str:
    """The underlying cause in plain words (httpx wraps "connection refused" in a vaguer text)."""
    seen: BaseException | None = e
    while seen is not None:
        if isinstance(seen, ConnectionRefusedError):
            return "connection refused"
        if isinstance(seen, socket.gaierror):
            return f"the host name could not be resolved: {seen.strerror}"
        if isinstance(seen, OSError) and seen.strerror:
            return seen.strerror
        seen = seen.__cause__ or seen.__context__
    text = str(e) or type(e).__name__
    return "connection refused" if "refused" in text.lower() else text


def _snippet(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= limit else text[:limit] + "…") if text else "an empty body"


def _server_message(response: httpx.Response) -> str:
    """The server's own explanation: OpenAI's error.message, FastAPI's detail, or the text."""
    try:
        data = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return _snippet(response.text)
    if isinstance(data, dict):
        err = data.get("error", data.get("detail", data.get("message")))
        if isinstance(err, dict):
            err = err.get("message", err)
        if err is not None:
            return _snippet(err if isinstance(err, str) else json.dumps(err))
    return _snippet(response.text)


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date), if any."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
