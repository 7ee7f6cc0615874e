"""The content-addressed completion cache and the CachedModel wrapper."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from treadle.errors import ModelError
from treadle.runtime.cache import CachedModel, ModelCache, default_cache_dir, key_for
from treadle.runtime.models import Completion, GenParams, Message, Usage
from treadle.runtime.models.llama import LlamaBackend
from treadle.runtime.models.scripted import ScriptedBackend

M = [Message(role="user", content="2+2?")]
P = GenParams(temperature=0.0, max_tokens=16)
C = Completion(text="4", usage=Usage(input_tokens=3, output_tokens=1), model="m")


def test_key_distinguishes_everything_that_matters() -> None:
    base = key_for(("llama", "a.gguf:1:ff"), M, P)
    assert base == key_for(("llama", "a.gguf:1:ff"), list(M), GenParams(max_tokens=16))
    others = {
        key_for(("openai", "a.gguf:1:ff"), M, P),
        key_for(("llama", "b.gguf:1:ee"), M, P),
        key_for(("llama", "a.gguf:1:ff"), [Message(role="user", content="2+3?")], P),
        key_for(("llama", "a.gguf:1:ff"), [Message(role="system", content="2+2?")], P),
        key_for(("llama", "a.gguf:1:ff"), M, GenParams(max_tokens=17)),
        key_for(("llama", "a.gguf:1:ff"), M, GenParams(max_tokens=16, seed=1)),
        key_for(("llama", "a.gguf:1:ff"), M, GenParams(max_tokens=16, seed=2)),
        key_for(("llama", "a.gguf:1:ff"), M, GenParams(max_tokens=16, stop=("x",))),
        key_for(("llama", "a.gguf:1:ff"), M, P, extra={"sample": 1}),
        key_for(("llama", "a.gguf:1:ff"), M, GenParams(max_tokens=16, grammar='root ::= "4"')),
        key_for(("llama", "a.gguf:1:ff"), M, GenParams(max_tokens=16, grammar='root ::= "5"')),
    }
    assert base not in others and len(others) == 11
    assert len(base) == 64


def test_a_call_without_a_grammar_keeps_its_key() -> None:
    """Calls could not have a grammar before: without one, the key is the one written to
    existing caches (the canonical payload spelled out here), so they stay valid."""
    import hashlib
    import json

    payload = {
        "v": 1, "backend": "llama", "model": "a.gguf:1:ff", "messages": [["user", "2+2?"]],
        "params": {"temperature": 0.0, "max_tokens": 16, "top_p": 1.0, "seed": None, "stop": []},
        "extra": None,
    }  # fmt: skip
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert key_for(("llama", "a.gguf:1:ff"), M, P) == hashlib.sha256(text.encode()).hexdigest()


async def test_wrappers_report_what_the_backend_under_them_takes(tmp_path: Path) -> None:
    """The cache and the evaluation's shared backends pass `takes_grammar` through, so a
    caller asking whether it may constrain a reply sees the real backend's answer."""
    from treadle.runtime.session import Session

    class Constraining(ScriptedBackend):
        takes_grammar = True

    for inner, takes in ((ScriptedBackend(["4"]), False), (Constraining(["4"]), True)):
        cached = CachedModel(inner, ModelCache(tmp_path / "c.sqlite"))
        assert (cached.takes_grammar, cached.backend, cached.model) == (
            takes, inner.backend, inner.model
        )  # fmt: skip
        session = Session(model=inner, cache=ModelCache(tmp_path / "e.sqlite"), sandbox="process")
        try:
            assert (await session.backend()).takes_grammar is takes
            assert (await session.model()).takes_grammar is takes
        finally:
            await session.aclose()


def test_hit_miss_and_persistence(tmp_path: Path) -> None:
    cache = ModelCache(tmp_path / "c.sqlite")
    key = key_for(("scripted", "s"), M, P)
    assert cache.get(key) is None
    cache.put(key, C)
    hit = cache.get(key)
    assert hit is not None and hit.cached and hit.text == "4" and hit.usage == C.usage
    assert cache.get(key_for(("scripted", "s"), M, GenParams(seed=3))) is None
    assert (cache.hits, cache.misses) == (1, 2)
    cache.close()
    again = ModelCache(tmp_path / "c.sqlite")
    assert again.get(key) == hit and len(again) == 1
    again.clear()
    assert again.get(key) is None


def test_default_location(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TREADLE_CACHE_DIR", str(tmp_path / "tc"))
    assert default_cache_dir() == tmp_path / "tc"
    cache = ModelCache()
    cache.put("k", C)
    assert (tmp_path / "tc" / "models.sqlite").is_file()
    monkeypatch.delenv("TREADLE_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "treadle"


def test_concurrent_writers_threads_and_processes(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite"
    cache = ModelCache(path)
    cache.get("warm-up")  # create the schema before the race
    script = (
        "import sys\n"
        "from treadle.runtime.cache import ModelCache\n"
        "from treadle.runtime.models import Completion\n"
        "c = ModelCache(sys.argv[1])\n"
        "for i in range(200):\n"
        "    c.put(f'{sys.argv[2]}-{i}', Completion(text=str(i)))\n"
        "    assert c.get(f'{sys.argv[2]}-{i}').text == str(i)\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(path), f"p{n}"], stderr=subprocess.PIPE)
        for n in range(2)
    ]

    def writer(n: int) -> None:
        for i in range(200):
            cache.put(f"t{n}-{i}", Completion(text=str(i)))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for p in procs:
        _, err = p.communicate(timeout=60)
        assert p.returncode == 0, err.decode()
    assert len(ModelCache(path)) == 6 * 200
    hit = cache.get("p1-199")
    assert hit is not None and hit.text == "199"


def test_a_broken_cache_file_never_fails_a_run(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "junk.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    cache = ModelCache(path)
    assert cache.get("k") is None
    cache.put("k", C)
    assert "model cache disabled" in caplog.text


async def test_cached_model_skips_the_model_on_a_rerun(tmp_path: Path) -> None:
    inner = ScriptedBackend(["first", "second"])
    model = CachedModel(inner, ModelCache(tmp_path / "c.sqlite"))
    assert (model.backend, model.model) == ("scripted", "scripted")
    a = await model.complete(M, P)
    b = await model.complete(M, P)
    assert (a.text, a.cached) == ("first", False)
    assert (b.text, b.cached) == ("first", True)
    assert len(inner.calls) == 1 and model.model_calls == 1 and model.cache_hits == 1
    # a new process (a new cache object on the same file, the same script) hits too
    again = ScriptedBackend(["first", "second"])
    fresh = CachedModel(again, ModelCache(tmp_path / "c.sqlite"))
    hit = await fresh.complete(M, P)
    assert (hit.text, hit.cached, len(again.calls)) == ("first", True, 0)


async def test_what_is_not_cached(tmp_path: Path) -> None:
    cache = ModelCache(tmp_path / "c.sqlite")
    inner = ScriptedBackend(["a", "b", "c", "d"])
    model = CachedModel(inner, cache)
    hot = GenParams(temperature=0.8)  # no seed: every call is a new sample
    assert [(await model.complete(M, hot)).text for _ in range(2)] == ["a", "b"]
    off = CachedModel(inner, cache, enabled=False)  # --no-cache
    assert (await off.complete(M, P)).text == "c"
    assert (await off.complete(M, P)).text == "d"
    assert len(cache) == 0


async def test_seeded_samples_stay_distinct(tmp_path: Path) -> None:
    inner = ScriptedBackend(["s0", "s1", "s2"])
    model = CachedModel(inner, ModelCache(tmp_path / "c.sqlite"))
    seeded = GenParams(temperature=0.7, seed=11)
    first = [(await model.complete(M, seeded, sample=i)).text for i in range(3)]
    rerun = [(await model.complete(M, seeded, sample=i)) for i in range(3)]
    assert first == ["s0", "s1", "s2"] == [r.text for r in rerun]
    assert all(r.cached for r in rerun) and len(inner.calls) == 3


async def test_identical_calls_in_flight_share_one_model_call(tmp_path: Path) -> None:
    inner = ScriptedBackend(["once"], delay=0.1)
    model = CachedModel(inner, ModelCache(tmp_path / "c.sqlite"))
    results = await asyncio.gather(*(model.complete(M, P) for _ in range(4)))
    assert [r.text for r in results] == ["once"] * 4
    assert len(inner.calls) == 1 and sum(r.cached for r in results) == 3


async def test_failures_are_not_cached_and_reach_waiters(tmp_path: Path) -> None:
    inner = ScriptedBackend([ModelError("down", retryable=True), "up"], delay=0.05)
    model = CachedModel(inner, ModelCache(tmp_path / "c.sqlite"))
    results = await asyncio.gather(
        *(model.complete(M, P) for _ in range(2)), return_exceptions=True
    )
    assert all(isinstance(r, ModelError) for r in results)
    assert (await model.complete(M, P)).text == "up"


async def test_cancelled_leader_lets_a_waiter_call(tmp_path: Path) -> None:
    inner = ScriptedBackend(["a", "b"], delay=0.2)
    model = CachedModel(inner, ModelCache(tmp_path / "c.sqlite"))
    leader = asyncio.create_task(model.complete(M, P))
    await asyncio.sleep(0.01)
    waiter = asyncio.create_task(model.complete(M, P))
    await asyncio.sleep(0.01)
    leader.cancel()
    assert (await waiter).text == "a"  # the cancelled call never consumed its answer
    assert len(inner.calls) == 2 and leader.cancelled()


@pytest.mark.model
async def test_cached_rerun_makes_no_embedded_model_call(gguf_path: Path, tmp_path: Path) -> None:
    inner = LlamaBackend(gguf_path)
    model = CachedModel(inner, ModelCache(tmp_path / "c.sqlite"))
    first = await model.complete(M, P)
    calls = inner.calls
    second = await model.complete(M, P)
    assert inner.calls == calls and second.cached and second.text == first.text
    other = LlamaBackend(gguf_path, n_ctx=1024)  # same file, same identity: shares the entry
    assert (await CachedModel(other, ModelCache(tmp_path / "c.sqlite")).complete(M, P)).cached
