"""`treadle run FILE` (`treadle trace show` draws its trace: `trace_cmds`).

Exit codes tell failures apart: 0 success, 2 the file does not compile or the inputs are wrong,
3 the run failed, 130 interrupted (Ctrl-C). Every failure prints one paragraph on stderr, never
a traceback (set TREADLE_DEBUG=1 to see one for a bug in treadle), plus where the trace is.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from treadle.cli.common import fail, finish, parse_pairs, run_async, say
from treadle.errors import EXIT_OK, InputError

#: declared types whose `--input` values are read as JSON (the rest stay strings)
_JSON_TYPES = ("number", "boolean", "json", "list")


def register(app: typer.Typer) -> None:
    """Add `run` to the `treadle` app."""
    app.command("run")(run)


def run(
    file: Annotated[
        Path, typer.Argument(help="a .flow file (or Graph IR .json from `treadle compile`)")
    ],
    input: Annotated[
        list[str] | None,
        typer.Option("--input", "-i", help="an input as NAME=VALUE (repeatable)"),
    ] = None,
    inputs: Annotated[
        Path | None, typer.Option("--inputs", help="a JSON file with an object of inputs")
    ] = None,
    model: Annotated[
        str | None,
        typer.Option("--model", "-m", help="default model spec (default: the embedded SmolLM2)"),
    ] = None,
    trace: Annotated[
        Path | None,
        typer.Option("--trace", help="where to write the JSONL trace (default: .treadle/traces/)"),
    ] = None,
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-j", help="most steps running at once")
    ] = 16,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="do not read or write the model cache")
    ] = False,
    workflow: Annotated[
        str | None, typer.Option("--workflow", "-w", help="which workflow to run")
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="sampling seed for the run")] = None,
    step_timeout: Annotated[
        float | None,
        typer.Option("--step-timeout", help="seconds before a step that sets no timeout fails"),
    ] = None,
    retries: Annotated[
        int, typer.Option("--retries", help="extra attempts after a retryable step error")
    ] = 2,
    sandbox: Annotated[
        str,
        typer.Option(
            "--sandbox",
            help="where generated code runs: docker (isolated, default) or process (NOT isolated)",
        ),
    ] = "docker",
    isolation: Annotated[
        str,
        typer.Option(
            "--isolation",
            help="docker sandbox: reset (reuse a container after a verified reset, default) "
            "or fresh (a new container for every run)",
        ),
    ] = "reset",
    otel: Annotated[
        bool, typer.Option("--otel", help="also export spans with OpenTelemetry")
    ] = False,
) -> None:
    """Run a workflow: outputs as JSON on stdout, progress and errors on stderr."""
    options: dict[str, Any] = {
        "workflow": workflow,
        "model": model,
        "concurrency": concurrency,
        "cache": not no_cache,
        "seed": seed,
        "step_timeout": step_timeout,
        "retries": retries,
        "sandbox": sandbox,
        "isolation": isolation,
        "otel": otel,
    }
    raise typer.Exit(_run(file, input or [], inputs, trace, options))


def _run(
    file: Path,
    pairs: list[str],
    inputs_file: Path | None,
    trace: Path | None,
    options: dict[str, Any],
) -> int:
    """Compile, check inputs, run; every failure ends in `fail` (one paragraph, an exit code)."""
    trace_path: Path | None = None
    try:
        from treadle.runtime.scheduler import RunOptions
        from treadle.runtime.session import SandboxConfig, check_specs

        sandbox = SandboxConfig.of(options["sandbox"], options["isolation"])  # checks both
        flow = _load(file)
        wf = flow.workflow(options["workflow"])
        values = _read_inputs(wf, pairs, inputs_file)
        flow.check_inputs(values, wf.name)
        check_specs([options["model"], *flow.model_specs])
        if options["concurrency"] < 1:
            raise InputError(f"--concurrency must be at least 1, got {options['concurrency']}.")
        schedule = RunOptions(
            concurrency=options["concurrency"],
            step_timeout=options["step_timeout"],
            retries=options["retries"],
        )
        run_options = {
            "workflow": wf.name,
            "model": options["model"],
            "cache": options["cache"],
            "seed": options["seed"],
            "otel": options["otel"],
            "sandbox": sandbox,
            "options": schedule,
        }
        from treadle.runtime.tracing import default_trace_path

        trace_path = trace or default_trace_path(wf.name)
        say(f"trace: {trace_path}")
        outputs = run_async(_execute(flow, values, run_options, trace_path))
    except (Exception, KeyboardInterrupt) as e:
        stopped = "Interrupted: the run was cancelled and every running step stopped."
        return finish(fail(e, trace=trace_path, interrupted=stopped))
    sys.stdout.write(json.dumps(outputs, ensure_ascii=False, indent=2) + "\n")
    sys.stdout.flush()
    return EXIT_OK


async def _execute(
    flow: Any, values: dict[str, Any], options: dict[str, Any], trace_path: Path
) -> dict[str, Any]:
    sinks = []
    if sys.stderr.isatty():
        from rich.console import Console

        from treadle.cli.trace_view import ProgressSink

        sinks.append(ProgressSink(Console(stderr=True)))
    if options["otel"]:
        _setup_otel()
    try:
        result = await flow.run(values, trace=trace_path, sinks=sinks, **options)
    finally:
        if options["otel"]:
            _flush_otel()
    return dict(result.outputs)


def _flush_otel() -> None:
    """Send the batched spans now: a failed or interrupted run may leave through `os._exit`,
    which skips the exporter's own flush at exit."""
    from opentelemetry import trace

    flush = getattr(trace.get_tracer_provider(), "force_flush", None)
    if flush is not None:
        flush(10_000)


def _setup_otel() -> None:
    """Without a configured provider, export to OTLP when an endpoint is set, else to stderr."""
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            ConsoleSpanExporter,
            SimpleSpanProcessor,
        )
    except ImportError:
        raise InputError(
            "--otel needs the OpenTelemetry SDK: `pip install 'treadle[otel]'`."
        ) from None
    if isinstance(trace.get_tracer_provider(), TracerProvider):
        return
    provider = TracerProvider()
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            raise InputError(
                "OTEL_EXPORTER_OTLP_ENDPOINT is set but the OTLP exporter is not installed: "
                "`pip install opentelemetry-exporter-otlp-proto-http`."
            ) from None
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    else:
        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(out=sys.stderr)))
    trace.set_tracer_provider(provider)


def _load(file: Path) -> Any:
    from treadle.flow import Flow

    if not file.is_file():
        raise InputError(f"There is no file {file}.")
    if file.suffix == ".json":
        try:
            return Flow.from_json(file.read_text(encoding="utf-8"))
        except ValueError as e:
            raise InputError(f"{file} is not Graph IR JSON: {str(e).splitlines()[0]}") from None
    return Flow.load(file)


def _read_inputs(wf: Any, pairs: list[str], inputs_file: Path | None) -> dict[str, Any]:
    """`--inputs FILE.json` then each `--input NAME=VALUE` (a later value wins)."""
    values: dict[str, Any] = {}
    if inputs_file is not None:
        try:
            data = json.loads(inputs_file.read_text(encoding="utf-8"))
        except OSError as e:
            raise InputError(f"Cannot read the inputs file {inputs_file}: {e.strerror}.") from None
        except json.JSONDecodeError as e:
            raise InputError(f"The inputs file {inputs_file} is not valid JSON: {e}.") from None
        if not isinstance(data, dict):
            raise InputError(f"The inputs file {inputs_file} must hold a JSON object.")
        values.update(data)
    declared = {f.name: f.type for f in wf.inputs}
    for name, text in parse_pairs(pairs, "--input").items():
        kind = declared.get(name, "text").split()[0]
        if kind in _JSON_TYPES:
            try:
                values[name] = json.loads(text)
            except json.JSONDecodeError:
                raise InputError(
                    f"Input {name} is declared {declared[name]}, so its value must be JSON "
                    f"(e.g. 3, true, [1, 2]); got {text!r}."
                ) from None
        else:
            values[name] = text
    return values
