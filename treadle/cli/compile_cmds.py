"""`treadle check`, `treadle compile` and `treadle fmt`.

These stay fast: they import the compiler (lark, pydantic, the IR) and the operator registry,
never the model backends or the sandbox. A folder stands for every `.flow` file under it.
Exit codes: 0 ok (warnings allowed), 1 errors in a file, 2 a usage error (no such file, bad
option). No traceback reaches the user for bad input; a failure ends in
`treadle.cli.common.fail` as for every command (a bug in treadle prints one paragraph,
TREADLE_DEBUG=1 shows the traceback).

Each command body is a plain function returning the exit code (`check_files`, `compile_file_`,
`format_files`) and never imports typer: `register` wraps them as typer commands, and
`treadle.cli.main` calls them directly for plain invocations so that `treadle check`
starts without importing typer (see `fast_path`).
"""

import sys
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from treadle.cli.files import flow_files, read_file, write_file
from treadle.errors import EXIT_FAILED, EXIT_OK

if TYPE_CHECKING:
    import typer


class Format(StrEnum):
    text = "text"
    json = "json"


class Emit(StrEnum):
    json = "json"
    mermaid = "mermaid"
    dot = "dot"


def _echo(message: str, err: bool = False) -> None:
    """What `typer.echo` does for plain text: the message, a newline, flushed."""
    stream = sys.stderr if err else sys.stdout
    stream.write(message + "\n")
    stream.flush()


def _run(body: Callable[..., int], *args: Any) -> int:
    """A command body's exit code; a failure ends in `fail`, imported only then (with typer)."""
    try:
        return body(*args)
    except (Exception, KeyboardInterrupt) as e:
        from treadle.cli.common import fail

        return fail(e)


def check_files(files: list[Path], format: Format = Format.text) -> int:
    """The body of `treadle check`: print every diagnostic; the exit code."""
    from treadle.compiler import check_file
    from treadle.compiler.diagnostics import Diagnostic, render_all, summary

    everything: list[Diagnostic] = []
    files = flow_files(files)
    for f in files:
        read_file(f)
        diags = check_file(f)
        everything.extend(diags)
        if format == Format.text and diags:
            _echo(render_all(diags) + "\n", err=False)
    failed = any(d.is_error for d in everything)
    if format == Format.json:
        import json

        _echo(json.dumps([d.model_dump(mode="json") for d in everything], indent=2))
    else:
        status = "failed" if failed else "ok"
        n = len(files)
        _echo(f"{status}: {n} file{'s' * (n != 1)}, {summary(everything)}", err=failed)
    return EXIT_FAILED if failed else EXIT_OK


def compile_file_(file: Path, emit: Emit = Emit.json, output: Path | None = None) -> int:
    """The body of `treadle compile`; the exit code."""
    from treadle.compiler import compile_file
    from treadle.compiler.diagnostics import render_all
    from treadle.errors import CompileError

    read_file(file)
    try:
        program = compile_file(file)
    except CompileError as e:  # the answer is no: every error, then the verdict
        diags = [d for d in e.diagnostics if getattr(d, "is_error", True)]
        _echo(render_all(diags), err=True)  # type: ignore[arg-type]
        _echo(f"failed: {file} has errors", err=True)
        return EXIT_FAILED
    if emit == Emit.json:
        text = program.model_dump_json(indent=2) + "\n"
    elif emit == Emit.mermaid:
        from treadle.compiler.render_graph import to_mermaid

        text = to_mermaid(program)
    else:
        from treadle.compiler.render_graph import to_dot

        text = to_dot(program)
    if output is None:
        sys.stdout.write(text)
    else:
        write_file(output, text)
    return EXIT_OK


def format_files(files: list[Path], check_only: bool = False) -> int:
    """The body of `treadle fmt`; the exit code."""
    from treadle.compiler.diagnostics import render_all
    from treadle.compiler.formatter import format_module
    from treadle.compiler.parsing import parse

    status = EXIT_OK
    for f in flow_files(files):
        text = read_file(f)
        module, diags = parse(text, str(f))
        errors = [d for d in diags if d.is_error]
        if errors:
            _echo(render_all(errors), err=True)
            _echo(f"{f}: not formatted (syntax errors)", err=True)
            status = EXIT_FAILED
            continue
        out = format_module(module)
        if out == text:
            continue
        if check_only:
            _echo(f"would reformat {f}")
            status = EXIT_FAILED
        else:
            f.write_text(out, encoding="utf-8")
            _echo(f"formatted {f}")
    return status


def register(app: "typer.Typer") -> None:
    """Add `check`, `compile` and `fmt` to the `treadle` app: thin wrappers of the bodies."""
    import typer

    @app.command("check")
    def check(
        files: Annotated[list[Path], typer.Argument(help=".flow files or folders to check")],
        format: Annotated[
            Format, typer.Option("--format", help="text for people, json for programs")
        ] = Format.text,
    ) -> None:
        """Check .flow files and print every diagnostic; exit 1 if any file has errors."""
        raise typer.Exit(_run(check_files, files, format))

    @app.command("compile")
    def compile_(
        file: Annotated[Path, typer.Argument(help="the .flow file to compile")],
        emit: Annotated[
            Emit, typer.Option("--emit", help="json (Graph IR), mermaid or dot (drawings)")
        ] = Emit.json,
        output: Annotated[
            Path | None, typer.Option("--output", "-o", help="write here instead of stdout")
        ] = None,
    ) -> None:
        """Compile a .flow file to Graph IR JSON, or draw its graph as Mermaid or dot."""
        raise typer.Exit(_run(compile_file_, file, emit, output))

    @app.command("fmt")
    def fmt(
        files: Annotated[
            list[Path], typer.Argument(help=".flow files or folders to format in place")
        ],
        check_only: Annotated[
            bool, typer.Option("--check", help="change nothing; exit 1 if a file would change")
        ] = False,
    ) -> None:
        """Format .flow files canonically (in place), or with --check report those that differ."""
        raise typer.Exit(_run(format_files, files, check_only))


#: command -> (option -> (parameter, choices; None for a flag, () for any value))
_FAST: dict[str, dict[str, tuple[str, tuple[str, ...] | None]]] = {
    "check": {"--format": ("format", tuple(Format))},
    "compile": {
        "--emit": ("emit", tuple(Emit)),
        "--output": ("output", ()),
        "-o": ("output", ()),
    },
    "fmt": {"--check": ("check_only", None)},
}


def fast_path(argv: list[str]) -> int | None:
    """Run `check`, `compile` or `fmt` without typer when `argv` is a plain, valid invocation
    (paths and known options with valid values); the exit code, or None to leave everything
    else (help, usage errors, unusual forms) to the typer app, which prints the same output."""
    if not argv or argv[0] not in _FAST:
        return None
    spec = _FAST[argv[0]]
    paths: list[Path] = []
    opts: dict[str, Any] = {}
    args = iter(argv[1:])
    for a in args:
        if not a.startswith("-"):
            paths.append(Path(a))
            continue
        name, eq, value = a.partition("=")
        if name not in spec:
            return None
        param, choices = spec[name]
        if choices is None:
            if eq:
                return None
            opts[param] = True
            continue
        if not eq:
            value = next(args, "")
        if not value or value.startswith("-") or (choices and value not in choices):
            return None
        opts[param] = value
    if not paths:
        return None
    if argv[0] == "check":
        return _run(check_files, paths, Format(opts.get("format", "text")))
    if argv[0] == "fmt":
        return _run(format_files, paths, bool(opts.get("check_only")))
    if len(paths) != 1:
        return None
    output = Path(opts["output"]) if "output" in opts else None
    return _run(compile_file_, paths[0], Emit(opts.get("emit", "json")), output)
