"""Issue 21 §4: model settings belong in the spec (`default?n_ctx=16384`), a spec that cannot
be read is the user's input (exit 2, before any work), and `generate`/`revise` take `stop` and
`repeat_penalty` down to every backend."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_runner import treadle

from treadle.errors import EXIT_INPUT, EXIT_OK, ModelError, ModelSpecError
from treadle.flow import Flow
from treadle.runtime.cache import key_for
from treadle.runtime.models import GenParams, Message, load_model, parse_spec
from treadle.runtime.models.llama import chat_kwargs
from treadle.runtime.models.openai import OpenAIBackend
from treadle.runtime.models.scripted import ScriptedBackend

FLOW = """workflow f(q: text) -> a: text
  a = generate from q
end
"""
STEP_SPEC = """workflow f(q: text) -> a: text
  a = generate from q with model "foo:bar"
end
"""
CONTROLS = """workflow f(q: text) -> a: text, b: text
  a = generate from q with stop ["END", "STOP"], repeat_penalty 1.2
  b = revise a using "shorter" with stop ["!"], kind text
end
"""
ASK = [Message(role="user", content="Hi")]


def test_backend_settings_are_read_from_the_spec() -> None:
    spec = parse_spec("default?n_ctx=16384&n_threads=2")
    assert spec.kind == "llama" and spec.text == "default"
    assert dict(spec.options.backend) == {"n_ctx": 16384, "n_threads": 2}
    both = parse_spec("openai:http://h/v1#m?grammar=vllm&timeout=5")
    assert both.options.grammar == "vllm" and dict(both.options.backend) == {"timeout": 5.0}
    # a `?` inside a scripted answer is the answer's, not an option
    assert parse_spec('scripted:["why?"]').target == '["why?"]'


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("default?temperature=1", "has no option 'temperature'; it takes `grammar`, `n_ctx`"),
        ("default?n_ctx=big", "n_ctx takes a whole number, got 'big'"),
        ("default?n_ctx=0", "n_ctx is too small"),
        ('scripted:{"cats": "b",}', "scripted model spec is not valid JSON"),
        ("foo:bar", "Unknown model spec 'foo:bar'"),
    ],
)
def test_a_spec_that_cannot_be_read_is_an_input_error(spec: str, says: str) -> None:
    with pytest.raises(ModelSpecError) as info:
        parse_spec(spec)
    assert says in info.value.message
    assert info.value.exit_code == EXIT_INPUT
    assert isinstance(info.value, ModelError)  # callers catching ModelError still do


def test_plain_text_is_still_one_scripted_answer() -> None:
    assert (
        Flow.from_source(FLOW)
        .run_sync({"q": "x"}, model="scripted:hello", cache=False)
        .outputs["a"]
        == "hello"
    )


@pytest.mark.parametrize(
    ("flow", "model"),
    [(FLOW, 'scripted:{"cats": "b",}'), (FLOW, "foo:bar"), (STEP_SPEC, 'scripted:["x"]')],
)
def test_the_cli_finds_a_bad_spec_before_running(tmp_path: Path, flow: str, model: str) -> None:
    (tmp_path / "f.flow").write_text(flow)
    res = treadle("run", "f.flow", "-i", "q=hi", "--model", model, cwd=tmp_path)
    assert res.returncode == EXIT_INPUT, res.stderr
    assert "trace:" not in res.stderr and "Step 'a'" not in res.stderr
    (tmp_path / "d.jsonl").write_text('{"q": "a", "target": "x"}\n')
    res = treadle("eval", "f.flow", "d.jsonl", "--model", model, "--display", "none", cwd=tmp_path)
    assert res.returncode == EXIT_INPUT, res.stderr
    assert not list((tmp_path / ".treadle").glob("evals/*.jsonl"))


def test_stop_and_repeat_penalty_reach_the_scripted_model(tmp_path: Path) -> None:
    backend = ScriptedBackend(["one two END three", "fixed! more"])
    out = Flow.from_source(CONTROLS).run_sync({"q": "hi"}, model=backend, cache=False).outputs
    assert out == {"a": "one two", "b": "fixed"}
    first, second = (c.params for c in backend.calls)
    assert (first.stop, first.repeat_penalty) == (("END", "STOP"), 1.2)
    assert (second.stop, second.repeat_penalty) == (("!",), None)
    # and from the command line, the script in the spec
    (tmp_path / "c.flow").write_text(CONTROLS)
    spec = "scripted:" + json.dumps(["one two END three", "fixed! more"])
    res = treadle("run", "c.flow", "-i", "q=hi", "--model", spec, "--no-cache", cwd=tmp_path)
    assert res.returncode == EXIT_OK, res.stderr
    assert json.loads(res.stdout) == {"a": "one two", "b": "fixed"}


def test_the_controls_are_checked_at_compile_time() -> None:
    from treadle.compiler import check_source

    fine = FLOW.replace("from q", 'from q with stop ["END"], repeat_penalty 1.3')
    assert check_source(fine) == []
    for option in ("repeat_penalty 3", 'stop "END"'):  # out of range; a string, not a list
        bad = FLOW.replace("from q", f"from q with {option}")
        assert [d.code for d in check_source(bad)] == ["E206"], option


def test_servers_and_llama_cpp_get_the_repeat_penalty() -> None:
    params = GenParams(stop=("\n",), repeat_penalty=1.3)
    assert chat_kwargs(ASK, params)["repeat_penalty"] == 1.3
    assert "repeat_penalty" not in chat_kwargs(ASK, GenParams())
    body = OpenAIBackend("http://127.0.0.1:1/v1", "m", api_key="").request_body(ASK, params)
    assert body["repeat_penalty"] == body["repetition_penalty"] == 1.3 and body["stop"] == ["\n"]
    # a call without one keeps its cache key; one with it is told apart
    pair = ("llama", "m")
    plain = key_for(pair, ASK, GenParams())
    assert plain == key_for(pair, ASK, GenParams(repeat_penalty=None))
    assert plain != key_for(pair, ASK, GenParams(repeat_penalty=1.3))


@pytest.mark.model
async def test_the_context_size_comes_from_the_spec() -> None:
    small = load_model("default?n_ctx=64")
    with pytest.raises(ModelError, match="context window of 64 tokens") as info:
        await small.complete([Message(role="user", content="word " * 100)], GenParams())
    assert "?n_ctx=" in str(info.value)
    await small.aclose()


@pytest.mark.model
async def test_the_embedded_model_stops_and_penalises_repeats() -> None:
    model = load_model("default")
    prompt = [Message(role="user", content="Count from 1 to 30, separated by commas.")]
    free = await model.complete(prompt, GenParams(max_tokens=48))
    stopped = await model.complete(prompt, GenParams(max_tokens=48, stop=("\n",)))
    assert "\n" in free.text.strip() and "\n" not in stopped.text
    assert free.text.startswith(stopped.text)
    penalised = await model.complete(prompt, GenParams(max_tokens=48, repeat_penalty=1.8))
    assert penalised.text != free.text
    await model.aclose()
