"""One error hierarchy, so the CLI can turn any failure into one clear paragraph and an exit code.

Every error a user can cause carries a message written for that user: what went wrong, and
what to do about it. Tracebacks are for bugs in treadle, never for bad input.
"""

from __future__ import annotations


class TreadleError(Exception):
    """Base of every error treadle raises on purpose."""

    #: process exit code the CLI uses for this kind of failure
    exit_code: int = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class CompileError(TreadleError):
    """The source has errors; `diagnostics` lists them all."""

    exit_code = 2

    def __init__(self, message: str, diagnostics: list[object] | None = None) -> None:
        super().__init__(message)
        self.diagnostics = diagnostics or []


class InputError(TreadleError):
    """The inputs given to a workflow do not match its declared inputs."""

    exit_code = 2


class RunError(TreadleError):
    """A workflow failed while running (a step raised, timed out, or was cancelled)."""

    exit_code = 3


class StepError(RunError):
    """An operator failed. `retryable` tells the scheduler whether another attempt may succeed."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class ModelError(StepError):
    """A model backend failed: missing file, refused connection, HTTP error, bad reply."""


class SandboxError(StepError):
    """The sandbox itself failed (not the code it ran): no engine, no image, no permission."""


class StepTimeout(StepError):
    """A step ran past its time limit."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True)
