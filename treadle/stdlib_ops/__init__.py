"""The operator library. Each operator lives in its own module and registers itself."""

from treadle.stdlib_ops.registry import Operator, get, operators, prep, register, subject

__all__ = ["Operator", "get", "operators", "prep", "register", "subject"]
