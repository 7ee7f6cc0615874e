"""How long `treadle lsp` takes to publish diagnostics for a 200-line file after an edit.

A pygls client starts the server over stdio, opens a generated 200-line workflow, then sends
whole-text edits (each changes one prompt, and every other edit adds or removes an error) and
times each from sending `didChange` to receiving `publishDiagnostics`, which is what an editor
waits for. The in-process figure is the compile behind it (`FlowDocument`), without the
protocol. Aim (issue 18): at most 50 ms.

    python benchmarks/lsp_latency.py [--edits 30] [--lines 200]

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from lsprotocol import types as T
from pygls.lsp.client import LanguageClient


def flow(lines: int, variant: int) -> str:
    """A workflow of `lines` lines: a chain of generate / extract / vote steps."""
    out = ["workflow long(problem: text) -> answer: number"]
    prev = "problem"
    n = 0
    while len(out) < lines - 2:
        n += 1
        word = "problem" if variant % 2 == 0 or n != 50 else "problme"  # an E101 every other edit
        out.append(f'  g{n} = generate from "Step {n}, take {variant}: {{{prev}}} {{{word}}}"')
        out.append(f"  x{n} = extract number from g{n}")
        prev = f"g{n}"
    out.append(f"  answer = x{n}")
    out.append("end")
    return "\n".join(out) + "\n"


async def measure(edits: int, lines: int) -> dict[str, float]:
    client = LanguageClient("lsp-latency", "1")
    arrived: asyncio.Queue[float] = asyncio.Queue()

    @client.feature(T.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    def _diagnostics(params: T.PublishDiagnosticsParams) -> None:
        arrived.put_nowait(time.perf_counter())

    await client.start_io(sys.executable, "-c", "from treadle.cli import main; main()", "lsp")
    folder = Path(tempfile.mkdtemp())
    uri = (folder / "long.flow").as_uri()
    await client.initialize_async(
        T.InitializeParams(capabilities=T.ClientCapabilities(), root_uri=folder.as_uri())
    )
    client.initialized(T.InitializedParams())
    client.text_document_did_open(
        T.DidOpenTextDocumentParams(
            T.TextDocumentItem(uri=uri, language_id="flow", version=0, text=flow(lines, 0))
        )
    )
    await arrived.get()  # the first compile also imports the operators
    times = []
    for v in range(1, edits + 1):
        sent = time.perf_counter()
        client.text_document_did_change(
            T.DidChangeTextDocumentParams(
                T.VersionedTextDocumentIdentifier(uri=uri, version=v),
                [T.TextDocumentContentChangeWholeDocument(text=flow(lines, v))],
            )
        )
        times.append((await arrived.get() - sent) * 1000)
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()
    return {"median_ms": statistics.median(times), "max_ms": max(times)}


def in_process(edits: int, lines: int) -> float:
    from treadle.lsp.document import FlowDocument
    from treadle.stdlib_ops.registry import operators

    ops = operators()
    FlowDocument(flow(lines, 0), None, ops)
    times = []
    for v in range(1, edits + 1):
        t = time.perf_counter()
        FlowDocument(flow(lines, v), None, ops)
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edits", type=int, default=30)
    parser.add_argument("--lines", type=int, default=200)
    args = parser.parse_args()
    over_stdio = asyncio.run(measure(args.edits, args.lines))
    compile_ms = in_process(args.edits, args.lines)
    print(
        f"{args.lines}-line file, {args.edits} edits: diagnostics {over_stdio['median_ms']:.1f} ms"
        f" median (max {over_stdio['max_ms']:.1f}) from didChange to publishDiagnostics;"
        f" the compile behind it {compile_ms:.1f} ms. Aim: <= 50 ms."
    )
    print(
        json.dumps(
            {
                "lines": args.lines,
                "edits": args.edits,
                "diagnostics_median_ms": round(over_stdio["median_ms"], 2),
                "diagnostics_max_ms": round(over_stdio["max_ms"], 2),
                "compile_median_ms": round(compile_ms, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
