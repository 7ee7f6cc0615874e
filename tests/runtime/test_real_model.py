"""End to end with the real embedded model (SmolLM2 through llama.cpp): a run, then a re-run
answered by the cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from treadle.api import Flow
from treadle.runtime.cache import ModelCache

HELLO = """\
workflow hello(question: text) -> reply: text
  reply = generate from "Answer in one word: {question}" with max_tokens 8
end
"""


@pytest.mark.model
async def test_embedded_model_run_and_cached_rerun(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the default trace directory is under the working directory
    flow = Flow.from_source(HELLO)
    cache = ModelCache(tmp_path / "cache.sqlite")
    first = await flow.run({"question": "What color is the sky?"}, cache=cache, trace=True)
    reply = first.outputs["reply"]
    assert isinstance(reply, str) and reply
    model = next(s for s in first.spans if s.kind == "model")
    assert model.status == "ok" and model.cached is False
    assert (model.tokens_out or 0) > 0 and model.attrs["gen_ai.provider.name"] == "llama"
    assert first.trace_path is not None and first.trace_path.is_file()
    again = await flow.run({"question": "What color is the sky?"}, cache=cache)
    assert again.outputs == first.outputs
    assert next(s for s in again.spans if s.kind == "model").cached is True
