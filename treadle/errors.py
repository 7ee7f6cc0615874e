"""One error hierarchy, so the CLI can turn any failure into one clear paragraph and an exit code.

Every error a user can cause carries a message written for that user: what went wrong, and
what to do about it. Tracebacks are for bugs in treadle, never for bad input.
"""

from __future__ import annotations

#: the exit codes of every `treadle` command (`treadle.cli.common.fail` chooses among them)
EXIT_OK = 0
#: the command's answer is no: a checked file has errors, no candidate compiled; or a bug in
#: treadle (one paragraph; TREADLE_DEBUG=1 shows the traceback)
EXIT_FAILED = 1
#: the input is wrong: a missing or malformed file, a bad option, inputs that do not fit;
#: said before any work is done
EXIT_INPUT = 2
#: the work failed or was stopped: a step raised or timed out, a model or the sandbox failed
EXIT_RUNTIME = 3
#: interrupted (Ctrl-C)
EXIT_INTERRUPTED = 130


class TreadleError(Exception):
    """Base of every error treadle raises on purpose."""

    #: process exit code the CLI uses for this kind of failure (a subclass that is the user's
    #: input says so; anything else went wrong while working)
    exit_code: int = EXIT_RUNTIME

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class CompileError(TreadleError):
    """The source has errors; `diagnostics` lists them all."""

    exit_code = EXIT_INPUT

    def __init__(self, message: str, diagnostics: list[object] | None = None) -> None:
        super().__init__(message)
        self.diagnostics = diagnostics or []


class InputError(TreadleError):
    """The user's input is wrong: inputs that do not match a workflow's declared inputs, a
    missing or malformed file, an option out of range."""

    exit_code = EXIT_INPUT


class RunError(TreadleError):
    """A workflow failed while running (a step raised, timed out, or was cancelled)."""

    exit_code = EXIT_RUNTIME


class StepError(RunError):
    """An operator failed. `retryable` tells the scheduler whether another attempt may succeed."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class ModelError(StepError):
    """A model backend failed: missing file, refused connection, HTTP error, bad reply."""


class ModelSpecError(ModelError):
    """A model spec that names no model treadle knows, or with an option it does not take:
    the user's input, found before any work (`parse_spec`)."""

    exit_code = EXIT_INPUT


class SandboxError(StepError):
    """The sandbox itself failed (not the code it ran): no engine, no image, no permission."""


class StepTimeout(StepError):
    """A step ran past its time limit."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True)
