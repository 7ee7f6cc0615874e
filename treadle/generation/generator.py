"""`treadle generate`: a workflow from a task description, in one pass, judged by the compiler.

1. Select the capabilities (BM25) and examples that fit the task; build the prompt from the
   registry (`prompt.py`).
2. Decode K candidates. The decoding path depends on the model:
   - embedded (llama.cpp): scope-aware, per-statement grammars masked by llguidance
     (`writer.py`, run by `runtime/models/llama_constrained.py`) — path `llguidance-scoped`;
   - an OpenAI-compatible server with `?grammar=gbnf|llguidance|vllm` on its spec: the
     one-piece program grammar sent with the request — path `server-<mode>`;
   - anything else (a scripted model, a server without a grammar option): free decoding,
     then repair — path `free`.
3. Compile each; while errors remain and repairs are left, send the JSON diagnostics back and
   decode again (`repair.py`). De-duplicate by the Graph IR's content hash; give each a static
   cost bound (`cost.py`); with `dry_run`, run each once on a scripted model (`dry_run.py`).
4. Choose: a compiled, non-duplicate candidate (that passed the dry run when one ran), fewest
   repairs first, then fewest warnings (an input never read is a flow that ignores part of
   the task), then the lowest cost bound; print it in the canonical layout.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypedDict, Unpack

from pydantic import BaseModel

from treadle.errors import InputError
from treadle.generation.cost import Cost, cost_bound
from treadle.generation.decoding.scope_grammar import program_grammar
from treadle.generation.decoding.vocabulary import (
    Callee,
    Capability,
    load_capabilities,
    vocabulary,
)
from treadle.generation.decoding.writer import DEFAULT_MAX_STATEMENTS, ProgramWriter
from treadle.generation.dry_run import DryRun, dry_run
from treadle.generation.prompt import messages as build_messages
from treadle.generation.prompt import use_lines
from treadle.generation.repair import extract_flow, repair_messages
from treadle.generation.selection import select_capabilities, select_examples
from treadle.runtime.models.base import GenParams, Message, ModelBackend
from treadle.runtime.models.llama import LlamaBackend
from treadle.runtime.models.spec import GrammarMode, ModelSpec, load_model, parse_spec

if TYPE_CHECKING:
    from treadle.runtime.models.llama_constrained import EmbeddedDecoder

#: tokens one statement may take (a long prompt string included)
PIECE_TOKENS = 160
#: times a statement that repeats an earlier one is sampled again
REPEAT_RETRIES = 2
#: llama.cpp threads for generation: decoding goes token by token, where one thread loses
#: little, and two threads on a loaded 2-core machine were 40x slower (0.4 vs 16 tokens/s)
GENERATION_THREADS = 1


class Attempt(BaseModel):
    """One decode of a candidate (the first, or a repair)."""

    text: str
    errors: int
    codes: list[str]
    tokens: int
    seconds: float
    #: prompt tokens the model read for this attempt (what a token budget counts besides `tokens`)
    prompt_tokens: int = 0


class Candidate(BaseModel):
    index: int
    text: str
    status: Literal["compiled", "errors", "undecoded"]
    diagnostics: list[dict[str, Any]] = []
    repairs: int = 0
    ir_hash: str | None = None
    duplicate_of: int | None = None
    cost: Cost | None = None
    cost_text: str | None = None
    dry_run: DryRun | None = None
    tokens: int = 0
    #: prompt tokens over every attempt
    prompt_tokens: int = 0
    seconds: float = 0.0
    #: time inside the token loop (model evaluation, mask, sampling), prompt evaluation excluded
    decode_seconds: float = 0.0
    mask_seconds: float = 0.0
    grammar_seconds: float = 0.0
    grammars: int = 0
    attempts: list[Attempt] = []

    @property
    def warnings(self) -> int:
        """The compiler's warnings (an input never read, a step never used): each a sign the
        flow does less than the task asked, so they count against it before its cost does."""
        return sum(d.get("severity") == "warning" for d in self.diagnostics)


class GenerationResult(BaseModel):
    task: str
    path: str
    model: str
    capabilities: list[str]
    examples: list[str]
    chosen: int | None
    flow: str | None
    candidates: list[Candidate]
    messages: list[dict[str, str]]
    seconds: float


def _server_backend(spec: ModelSpec, mode: GrammarMode, grammar_text: str) -> ModelBackend:
    """An OpenAI-compatible backend whose requests carry the grammar where the server reads it."""
    from treadle.runtime.models.openai import OpenAIBackend

    base_url, model = spec.endpoint()

    class GrammarBackend(OpenAIBackend):
        def request_body(self, messages: list[Message], params: GenParams) -> dict[str, Any]:
            body = super().request_body(messages, params)
            if mode == "vllm":
                body["structured_outputs"] = {"grammar": grammar_text}
            elif mode == "llguidance":
                body["grammar"] = "%llguidance {}\n" + grammar_text
            elif mode == "gbnf":
                body["grammar"] = grammar_text
            return body

    return GrammarBackend(base_url=base_url, model=model)


@dataclass(frozen=True)
class GenerationSettings:
    """How `generate` writes candidates: `n` of them (candidate 0 greedy, the others sampled at
    `temperature` with seeds `seed + i`), up to `repairs` repair turns each, at most
    `max_capabilities` library workflows and `examples` examples in the prompt, at most
    `max_statements` statements and `max_tokens` tokens a candidate; `dry_run_candidates` runs
    each on a scripted model in `dry_run_sandbox`; `threads` for the embedded model."""

    n: int = 1
    repairs: int = 1
    dry_run_candidates: bool = False
    max_capabilities: int = 3
    examples: int = 2
    temperature: float = 0.7
    seed: int = 0
    max_statements: int = DEFAULT_MAX_STATEMENTS
    max_tokens: int = 768
    dry_run_sandbox: str = "process"
    threads: int = GENERATION_THREADS

    def __post_init__(self) -> None:
        if self.n < 1:
            raise InputError(f"--n must be at least 1, got {self.n}.")
        if self.repairs < 0:
            raise InputError(f"--repairs must not be negative, got {self.repairs}.")


class GenerationOverrides(TypedDict, total=False):
    """Any `GenerationSettings` field as a keyword: `generate(task, n=4, seed=1)`."""

    n: int
    repairs: int
    dry_run_candidates: bool
    max_capabilities: int
    examples: int
    temperature: float
    seed: int
    max_statements: int
    max_tokens: int
    dry_run_sandbox: str
    threads: int


async def generate(
    task: str,
    *,
    model: str | ModelBackend | None = None,
    library: Sequence[str | Path] = (),
    settings: GenerationSettings | None = None,
    base_dir: str | Path | None = None,
    prompt: Sequence[Message] | None = None,
    **overrides: Unpack[GenerationOverrides],
) -> GenerationResult:
    """Generate candidate workflows for `task` and choose one (see the module doc and
    `GenerationSettings`; its fields may also be given as keywords).

    `base_dir`: where the output will live, so its `use` paths are relative to it (default:
    the current directory). `prompt`: the turns to decode from instead of the ones built from
    `task` (`treadle optimize` sends its own: a parent flow and how it did); decoding, repair
    and judging are the same.
    """
    if not task.strip():
        raise InputError(
            "The task is empty: say in words what the workflow should do, e.g. "
            '`treadle generate "Solve a math word problem; answer with a number"`.'
        )
    started = time.perf_counter()
    cfg = replace(settings or GenerationSettings(), **overrides)
    n, repairs, temperature, seed = cfg.n, cfg.repairs, cfg.temperature, cfg.seed
    max_statements, max_tokens, threads = cfg.max_statements, cfg.max_tokens, cfg.threads
    dry_run_candidates, dry_run_sandbox = cfg.dry_run_candidates, cfg.dry_run_sandbox
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    caps_all: list[Capability] = load_capabilities(library) if library else []
    caps = select_capabilities(task, caps_all, cfg.max_capabilities) if caps_all else []
    vocab = vocabulary(caps)
    chosen_examples = select_examples(task, cfg.examples)
    msgs = (
        list(prompt) if prompt is not None else build_messages(task, vocab, caps, chosen_examples)
    )
    uses = use_lines(caps, str(base))
    use_text = "".join(u + "\n" for u in uses)

    spec_name: str
    backend: ModelBackend
    mode: GrammarMode | None = None
    if isinstance(model, ModelBackend):
        backend, spec_name = model, repr(model)
    else:
        spec = parse_spec(model)
        mode = spec.options.grammar
        spec_name = spec.text or "default"
        if mode not in (None, "none") and spec.kind == "openai":
            grammar = program_grammar(
                vocab, [u[len('use "') : -1] for u in uses], max_statements=max_statements
            )
            text = grammar.gbnf() if mode == "gbnf" else grammar.lark()
            backend = _server_backend(spec, mode, text)
        else:
            options = {"n_threads": threads} if spec.kind == "llama" else {}
            backend = load_model(spec, **options)
    path = (
        "llguidance-scoped"
        if isinstance(backend, LlamaBackend)
        else (f"server-{mode}" if mode not in (None, "none") else "free")
    )

    candidates: list[Candidate] = []
    seen: dict[str, int] = {}
    try:
        for i in range(n):
            temp = 0.0 if i == 0 else temperature
            if isinstance(backend, LlamaBackend):
                cand = await _embedded_candidate(
                    backend, msgs, use_text, vocab, i, temp, seed + i, repairs, max_statements, base
                )
            else:
                cand = await _free_candidate(
                    backend, msgs, use_text, i, temp, seed + i, repairs, max_tokens, base
                )
            await judge_candidate(cand, base, seen, dry_run_candidates, dry_run_sandbox)
            candidates.append(cand)
    finally:
        if not isinstance(model, ModelBackend):
            await backend.aclose()

    chosen = _choose(candidates, dry_run_candidates)
    flow = None
    if chosen is not None:
        from treadle.compiler.formatter import format_source

        flow = format_source(candidates[chosen].text)
    return GenerationResult(
        task=task,
        path=path,
        model=spec_name,
        capabilities=[c.name for c in caps],
        examples=[e.task for e in chosen_examples],
        chosen=chosen,
        flow=flow,
        candidates=candidates,
        messages=[{"role": m.role, "content": m.content} for m in msgs],
        seconds=time.perf_counter() - started,
    )


def generate_sync(task: str, **options: Any) -> GenerationResult:
    return asyncio.run(generate(task, **options))


def _check(text: str, base: Path) -> list[Any]:
    from treadle.compiler import check_source

    return [d for d in check_source(text, "<generated>", base_dir=base) if d.is_error]


async def _free_candidate(
    backend: ModelBackend,
    msgs: list[Message],
    use_text: str,
    index: int,
    temperature: float,
    seed: int,
    repairs: int,
    max_tokens: int,
    base: Path,
) -> Candidate:
    cand = Candidate(index=index, text="", status="undecoded")
    turn = list(msgs)
    for r in range(repairs + 1):
        t0 = time.perf_counter()
        params = GenParams(temperature=temperature, max_tokens=max_tokens, seed=seed)
        completion = await backend.complete(turn, params)
        text = extract_flow(completion.text)
        if use_text and not text.startswith("use "):
            text = use_text + text
        errors = _check(text, base)
        cand.attempts.append(
            Attempt(
                text=text,
                errors=len(errors),
                codes=[d.code for d in errors],
                tokens=completion.usage.output_tokens,
                seconds=time.perf_counter() - t0,
                prompt_tokens=completion.usage.input_tokens,
            )
        )
        cand.text, cand.repairs = text, r
        cand.tokens += completion.usage.output_tokens
        cand.prompt_tokens += completion.usage.input_tokens
        cand.seconds += time.perf_counter() - t0
        if not errors:
            break
        turn = repair_messages(msgs, text, errors)
    return cand


async def _embedded_candidate(
    backend: LlamaBackend,
    msgs: list[Message],
    use_text: str,
    vocab: Mapping[str, Callee],
    index: int,
    temperature: float,
    seed: int,
    repairs: int,
    max_statements: int,
    base: Path,
) -> Candidate:
    from treadle.runtime.models.llama_constrained import DecodeStats

    def decode(decoder: EmbeddedDecoder) -> Candidate:
        import numpy as np

        rng = np.random.default_rng(seed)
        cand = Candidate(index=index, text="", status="undecoded")
        turn = list(msgs)
        for r in range(repairs + 1):
            t0 = time.perf_counter()
            stats = DecodeStats()
            stats.add(decoder.start(decoder.chat_prompt(turn)))
            stats.add(decoder.force(use_text))
            writer = ProgramWriter(vocab, max_statements=max_statements)
            failed = None
            while (g := writer.grammar()) is not None:
                mark = decoder.position
                t_grammar = time.perf_counter()
                lark = g.lark()  # counted as grammar construction, as the decoder counts its own
                stats.grammar_seconds += time.perf_counter() - t_grammar
                for retry in range(REPEAT_RETRIES + 1):
                    # a statement that repeats an earlier one is sampled again, warmer
                    temp = temperature if retry == 0 else max(temperature, 0.8)
                    piece = decoder.piece(lark, rng=rng, temperature=temp, max_tokens=PIECE_TOKENS)
                    stats.add(piece.stats)
                    if not (piece.complete and writer.repeats(piece.text)):
                        break
                    if retry < REPEAT_RETRIES:
                        decoder.rewind(mark)
                if not piece.complete or not piece.text:
                    failed = piece.error or "the grammar allowed nothing here"
                    writer.text += piece.text
                    break
                writer.advance(piece.text)
            text = use_text + writer.text
            errors = _check(text, base) if failed is None else []
            cand.attempts.append(
                Attempt(
                    text=text,
                    errors=len(errors) if failed is None else -1,
                    codes=[d.code for d in errors] if failed is None else ["undecoded"],
                    tokens=stats.tokens,
                    seconds=time.perf_counter() - t0,
                    prompt_tokens=stats.prompt_tokens,
                )
            )
            cand.text, cand.repairs = text, r
            cand.tokens += stats.tokens
            cand.prompt_tokens += stats.prompt_tokens
            cand.seconds += time.perf_counter() - t0
            cand.mask_seconds += stats.mask_seconds
            cand.decode_seconds += stats.seconds
            cand.grammar_seconds += stats.grammar_seconds
            cand.grammars += stats.grammars
            if failed is None and not errors:
                break
            if failed is not None:
                cand.diagnostics = [{"code": "undecoded", "message": failed}]
            turn = repair_messages(msgs, text, errors) if errors else list(msgs)
        return cand

    return await backend.with_decoder(decode)


async def judge_candidate(
    cand: Candidate, base: Path, seen: dict[str, int], dry: bool, sandbox: str
) -> None:
    """Compile `cand`, mark it a duplicate of an earlier IR hash in `seen` (which it extends),
    give it its cost bound and, with `dry`, a dry run (what `treadle optimize` gates every
    proposal with too)."""
    from treadle.compiler import check_source, compile_source

    if cand.attempts and cand.attempts[-1].codes == ["undecoded"]:
        return  # the decoder gave up (a piece ran over its budget): nothing to compile
    diags = check_source(cand.text, "<generated>", base_dir=base)
    cand.diagnostics = [d.model_dump(exclude={"excerpt"}) for d in diags]
    if any(d.is_error for d in diags):
        cand.status = "errors"
        return
    program = compile_source(cand.text, "<generated>", base_dir=base)
    cand.status = "compiled"
    cand.ir_hash = program.content_hash()
    if cand.ir_hash in seen:
        cand.duplicate_of = seen[cand.ir_hash]
    else:
        seen[cand.ir_hash] = cand.index
    cand.cost = cost_bound(program)
    cand.cost_text = cand.cost.describe()
    if dry and cand.duplicate_of is None:
        cand.dry_run = await dry_run(program, sandbox=sandbox)


def _choose(cands: list[Candidate], dry: bool) -> int | None:
    ok = [
        c
        for c in cands
        if c.status == "compiled"
        and c.duplicate_of is None
        and (not dry or (c.dry_run is not None and c.dry_run.ok))
    ]
    if not ok:
        return None
    best = min(
        ok,
        key=lambda c: (c.repairs, c.warnings, c.cost.bound() if c.cost else (0, 0), c.index),
    )
    return best.index


def relative_uses(text: str, frm: Path, to: Path) -> str:
    """Rewrite `use "PATH"` lines written relative to `frm` to be relative to `to`."""

    def fix(m: re.Match[str]) -> str:
        p = (frm / m.group(1)).resolve()
        return f'use "{os.path.relpath(p, to)}"'

    return re.sub(r'^use "([^"]+)"', fix, text, flags=re.M)
