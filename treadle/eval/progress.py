"""Evaluation progress on stderr: a rich bar (rows, running score, errors, tokens, ETA) or, for CI
logs, one plain line every N rows. stdout is left to the report."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import Any, Protocol, TextIO

from treadle.eval.report import RowReport


class Progress(Protocol):
    def start(self, total: int, prior: Sequence[RowReport] = ()) -> None:
        """`total` row-epochs, `prior` of them already in the results file (a resume): the
        score and tokens shown are the whole evaluation's, theirs included."""

    def update(self, row: RowReport) -> None: ...

    def finish(self) -> None: ...

    def log(self, message: str) -> None:
        """A line about the work around the evaluations (a study's next step)."""


class _Tally:
    def __init__(self, total: int = 0, prior: Sequence[RowReport] = ()) -> None:
        self.total = total
        self.done = 0
        self.errors = 0
        self.scores: list[float] = []
        self.tokens = 0
        for row in prior:
            self.add(row)
        self.resumed = self.done
        self.started = time.monotonic()

    def add(self, row: RowReport) -> None:
        self.done += 1
        self.tokens += row.tokens_in + row.tokens_out
        if row.status == "error":
            self.errors += 1
        elif row.score is not None:
            self.scores.append(row.score)

    @property
    def score(self) -> float | None:
        return sum(self.scores) / len(self.scores) if self.scores else None

    def eta(self) -> float | None:
        ran = self.done - self.resumed
        if ran <= 0:
            return None
        return (time.monotonic() - self.started) / ran * (self.total - self.done)


class PlainProgress:
    """One line per `every` finished rows (and at the end)."""

    def __init__(self, every: int = 10, stream: TextIO | None = None) -> None:
        self.every = max(1, every)
        self.stream = stream or sys.stderr
        self.tally = _Tally()

    def start(self, total: int, prior: Sequence[RowReport] = ()) -> None:
        self.tally = _Tally(total, prior)
        if prior:
            self._line(f"resuming: {len(prior)} of {total} row-epochs already in the results file")

    def update(self, row: RowReport) -> None:
        self.tally.add(row)
        if self.tally.done % self.every == 0 or self.tally.done == self.tally.total:
            self._status()

    def finish(self) -> None:
        if self.tally.done % self.every and self.tally.done != self.tally.total:
            self._status()

    def log(self, message: str) -> None:
        self._line(message)

    def _status(self) -> None:
        t = self.tally
        score = "-" if t.score is None else f"{t.score:.3f}"
        eta = t.eta()
        elapsed = time.monotonic() - t.started
        self._line(
            f"eval {t.done}/{t.total} rows  score {score}  errors {t.errors}  "
            f"tokens {t.tokens}  elapsed {elapsed:.0f}s"
            + ("" if eta is None else f"  eta {eta:.0f}s")
        )

    def _line(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()


class RichProgress:
    """A rich progress bar on stderr."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as Bar

        self.bar = Bar(
            TextColumn("eval"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("score {task.fields[score]}  errors {task.fields[errors]}"),
            TextColumn("tokens {task.fields[tokens]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self.tally = _Tally()
        self.task: Any = None

    def start(self, total: int, prior: Sequence[RowReport] = ()) -> None:
        self.tally = _Tally(total, prior)
        self.bar.start()
        self.task = self.bar.add_task("eval", total=total, **self._fields())

    def update(self, row: RowReport) -> None:
        self.tally.add(row)
        self.bar.update(self.task, **self._fields())

    def _fields(self) -> dict[str, Any]:
        t = self.tally
        return dict(
            completed=t.done,
            score="-" if t.score is None else f"{t.score:.3f}",
            errors=t.errors,
            tokens=t.tokens,
        )

    def finish(self) -> None:
        self.bar.stop()

    def log(self, message: str) -> None:
        self.bar.console.print(message, markup=False, highlight=False)


def make_progress(display: str | Progress | None, *, every: int = 10) -> Progress | None:
    """None for no progress; "rich", "plain", or a ready object."""
    if display is None or display == "none":
        return None
    if display == "rich":
        return RichProgress()
    if display == "plain":
        return PlainProgress(every)
    if isinstance(display, str):
        raise ValueError(f"display is rich, plain or none, got {display!r}")
    return display
