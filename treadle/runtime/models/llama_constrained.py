"""Grammar-constrained decoding on the embedded model: llguidance masks llama.cpp's logits.

The decoder drives llama-cpp-python token by token (`eval`, then the last logits), so it owns
the KV cache: a prompt is evaluated once, and each piece continues from the tokens already in
the context under its own grammar (a Lark grammar in llguidance's dialect, which the caller
builds; treadle's generator builds one per piece of a program, from the scope at that point).
Before sampling, the piece's llguidance matcher computes the allowed-token bitmask; disallowed
logits become -inf. A piece ends when its matcher is stopped (the grammar can take no more text).

Timings are kept apart (model evaluation, mask computation, grammar construction) so the
benchmark can state the mask cost per token and the decode rate with and without the mask.
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING

from treadle.errors import ModelError
from treadle.runtime.models import _llama_internals as internals
from treadle.runtime.models.base import Message
from treadle.runtime.models.llama_prefix import BLOCK, PrefixStore, blocks

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    from llama_cpp import Llama
    from llguidance import LLTokenizer

_TOKENIZERS: dict[str, LLTokenizer] = {}
_LOCK = threading.Lock()


@dataclass
class DecodeStats:
    """Counts and timings of a decode, summed piece by piece (every field adds up)."""

    tokens: int = 0
    prompt_tokens: int = 0
    reused_tokens: int = 0
    eval_seconds: float = 0.0
    mask_seconds: float = 0.0
    grammar_seconds: float = 0.0
    grammars: int = 0
    seconds: float = 0.0

    def add(self, other: DecodeStats) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


@dataclass
class Decoded:
    text: str
    complete: bool
    stats: DecodeStats = field(default_factory=DecodeStats)
    error: str | None = None


class EmbeddedDecoder:
    """Token-level decoding with one loaded `llama_cpp.Llama` (not thread-safe: one user;
    `LlamaBackend.with_decoder` hands one out with the model to itself)."""

    def __init__(self, llama: Llama, identity: str, prefixes: PrefixStore | None = None) -> None:
        self.llama = llama
        #: saved prompt prefixes of this model (None: none are saved or restored)
        self.prefixes = prefixes
        self.identity = identity
        self.n_vocab = int(llama.n_vocab())
        self.eos = int(llama.token_eos())
        self.tokenizer = _tokenizer(llama, identity)
        #: tokens sampled in the current program, for the repeat penalty
        self.recent: list[int] = []
        self.repeat_penalty = 1.15
        self.repeat_window = 64

    # ------------------------------------------------------------ prompt

    def chat_prompt(self, messages: Sequence[Message]) -> str:
        """The model's chat template applied, ending where the assistant's turn starts."""
        return str(internals.chat_prompt(self.llama, messages).prompt)

    def start(self, prompt: str) -> DecodeStats:
        """Evaluate the prompt, from the longest of: the block-aligned common prefix with the
        context, or a saved prefix (restored). Blocks end at fixed positions (`blocks`), so
        the cells are the same whichever way the prefix got there."""
        stats = DecodeStats()
        tokens = self.llama.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
        common = 0
        current = internals.context_tokens(self.llama)
        while common < min(len(current), len(tokens) - 1) and current[common] == tokens[common]:
            common += 1
        common = common // BLOCK * BLOCK
        save_at = 0
        hit = self.prefixes.lookup(tokens) if self.prefixes is not None else None
        if hit is not None and hit[0] > common:
            internals.clear_sequence(internals.context_pointer(self.llama), 0)
            restored = internals.restore_context(self.llama, list(tokens[: hit[0]]), hit[1])
            common = stats.reused_tokens = hit[0] if restored else 0
        elif self.prefixes is not None:
            save_at = self.prefixes.worth_saving(tokens)
        internals.truncate_context(self.llama, common)
        self.recent = []
        t0 = time.perf_counter()
        for start, end in blocks(common, len(tokens)):
            self.llama.eval(tokens[start:end])
            if self.prefixes is not None and end == save_at:
                self.prefixes.save(tokens[:end], internals.context_state(self.llama))
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

    @property
    def position(self) -> int:
        return internals.context_length(self.llama)

    def rewind(self, position: int) -> None:
        """Forget the tokens after `position` (their KV entries go at the next eval); the last
        kept token is evaluated again so its logits are current."""
        last = internals.context_tokens(self.llama)[position - 1]
        internals.truncate_context(self.llama, position - 1)
        self.llama.eval([last])

    # ------------------------------------------------------------ one piece

    def piece(
        self,
        lark: str | None,
        *,
        rng: np.random.Generator,
        temperature: float,
        max_tokens: int,
        stop: Callable[[str], bool] | None = None,
    ) -> Decoded:
        """Sample one piece under the grammar `lark` (llguidance's Lark dialect; None: free
        decoding until EOS, `stop` or `max_tokens`)."""
        import numpy as np

        stats = DecodeStats()
        matcher = None
        if lark is not None:
            import llguidance

            t0 = time.perf_counter()
            matcher = llguidance.LLMatcher(
                self.tokenizer, llguidance.LLMatcher.grammar_from_lark(lark), log_level=0
            )
            stats.grammar_seconds += time.perf_counter() - t0
            stats.grammars += 1
            if matcher.is_error():
                return Decoded("", False, stats, f"grammar: {matcher.get_error()}")
        out: list[int] = []
        text = b""
        start = time.perf_counter()
        while len(out) < max_tokens:
            logits = internals.last_logits(self.llama, self.n_vocab)
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
            token = _sample(logits, temperature, rng)
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


def _sample(logits: npt.NDArray[np.float32], temperature: float, rng: np.random.Generator) -> int:
    import numpy as np

    if temperature <= 0:
        return int(np.argmax(logits))
    z = logits / temperature
    z = z - np.max(z)
    p = np.exp(z)
    p /= p.sum()
    return int(rng.choice(len(p), p=p))


def _tokenizer(llama: Llama, identity: str) -> LLTokenizer:
    """llguidance's tokenizer from the model's vocab (~0.3 s), once per model file."""
    with _LOCK:
        tok = _TOKENIZERS.get(identity)
        if tok is None:
            try:
                from llguidance.llamacpp import lltokenizer_from_vocab
            except ImportError as e:
                raise ModelError(
                    "Constrained generation on the embedded model needs llguidance "
                    "(`pip install llguidance`)."
                ) from e
            with warnings.catch_warnings():  # one deprecation warning per vocabulary entry
                warnings.simplefilter("ignore", DeprecationWarning)
                tok = lltokenizer_from_vocab(internals.vocab(llama), n_vocab=int(llama.n_vocab()))
            _TOKENIZERS[identity] = tok
        return tok
