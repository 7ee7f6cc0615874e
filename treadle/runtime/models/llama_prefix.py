"""Saved KV states of long shared prompt prefixes, and the fixed blocks prompts are evaluated in.

Generation prompts start with the same ~1,100 tokens (the registry cheat-sheet, operators,
examples); re-evaluating them for every task is most of a short generation. The store keeps
the KV state of a sequence after such a prefix (llama.cpp's per-sequence state, a few tens of
MB for SmolLM2) and a later prompt that starts with the same tokens restores it instead.

Determinism: a prompt is always evaluated in blocks that end at multiples of `BLOCK` (and at a
saved prefix's end, itself a multiple), so the KV cells after a restored prefix are the cells a
fresh evaluation computes, block for block. The store is bounded in bytes (least recently used
prefixes go first) and a prefix is saved only once two prompts were seen to share it.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict, deque
from collections.abc import Iterator, Sequence

from treadle.errors import ModelError

#: prompt positions where evaluation blocks end
BLOCK = 128
#: shortest prefix worth saving (shorter ones cost little to evaluate)
MIN_PREFIX = 4 * BLOCK
#: recent prompts kept (as tokens) to discover shared prefixes
RECENT = 16
DEFAULT_MAX_MB = 256


def blocks(start: int, end: int) -> Iterator[tuple[int, int]]:
    """The evaluation blocks of prompt positions [start, end): each ends at the next multiple
    of BLOCK, or at `end`."""
    while start < end:
        stop = min(end, (start // BLOCK + 1) * BLOCK)
        yield start, stop
        start = stop


def _common(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _max_bytes() -> int:
    value = os.environ.get("TREADLE_LLAMA_PREFIX_MB", "").strip()
    if not value:
        return DEFAULT_MAX_MB << 20
    if not value.isdigit():
        raise ModelError(
            f"TREADLE_LLAMA_PREFIX_MB must be a whole number of MiB (0 turns prefix reuse "
            f"off), got {value!r}."
        )
    return int(value) << 20


class PrefixStore:
    """Saved prefix states of one model, at most `max_bytes` in all (thread-safe)."""

    def __init__(self, max_bytes: int | None = None) -> None:
        self.max_bytes = _max_bytes() if max_bytes is None else max_bytes
        self._states: OrderedDict[tuple[int, ...], bytes] = OrderedDict()
        self._recent: deque[tuple[int, ...]] = deque(maxlen=RECENT)
        self._lock = threading.Lock()
        self.hits = 0
        self.saved = 0

    @property
    def size(self) -> int:
        """Bytes held by the saved states."""
        return sum(len(s) for s in self._states.values())

    def lookup(self, tokens: Sequence[int]) -> tuple[int, bytes] | None:
        """The longest saved prefix of `tokens` (leaving at least one token to evaluate)."""
        with self._lock:
            best: tuple[int, ...] | None = None
            for prefix in self._states:
                longer = best is None or len(prefix) > len(best)
                if longer and len(prefix) < len(tokens) and tuple(tokens[: len(prefix)]) == prefix:
                    best = prefix
            if best is None:
                return None
            self._states.move_to_end(best)
            self.hits += 1
            return len(best), self._states[best]

    def worth_saving(self, tokens: Sequence[int]) -> int:
        """Where to save this prompt's state: the block boundary inside the longest prefix it
        shares with a recent prompt, or 0 when there is none worth saving."""
        if self.max_bytes <= 0:
            return 0
        key = tuple(tokens)
        with self._lock:
            shared = max((_common(key, r) for r in self._recent), default=0)
            self._recent.append(key)
        at = min(shared, len(tokens) - 1) // BLOCK * BLOCK
        return at if at >= MIN_PREFIX else 0

    def save(self, prefix: Sequence[int], state: bytes) -> None:
        if not state or len(state) > self.max_bytes:
            return
        with self._lock:
            self._states[tuple(prefix)] = state
            self._states.move_to_end(tuple(prefix))
            self.saved += 1
            while self.size > self.max_bytes:
                self._states.popitem(last=False)
