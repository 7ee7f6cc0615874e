"""`treadle eval`, `attribute` and `rank` take the shared options from one definition
(`cli/options.py`): the same names, spellings, help and defaults, and they parse to the same
value objects."""

from __future__ import annotations

from typing import Any

import click
import typer.main

from treadle.cli import app
from treadle.cli.options import SHARED_NAMES, build
from treadle.errors import InputError


def _command(*path: str) -> click.Command:
    command: Any = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]
    return command


def _shared(command: click.Command) -> dict[str, tuple[object, ...]]:
    return {
        p.name: (tuple(p.opts), tuple(p.secondary_opts), getattr(p, "help", None), p.default)
        for p in command.params
        if p.name in SHARED_NAMES
    }


def test_the_three_commands_share_every_option_exactly() -> None:
    pages = [_shared(_command("eval", "run")), _shared(_command("attribute")),
             _shared(_command("rank"))]  # fmt: skip
    assert set(pages[0]) == set(SHARED_NAMES)
    assert pages[0] == pages[1] == pages[2]
    assert pages[0]["input_map"][0] == ("--map", "--input-map")


def test_the_options_become_the_value_objects_once() -> None:
    values = {name: None for name in SHARED_NAMES} | {
        "scorer": ["numeric", "f1"], "scorer_option": ["numeric.tolerance=0.01"],
        "input_map": ["problem=question"], "no_cache": True, "seed": 7, "shuffle": True,
        "sandbox": "process", "isolation": "fresh", "display": "none", "every": 5,
        "max_errors": "0.25",
    }  # fmt: skip
    opts = build(values)
    assert opts.scoring.scorers == ("numeric", "f1")
    assert opts.scoring.options == {"numeric.tolerance": 0.01}
    assert opts.scoring.input_map == {"problem": "question"}
    assert (opts.rows.seed, opts.rows.shuffle, opts.run.seed) == (7, True, 7)
    assert (opts.run.cache, opts.run.max_errors) == (False, 0.25)
    assert (opts.run.sandbox.kind, opts.run.sandbox.isolation) == ("process", "fresh")
    for bad in ({"sandbox": "podman"}, {"max_errors": "many"}, {"display": "loud"}):
        try:
            build({**values, **bad})
        except InputError:
            continue
        raise AssertionError(f"{bad} was accepted")
