"""Grammar-constrained decoding on the embedded model: llguidance masks llama.cpp's logits.

The decoder drives llama-cpp-python token by token (`eval`, then the last logits), so it owns
the KV cache: the chat prompt is evaluated once per candidate, and each piece of the program
(header, outputs, each statement) continues from the tokens already in the context under its
own grammar, built from the scope at that point (`writer.ProgramWriter`). Before sampling, the
piece's llguidance matcher computes the allowed-token bitmask; disallowed logits become -inf.
A piece ends when its matcher is stopped (the grammar can take no more text).

Timings are kept apart (model evaluation, mask computation, grammar construction) so the
benchmark can state the mask cost per token and the decode rate with and without the mask.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from treadle.errors import ModelError
from treadle.generation.decoding.grammar_ir import Grammar
from treadle.runtime.models.base import Message

_TOKENIZERS: dict[str, Any] = {}
_LOCK = threading.Lock()


@dataclass
class DecodeStats:
    tokens: int = 0
    prompt_tokens: int = 0
    eval_seconds: float = 0.0
    mask_seconds: float = 0.0
    grammar_seconds: float = 0.0
    grammars: int = 0
    seconds: float = 0.0

    def add(self, other: DecodeStats) -> None:
        for f in (
            "tokens",
            "prompt_tokens",
            "eval_seconds",
            "mask_seconds",
            "grammar_seconds",
            "grammars",
            "seconds",
        ):
            setattr(self, f, getattr(self, f) + getattr(other, f))


@dataclass
class Decoded:
    text: str
    complete: bool
    stats: DecodeStats = field(default_factory=DecodeStats)
    error: str | None = None


class EmbeddedDecoder:
    """Token-level decoding with one loaded `llama_cpp.Llama` (not thread-safe: one user)."""

    def __init__(self, llama: Any, identity: str) -> None:
        import numpy as np

        self.np = np
        self.llama = llama
        self.identity = identity
        self.n_vocab = int(llama.n_vocab())
        self.eos = int(llama.token_eos())
        self.tokenizer = _tokenizer(llama, identity)
        self._template: Any = None
        #: tokens sampled in the current program, for the repeat penalty
        self.recent: list[int] = []
        self.repeat_penalty = 1.15
        self.repeat_window = 64

    # ------------------------------------------------------------ prompt

    def chat_prompt(self, messages: Sequence[Message]) -> str:
        """The model's chat template applied, ending where the assistant's turn starts."""
        if self._template is None:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            meta = self.llama.metadata
            template = meta.get("tokenizer.chat_template")
            if not template:
                raise ModelError(
                    "The model file has no chat template; constrained generation needs one."
                )
            model = self.llama._model
            self._template = Jinja2ChatFormatter(
                template=template,
                eos_token=model.token_get_text(self.eos),
                bos_token=model.token_get_text(int(self.llama.token_bos())),
            )
        result = self._template(messages=[{"role": m.role, "content": m.content} for m in messages])
        return str(result.prompt)

    def start(self, prompt: str) -> DecodeStats:
        """Evaluate the prompt (llama.cpp keeps the longest common prefix of the last one)."""
        stats = DecodeStats()
        tokens = self.llama.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
        common = 0
        current = list(self.llama.input_ids[: self.llama.n_tokens])
        while common < min(len(current), len(tokens) - 1) and current[common] == tokens[common]:
            common += 1
        self.llama.n_tokens = common
        self.recent = []
        t0 = time.perf_counter()
        self.llama.eval(tokens[common:])
        stats.eval_seconds += time.perf_counter() - t0
        stats.prompt_tokens = len(tokens) - common
        return stats

    def force(self, text: str) -> DecodeStats:
        """Append fixed text (the `use` lines) to the context without sampling."""
        stats = DecodeStats()
        if text:
            tokens = self.llama.tokenize(text.encode("utf-8"), add_bos=False, special=False)
            t0 = time.perf_counter()
            self.llama.eval(tokens)
            stats.eval_seconds += time.perf_counter() - t0
            stats.prompt_tokens = len(tokens)
        return stats

    def _logits(self) -> Any:
        """A copy of the last evaluated token's logits (llama-cpp-python keeps no scores row
        unless every position's logits are computed, which costs memory and time)."""
        np = self.np
        ptr = self.llama._ctx.get_logits()
        return np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)).astype(np.float32, copy=True)

    @property
    def position(self) -> int:
        return int(self.llama.n_tokens)

    def rewind(self, position: int) -> None:
        """Forget the tokens after `position` (their KV entries go at the next eval); the last
        kept token is evaluated again so its logits are current."""
        last = int(self.llama.input_ids[position - 1])
        self.llama.n_tokens = position - 1
        self.llama.eval([last])

    # ------------------------------------------------------------ one piece

    def piece(
        self,
        grammar: Grammar | None,
        *,
        rng: Any,
        temperature: float,
        max_tokens: int,
        stop: Callable[[str], bool] | None = None,
    ) -> Decoded:
        """Sample one piece under `grammar` (None: free decoding until EOS or `stop`)."""
        np = self.np
        stats = DecodeStats()
        matcher = None
        if grammar is not None:
            import llguidance

            t0 = time.perf_counter()
            matcher = llguidance.LLMatcher(
                self.tokenizer, llguidance.LLMatcher.grammar_from_lark(grammar.lark()), log_level=0
            )
            stats.grammar_seconds += time.perf_counter() - t0
            stats.grammars += 1
            if matcher.is_error():
                return Decoded("", False, stats, f"grammar: {matcher.get_error()}")
        out: list[int] = []
        text = b""
        start = time.perf_counter()
        while len(out) < max_tokens:
            logits = self._logits()
            if matcher is not None:
                if matcher.is_stopped():
                    break
                t0 = time.perf_counter()
                bits = np.frombuffer(matcher.compute_bitmask(), dtype=np.uint8)
                allowed = np.unpackbits(bits, bitorder="little")[: self.n_vocab].astype(bool)
                logits[: len(allowed)][~allowed] = -np.inf
                stats.mask_seconds += time.perf_counter() - t0
            if self.recent and self.repeat_penalty != 1.0:
                # llama.cpp's repeat penalty over the tokens written so far in this program
                ids = np.fromiter(self.recent[-self.repeat_window :], dtype=np.int64)
                vals = logits[ids]
                logits[ids] = np.where(
                    vals > 0, vals / self.repeat_penalty, vals * self.repeat_penalty
                )
            token = _sample(np, logits, temperature, rng)
            if token == self.eos:
                break
            if matcher is not None and not matcher.consume_token(token):
                stats.seconds += time.perf_counter() - start
                return Decoded(text.decode("utf-8", "replace"), False, stats, matcher.get_error())
            out.append(token)
            self.recent.append(token)
            text += self.llama.detokenize([token])
            t0 = time.perf_counter()
            self.llama.eval([token])
            stats.eval_seconds += time.perf_counter() - t0
            if stop is not None and stop(text.decode("utf-8", "replace")):
                break
        stats.tokens = len(out)
        stats.seconds += time.perf_counter() - start
        complete = matcher.is_stopped() or matcher.is_accepting() if matcher else True
        decoded = text.decode("utf-8", "replace")
        if matcher is not None and not complete:
            return Decoded(
                decoded, False, stats, f"the piece hit its budget of {max_tokens} tokens"
            )
        return Decoded(decoded, True, stats)


def _sample(np: Any, logits: Any, temperature: float, rng: Any) -> int:
    if temperature <= 0:
        return int(np.argmax(logits))
    z = logits / temperature
    z = z - np.max(z)
    p = np.exp(z)
    p /= p.sum()
    return int(rng.choice(len(p), p=p))


def _tokenizer(llama: Any, identity: str) -> Any:
    """llguidance's tokenizer from the model's vocab (~0.3 s), once per model file."""
    with _LOCK:
        tok = _TOKENIZERS.get(identity)
        if tok is None:
            try:
                import llama_cpp
                from llguidance.llamacpp import lltokenizer_from_vocab
            except ImportError as e:
                raise ModelError(
                    "Constrained generation on the embedded model needs llguidance "
                    "(`pip install llguidance`)."
                ) from e
            vocab = llama_cpp.llama_model_get_vocab(llama.model)
            import warnings

            with warnings.catch_warnings():  # one deprecation warning per vocabulary entry
                warnings.simplefilter("ignore", DeprecationWarning)
                tok = lltokenizer_from_vocab(vocab, n_vocab=int(llama.n_vocab()))
            _TOKENIZERS[identity] = tok
        return tok
