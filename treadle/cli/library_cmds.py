"""`treadle library mine FLOWS... -o lib.flow [--rewrite DIR]`: a capability library mined from
a corpus of workflows (recurring sub-graphs become parameterised workflows)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    lib = typer.Typer(help="Capability libraries: reusable workflows.", no_args_is_help=True)
    lib.command("mine")(mine)
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
    from treadle.errors import CompileError
    from treadle.generation.mining import mine as run_mine

    try:
        result = run_mine(
            [str(f) for f in flows],
            library_path=output,
            min_support=min_support,
            max_steps=max_steps,
            rewrite=rewrite is not None,
            rewrite_dir=rewrite,
        )
    except CompileError as e:
        typer.echo(f"treadle library mine: a corpus file does not compile:\n{e}", err=True)
        raise typer.Exit(2) from None
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(result.library, encoding="utf-8")
    for c in result.capabilities:
        where = ", ".join(c.occurrences)
        typer.echo(f"{c.name}: {c.steps} steps, {len(c.occurrences)} occurrences ({where})")
    typer.echo(f"wrote {len(result.capabilities)} capabilities to {output}", err=True)
    bad = [d for d in check_file(output) if d.is_error]
    if rewrite is not None:
        rewrite.mkdir(parents=True, exist_ok=True)
        for src, text in result.rewritten.items():
            target = rewrite / Path(src).name
            target.write_text(text, encoding="utf-8")
            bad += [d for d in check_file(target) if d.is_error]
        typer.echo(f"rewrote {len(result.rewritten)} file(s) into {rewrite}", err=True)
    if bad:  # a bug of the miner, never of the corpus: say so
        typer.echo(
            "treadle library mine: an output does not compile:\n"
            + "\n".join(d.render() for d in bad),
            err=True,
        )
        raise typer.Exit(1)
