"""A `Session` owns what runs share: model backends (one per spec), the cache, one sandbox
(a Docker warm pool) and the backends' concurrency limits.

One mechanism for every caller: `Flow.run` opens a private session when it is given none, and
an evaluation, a reward batch, an attribution or a ranking opens one session and runs every
row in it, so they all reach the same backend objects, the same cache and the same pool. Like
httpx's `Client`, it is the one owner of these resources; a run is a view of it.

    async with Session(model="openai:http://127.0.0.1:8080/v1#m") as session:
        for row in rows:
            await flow.run(row, session=session)

Nothing is opened before it is needed: a session whose runs make no model call loads no model,
and one whose runs execute no code never starts Docker.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import uuid
import weakref
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from treadle.errors import InputError, SandboxError
from treadle.runtime.models.base import Completion, GenParams, Message, ModelBackend, WrappedBackend
from treadle.runtime.sandbox.base import ExecResult, Limits, Sandbox

if TYPE_CHECKING:
    from treadle.runtime.cache import CachedModel, ModelCache

SandboxFactory = Callable[[], Sandbox | Awaitable[Sandbox]]
SandboxKind = Literal["docker", "process"]
Isolation = Literal["fresh", "reset"]


@dataclass(frozen=True)
class SandboxConfig:
    """Which sandbox runs model-written code, checked once where it is built.

    `kind`: "docker" (the default) or "process" (no isolation at all: an explicit opt-in for
    machines without Docker). `isolation`: the Docker sandbox's "reset" (None: its default; a
    container is reused after a verified reset) or "fresh" (a new container for every run).
    `pool_size`: warm containers kept ready. `limits`: per-run resource limits (None: the
    sandbox's defaults).
    """

    kind: SandboxKind = "docker"
    isolation: Isolation | None = None
    pool_size: int = 2
    limits: Limits | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("docker", "process"):
            raise InputError(f"--sandbox is docker or process, got {self.kind!r}.")
        if self.isolation not in (None, "fresh", "reset"):
            raise InputError(f"--isolation is fresh or reset, got {self.isolation!r}.")
        if self.pool_size < 1:
            raise InputError(f"the sandbox pool needs at least 1 container, got {self.pool_size}.")

    @classmethod
    def of(cls, value: SandboxConfig | str | None, isolation: str | None = None) -> SandboxConfig:
        """A config from the short forms callers use: None, "docker", "process"."""
        if isinstance(value, SandboxConfig):
            if isolation is None or isolation == value.isolation:
                return value
            return cls(value.kind, isolation, value.pool_size, value.limits)  # type: ignore[arg-type]
        return cls(value or "docker", isolation)  # type: ignore[arg-type]


SandboxSource = SandboxConfig | Sandbox | SandboxFactory | str | None


def model_label(model: str | ModelBackend | None) -> str | None:
    """A model as results files and traces name it: its spec, or for a backend object its kind
    and everything that decides its replies (so a resumed run tells two scripts apart)."""
    if model is None or isinstance(model, str):
        return model
    return f"{model.backend}:{model.cache_identity}"


def check_specs(specs: Iterable[str | ModelBackend | None], given: Iterable[str] = ()) -> None:
    """Read every spec a run will load, now (`ModelSpecError`, the user's input, for one that
    names no model), so a typo is found before any work rather than in the first step; the
    specs of `given` backends, None (the default model) and backend objects need no reading."""
    from treadle.runtime.models.spec import parse_spec

    ready = set(given)
    for spec in specs:
        if isinstance(spec, str) and spec not in ready:
            parse_spec(spec)


#: one semaphore per backend object and event loop, so sessions that share a backend object
#: (an agent passing the same `model=` to many runs) share its limit too
_SLOTS: weakref.WeakKeyDictionary[ModelBackend, dict[int, asyncio.Semaphore]] = (
    weakref.WeakKeyDictionary()
)


def _slots_for(backend: ModelBackend, limit: int) -> asyncio.Semaphore:
    loop_id = id(asyncio.get_running_loop())
    try:
        per_loop = _SLOTS.setdefault(backend, {})
    except TypeError:  # a backend that cannot be weakly referenced: a limit per session
        return asyncio.Semaphore(limit)
    slots = per_loop.get(loop_id)
    if slots is None:
        per_loop.clear()  # the loops of earlier `run_sync` calls are gone
        slots = per_loop[loop_id] = asyncio.Semaphore(limit)
    return slots


class _Limited(WrappedBackend):
    """A backend behind a semaphore sized by its `max_concurrency`; it sits under the cache, so
    cache hits never wait for a slot."""

    def __init__(self, inner: ModelBackend) -> None:
        self.inner = inner
        self._limit = max(1, int(inner.max_concurrency or 1))
        self._slots = _slots_for(inner, self._limit)

    @property
    def max_concurrency(self) -> int:  # type: ignore[override]
        return self._limit

    async def complete(self, messages: list[Message], params: GenParams) -> Completion:
        async with self._slots:
            return await self.inner.complete(messages, params)


class _Plain(WrappedBackend):
    """A `CachedModel` seen as a plain backend (its `complete` takes an extra `sample`), for
    callers outside a step: a judge scorer, a ranking's self-prediction."""

    def __init__(self, inner: CachedModel) -> None:
        self.inner = inner


class _CountingSandbox(Sandbox):
    """The session's sandbox, opened on the first run that needs it; counts runs."""

    def __init__(self, session: Session) -> None:
        self._session = session

    async def run(
        self,
        command: list[str],
        *,
        files: dict[str, bytes] | None = None,
        stdin: bytes | None = None,
        limits: Limits | None = None,
    ) -> ExecResult:
        inner = await self._session._open_sandbox()
        self._session.sandbox_runs += 1
        return await inner.run(command, files=files, stdin=stdin, limits=limits)

    async def aclose(self) -> None:
        """The session owns the sandbox: a caller closing its view must not stop it."""


class Session:
    """The resources runs share. An async context manager; `aclose()` closes what it opened.

    `model`: the default model, a spec string (None: the embedded SmolLM2) or a ready backend.
    `models`: ready backends for further specs that steps name (tests, embedding agents); any
    other spec is loaded with `load_model` on first use and kept for the session's life.
    `cache`: True (the on-disk cache), False (off), or a `ModelCache`. `sandbox`: a
    `SandboxConfig`, "docker"/"process", a ready `Sandbox` (the caller keeps owning it) or a
    factory. `name` labels the session's containers.
    """

    def __init__(
        self,
        *,
        model: str | ModelBackend | None = None,
        models: Mapping[str, ModelBackend] | None = None,
        cache: bool | ModelCache = True,
        sandbox: SandboxSource = None,
        name: str | None = None,
    ) -> None:
        self.default_model = model
        self._given: dict[str, ModelBackend] = dict(models or {})
        self.check_specs([model] if isinstance(model, str) else [])
        self._cache_setting = cache
        self._cache: ModelCache | None = None
        self._raw: dict[str | None, ModelBackend] = {}
        self._backends: dict[str | None, CachedModel] = {}
        self._owned: list[ModelBackend] = []
        self._load_lock = threading.Lock()  # loads run in worker threads
        self._sandbox_source = sandbox if sandbox is not None else SandboxConfig()
        if isinstance(self._sandbox_source, str):
            self._sandbox_source = SandboxConfig.of(self._sandbox_source)
        self._sandbox: Sandbox | None = None
        self._sandbox_owned = False
        self._sandbox_lock: asyncio.Lock | None = None
        self._view = _CountingSandbox(self)
        self.name = name or f"session-{uuid.uuid4().hex[:8]}"
        #: sandbox runs made through this session
        self.sandbox_runs = 0
        self.closed = False

    async def __aenter__(self) -> Session:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ------------------------------------------------------------ description

    @property
    def model_name(self) -> str | None:
        """The default model as results files and traces name it."""
        return model_label(self.default_model)

    @property
    def sandbox_kind(self) -> str:
        source = self._sandbox_source
        return source.kind if isinstance(source, SandboxConfig) else "custom"

    @property
    def isolation(self) -> str | None:
        source = self._sandbox_source
        return source.isolation if isinstance(source, SandboxConfig) else None

    @property
    def cache_enabled(self) -> bool:
        return self._cache_setting is not False and self._cache_setting is not None

    # ------------------------------------------------------------ models

    @property
    def cache(self) -> ModelCache | None:
        """The one `ModelCache` (None with caching off); opened on first use."""
        if not self.cache_enabled:
            return None
        if self._cache is None:
            from treadle.runtime.cache import ModelCache

            setting = self._cache_setting
            self._cache = setting if isinstance(setting, ModelCache) else ModelCache()
        return self._cache

    async def backend(self, spec: str | None = None) -> CachedModel:
        """The backend for `spec` (None: the default model) behind its concurrency limit and
        the cache: one object per spec for the session's life."""
        found = self._backends.get(spec)
        if found is not None:
            return found
        raw = await self.raw_backend(spec)
        found = self._backends.get(spec)
        if found is None:
            from treadle.runtime.cache import CachedModel

            cache = self.cache
            limited = _Limited(raw)
            found = (
                CachedModel(limited, enabled=False)
                if cache is None
                else CachedModel(limited, cache)
            )
            self._backends[spec] = found
        return found

    @property
    def tokens(self) -> int:
        """Input + output tokens of every model call made through this session so far (cache
        hits counted at their tokens), scorers' judges included."""
        return sum(b.tokens for b in self._backends.values())

    async def model(self, spec: str | None = None) -> ModelBackend:
        """`backend(spec)` with the plain `ModelBackend` interface."""
        return _Plain(await self.backend(spec))

    async def raw_backend(self, spec: str | None = None) -> ModelBackend:
        """The backend itself, without limit or cache (loaded once)."""
        found = self._raw.get(spec)
        if found is not None:
            return found
        if spec is None and isinstance(self.default_model, ModelBackend):
            return self._raw.setdefault(None, self.default_model)
        key = self.default_model if spec is None else spec
        if isinstance(key, str) and key in self._given:
            return self._raw.setdefault(spec, self._given[key])
        # building a backend can hash a multi-GB file: keep the loop free
        return await asyncio.to_thread(self._load, spec, key)

    def _load(self, spec: str | None, key: str | ModelBackend | None) -> ModelBackend:
        assert key is None or isinstance(key, str)
        with self._load_lock:
            found = self._raw.get(spec)
            if found is None:
                from treadle.runtime.models.spec import load_model

                found = load_model(key)
                self._owned.append(found)
                self._raw[spec] = found
        return found

    def check_specs(self, specs: Iterable[str]) -> None:
        """`check_specs` for the specs this session would load (not the backends it was given)."""
        check_specs(specs, self._given)

    # ------------------------------------------------------------ sandbox

    def sandbox(self) -> Sandbox:
        """The session's sandbox as runs see it (opened by the first run that needs it)."""
        return self._view

    async def _open_sandbox(self) -> Sandbox:
        if self._sandbox is not None:
            return self._sandbox
        if self._sandbox_lock is None:
            self._sandbox_lock = asyncio.Lock()
        async with self._sandbox_lock:
            if self._sandbox is None:
                self._sandbox = await self._make_sandbox()
        return self._sandbox

    async def _make_sandbox(self) -> Sandbox:
        if self.closed:
            raise SandboxError("the session is closed; open a new one to run code")
        source = self._sandbox_source
        if isinstance(source, Sandbox):
            return source
        self._sandbox_owned = True
        if isinstance(source, SandboxConfig):
            from treadle.runtime.sandbox import open_sandbox

            return await open_sandbox(
                source.kind,
                source.limits,
                pool_size=source.pool_size,
                run_id=self.name,
                isolation=source.isolation,
            )
        assert source is not None and not isinstance(source, str)
        made = source()
        if inspect.isawaitable(made):
            made = await made
        if not isinstance(made, Sandbox):
            raise SandboxError(f"the sandbox factory returned {type(made).__name__}, not a Sandbox")
        return made

    # ------------------------------------------------------------ the end

    async def aclose(self) -> None:
        """Close what this session opened (its sandbox, the backends it loaded, its cache)."""
        self.closed = True
        errors: list[BaseException] = []
        if self._sandbox is not None and self._sandbox_owned:
            try:
                await self._sandbox.aclose()
            except Exception as e:  # a failed cleanup must not hide the runs' results
                errors.append(e)
        self._sandbox = None
        for backend in self._owned:
            try:
                await backend.aclose()
            except Exception as e:
                errors.append(e)
        self._owned.clear()
        self._raw.clear()
        self._backends.clear()
        if self._cache is not None and self._cache is not self._cache_setting:
            self._cache.close()
        self._cache = None


__all__ = [
    "Isolation",
    "SandboxConfig",
    "SandboxFactory",
    "SandboxKind",
    "Session",
    "check_specs",
    "model_label",
]
