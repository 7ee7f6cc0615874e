"""A content-addressed, on-disk cache of model completions.

A call is identified by what determines its answer: the backend, the model's identity (for a
GGUF a hash of the file, for a server its URL and model name), the messages, every sampling
parameter including the seed, and, for sampled calls, the sample index. A deterministic call
(temperature 0 or a fixed seed) whose key is stored is answered from disk, which makes re-runs
free and reproducible. The store is SQLite in WAL mode: safe for many tasks in one process and
for several processes sharing a cache directory.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from treadle.runtime.models.base import (
    Completion,
    GenParams,
    Message,
    ModelBackend,
    WrappedBackend,
)

log = logging.getLogger(__name__)

#: bump when the key recipe or stored format changes, so old entries simply miss
KEY_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS completions (
    key TEXT PRIMARY KEY,
    backend TEXT NOT NULL,
    model TEXT NOT NULL,
    completion TEXT NOT NULL,
    created REAL NOT NULL
)
"""


def default_cache_dir() -> Path:
    """$TREADLE_CACHE_DIR, else $XDG_CACHE_HOME/treadle, else ~/.cache/treadle."""
    env = os.environ.get("TREADLE_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "treadle"


def key_for(
    backend: ModelBackend | tuple[str, str],
    messages: list[Message],
    params: GenParams,
    extra: Any = None,
) -> str:
    """The sha256 of the canonical JSON of everything that determines a completion.

    `backend` is a backend or a (backend kind, model identity) pair; `extra` is any JSON value
    that must also tell calls apart (the sample index of a seeded sampled call, a grammar).
    """
    kind, model = (
        backend if isinstance(backend, tuple) else (backend.backend, backend.cache_identity)
    )
    payload = {
        "v": KEY_VERSION,
        "backend": kind,
        "model": model,
        "messages": [[m.role, m.content] for m in messages],
        # a call without a grammar or a repeat penalty keeps the key it had before calls
        # could have them
        "params": params.model_dump(mode="json", exclude=params.unset_extras()),
        "extra": extra,
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


class ModelCache:
    """Completions by key, in one SQLite file. A broken cache never fails a run: it logs a
    warning and behaves as empty."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        p = Path(path).expanduser() if path is not None else default_cache_dir() / "models.sqlite"
        if p.is_dir():
            p = p / "models.sqlite"
        self.path = p
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._broken = False

    def _connect(self) -> sqlite3.Connection | None:
        if self._conn is not None or self._broken:
            return self._conn
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=30.0, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(_SCHEMA)
            conn.commit()
        except (OSError, sqlite3.Error) as e:
            self._disable(f"cannot open {self.path}: {e}")
            return None
        self._conn = conn
        return conn

    def _disable(self, why: str) -> None:
        self._broken = True
        log.warning(
            "treadle model cache disabled (%s); calls will go to the model. Delete the file or "
            "set TREADLE_CACHE_DIR to a writable directory to fix it.",
            why,
        )

    def get(self, key: str) -> Completion | None:
        """The stored completion for `key` (marked `cached=True`), or None."""
        with self._lock:
            conn = self._connect()
            if conn is None:
                return None
            try:
                row = conn.execute(
                    "SELECT completion FROM completions WHERE key = ?", (key,)
                ).fetchone()
            except sqlite3.Error as e:
                self._disable(f"read failed: {e}")
                return None
        if row is None:
            self.misses += 1
            return None
        try:
            completion = Completion.model_validate_json(row[0])
        except ValueError:
            self.misses += 1
            return None
        self.hits += 1
        return completion.model_copy(update={"cached": True})

    def put(self, key: str, completion: Completion, *, backend: str = "", model: str = "") -> None:
        """Store `completion` under `key` (last writer wins; equal keys mean equal answers)."""
        data = completion.model_copy(update={"cached": False}).model_dump_json()
        with self._lock:
            conn = self._connect()
            if conn is None:
                return
            try:
                with conn:
                    conn.execute(
                        "INSERT OR REPLACE INTO completions VALUES (?, ?, ?, ?, ?)",
                        (key, backend, model, data, time.time()),
                    )
            except sqlite3.Error as e:
                self._disable(f"write failed: {e}")

    def __len__(self) -> int:
        with self._lock:
            conn = self._connect()
            if conn is None:
                return 0
            return int(conn.execute("SELECT COUNT(*) FROM completions").fetchone()[0])

    def clear(self) -> None:
        with self._lock:
            conn = self._connect()
            if conn is not None:
                with conn:
                    conn.execute("DELETE FROM completions")

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


class CachedModel(WrappedBackend):
    """A backend wrapped with the cache: deterministic calls are answered from disk when they
    can be, and identical calls in flight at the same time share one model call.

    `enabled=False` (the CLI's `--no-cache`) bypasses the cache for reads and writes.
    """

    def __init__(
        self, inner: ModelBackend, cache: ModelCache | None = None, *, enabled: bool = True
    ) -> None:
        self.inner = inner
        self._cache = cache
        self.enabled = enabled
        #: calls that reached the inner backend
        self.model_calls = 0
        #: calls answered from the cache (or by sharing a call in flight)
        self.cache_hits = 0
        #: input + output tokens of every call, a cache hit counted at its tokens (what a fresh
        #: run spends: a token budget that counts this is the same on a re-run)
        self.tokens = 0
        self._inflight: dict[str, asyncio.Future[Completion]] = {}

    def __repr__(self) -> str:
        return f"CachedModel({self.inner!r})"

    @property
    def cache(self) -> ModelCache:
        """The store (the default on-disk cache when none was given, opened on first use: a
        disabled cache never touches the disk)."""
        if self._cache is None:
            self._cache = ModelCache()
        return self._cache

    def key(self, messages: list[Message], params: GenParams, sample: int = 0) -> str:
        # at temperature 0 every sample is the same answer, so samples share one entry
        extra = {"sample": sample} if params.temperature > 0 else None
        return key_for(self.inner, messages, params, extra)

    async def complete(
        self, messages: list[Message], params: GenParams, *, sample: int = 0
    ) -> Completion:
        """Like `ModelBackend.complete`; `sample` numbers the samples of one seeded call."""
        completion = await self._complete(messages, params, sample)
        self.tokens += completion.usage.input_tokens + completion.usage.output_tokens
        return completion

    async def _complete(
        self, messages: list[Message], params: GenParams, sample: int
    ) -> Completion:
        if not (self.enabled and params.deterministic):
            self.model_calls += 1
            return await self.inner.complete(messages, params)
        key = self.key(messages, params, sample)
        while True:
            hit = self.cache.get(key)
            if hit is not None:
                self.cache_hits += 1
                return hit
            pending = self._inflight.get(key)
            if pending is None:
                break
            await asyncio.wait([pending])
            if pending.cancelled():
                continue  # its caller gave up; try again ourselves
            error = pending.exception()
            if error is not None:
                raise error
            self.cache_hits += 1
            return pending.result().model_copy(update={"cached": True})
        future: asyncio.Future[Completion] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            self.model_calls += 1
            completion = await self.inner.complete(messages, params)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as e:
            future.set_exception(e)
            future.exception()  # mark retrieved: nobody may be waiting
            raise
        else:
            self.cache.put(key, completion, backend=self.backend, model=self.model)
            future.set_result(completion)
            return completion
        finally:
            del self._inflight[key]

    async def aclose(self) -> None:
        await self.inner.aclose()
