"""`treadle generate "TASK"`: a workflow written by a model, constrained by the grammar.

Prints the chosen `.flow` (canonical layout) on stdout, and on stderr which decoding path ran
and each candidate's status, repairs, cost bound, tokens and time. `--format json` prints every
candidate instead. Exit 0 when a candidate compiled, 1 when none did, 2 on bad options or a
missing library file (before the model loads), 3 when the model fails.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from treadle.cli.common import exit_on_error, say
from treadle.cli.files import existing_file, write_file
from treadle.errors import EXIT_FAILED, InputError


def register(app: typer.Typer) -> None:
    app.command("generate")(exit_on_error(generate))


def generate(
    task: Annotated[str, typer.Argument(help="what the workflow should do, in words")],
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            help="model spec (default: the embedded SmolLM2); add ?grammar=gbnf|llguidance|vllm "
            "to an openai: spec to send the grammar to the server",
        ),
    ] = None,
    library: Annotated[
        list[Path] | None,
        typer.Option("--library", "-l", help="a capability library .flow file (repeatable)"),
    ] = None,
    n: Annotated[int, typer.Option("-n", help="how many candidates to write")] = 1,
    repairs: Annotated[int, typer.Option("--repairs", help="repair rounds per candidate")] = 1,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="run each candidate once on a scripted model")
    ] = False,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="write the chosen flow here")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="text or json")] = "text",
    seed: Annotated[int, typer.Option("--seed", help="sampling seed of candidate 1")] = 0,
    temperature: Annotated[
        float, typer.Option("--temperature", help="sampling temperature of candidates 2..n")
    ] = 0.7,
    max_statements: Annotated[
        int, typer.Option("--max-statements", help="most steps in the workflow")
    ] = 8,
    export_sft: Annotated[
        Path | None,
        typer.Option("--export-sft", help="append each compiled candidate as an SFT chat record"),
    ] = None,
) -> None:
    """Write a workflow for TASK with a model; the compiler judges every candidate."""
    from treadle.generation import generate_sync

    if fmt not in ("text", "json"):
        raise InputError(f"--format is text or json, got {fmt!r}.")
    if n < 1:
        raise InputError(f"-n is the number of candidates, at least 1; got {n}.")
    libraries = [str(existing_file(p, "--library")) for p in library or []]
    base = (output.parent if output is not None else Path.cwd()).resolve()
    result = generate_sync(
        task,
        model=model,
        library=libraries,
        n=n,
        repairs=repairs,
        dry_run_candidates=dry_run,
        seed=seed,
        temperature=temperature,
        max_statements=max_statements,
        base_dir=base,
    )
    if export_sft is not None:
        from treadle.train.sft import export_sft as write_sft

        pairs = [
            (task, c.text)
            for c in result.candidates
            if c.status == "compiled" and c.duplicate_of is None
        ]
        written = write_sft(export_sft, pairs, library=libraries, append=True, base_dir=base)
        say(f"wrote {written} SFT record(s) to {export_sft}")
    if fmt == "json":
        typer.echo(json.dumps(result.model_dump(mode="json", exclude={"messages"}), indent=2))
    else:
        typer.echo(
            f"# decoding: {result.path}; model {result.model}; "
            f"capabilities: {', '.join(result.capabilities) or 'none'}; {result.seconds:.1f} s",
            err=True,
        )
        for c in result.candidates:
            extra = ""
            if c.duplicate_of is not None:
                extra = f", duplicate of {c.duplicate_of + 1}"
            if c.dry_run is not None:
                extra += ", dry run " + ("ok" if c.dry_run.ok else f"failed: {c.dry_run.error}")
            errors = [d["code"] for d in c.diagnostics if d.get("severity", "error") == "error"]
            status = c.status + (
                f" ({', '.join(errors)})" if errors and c.status != "compiled" else ""
            )
            typer.echo(
                f"# candidate {c.index + 1}: {status}, {c.repairs} repair(s), "
                f"{c.cost_text or 'no cost bound'}, {c.tokens} tokens, {c.seconds:.1f} s{extra}",
                err=True,
            )
        if result.flow is not None:
            sys.stdout.write(result.flow)
    if result.flow is not None and output is not None:
        write_file(output, result.flow)
        say(f"# wrote {output}")
    if result.flow is None:
        if fmt == "text":
            say("treadle generate: no candidate compiled (--format json shows the diagnostics).")
        raise typer.Exit(EXIT_FAILED)
