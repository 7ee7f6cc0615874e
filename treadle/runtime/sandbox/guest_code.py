"""The code that runs inside the sandbox (`guest/`), as the host ships it.

The guest files are package data, read through `importlib.resources` (never imported: they run
only on the container's interpreter). Constants both sides must agree on (the verdict marker,
the command the agent runs in a fork of itself) are defined once, in the guest file that uses
them, and read from its source here.
"""

from __future__ import annotations

import ast
import functools
from importlib import resources

#: the folder of guest files inside this package
GUEST = "guest"


@functools.cache
def guest_source(name: str) -> str:
    """The text of guest file `name` (e.g. "agent.py")."""
    return (resources.files("treadle.runtime.sandbox") / GUEST / name).read_text(encoding="utf-8")


def guest_constant(name: str, constant: str) -> object:
    """The literal value a guest file assigns to `constant` at its top level."""
    for node in ast.parse(guest_source(name)).body:
        if isinstance(node, ast.Assign):
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        else:
            continue
        if isinstance(target, ast.Name) and target.id == constant:
            return ast.literal_eval(value)
    raise LookupError(f"the guest file {name} defines no {constant}")


def _strings(value: object) -> list[str]:
    if not isinstance(value, list | tuple):
        raise TypeError(f"expected a list of strings, not {value!r}")
    return [str(v) for v in value]


AGENT_SOURCE = guest_source("agent.py")
HARNESS_SOURCE = guest_source("harness.py")
#: the line the judge writes its verdict after, on its own stdout
MARKER = str(guest_constant("harness.py", "MARKER"))
#: how the sandbox starts the harness: isolated mode (no script dir on sys.path, no PYTHON*
#: variables), no site (the image has no packages), UTF-8 I/O; the agent runs this command in
#: a fork of its own interpreter
HARNESS_COMMAND = [*_strings(guest_constant("agent.py", "FORKABLE")), "harness.py"]
