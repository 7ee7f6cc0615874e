"""`treadle library mine FLOWS... -o lib.flow [--rewrite DIR]`: a capability library mined from
a corpus of workflows (recurring sub-graphs become parameterised workflows).

Exit codes: 0 a library written, 1 no recurring sub-graph found (nothing written), 2 a corpus
file that is missing or does not compile.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from treadle.cli.common import exit_on_error, say
from treadle.cli.files import existing_file, write_file
from treadle.errors import EXIT_FAILED


def register(app: typer.Typer) -> None:
    lib = typer.Typer(help="Capability libraries: reusable workflows.", no_args_is_help=True)
    lib.command("mine")(exit_on_error(mine))
    app.add_typer(lib, name="library")


def mine(
    flows: Annotated[list[Path], typer.Argument(help="the corpus: .flow files")],
    output: Annotated[Path, typer.Option("--output", "-o", help="the library file to write")],
    rewrite: Annotated[
        Path | None,
        typer.Option(
            "--rewrite", help="write the corpus, calling the library, into this directory"
        ),
    ] = None,
    min_support: Annotated[
        int, typer.Option("--min-support", help="occurrences a pattern needs")
    ] = 2,
    max_steps: Annotated[int, typer.Option("--max-steps", help="longest pattern, in steps")] = 4,
) -> None:
    """Find sub-graphs that recur across FLOWS and write them as a library."""
    from treadle.compiler import check_file
    from treadle.generation.mining import mine as run_mine

    result = run_mine(
        [str(existing_file(f)) for f in flows],
        library_path=output,
        min_support=min_support,
        max_steps=max_steps,
        rewrite=rewrite is not None,
        rewrite_dir=rewrite,
    )
    if not result.capabilities:  # an empty library would only fail to compile (E105)
        say(
            f"treadle library mine: no recurring sub-graph found in {len(flows)} file(s) "
            f"(none of up to {max_steps} steps occurs {min_support} times or more); "
            f"nothing written to {output}."
        )
        raise typer.Exit(EXIT_FAILED)
    write_file(output, result.library)
    for c in result.capabilities:
        where = ", ".join(c.occurrences)
        typer.echo(f"{c.name}: {c.steps} steps, {len(c.occurrences)} occurrences ({where})")
    say(f"wrote {len(result.capabilities)} capabilities to {output}")
    bad = [d for d in check_file(output) if d.is_error]
    if rewrite is not None:
        for src, text in result.rewritten.items():
            target = rewrite / Path(src).name
            write_file(target, text)
            bad += [d for d in check_file(target) if d.is_error]
        say(f"rewrote {len(result.rewritten)} file(s) into {rewrite}")
    if bad:  # a bug of the miner, never of the corpus: say so
        say(
            "treadle library mine: an output does not compile:\n"
            + "\n".join(d.render() for d in bad)
        )
        raise typer.Exit(EXIT_FAILED)
