"""`treadle view [PATH ...]`: runs, evaluations, traces and studies in the browser.

The server listens on 127.0.0.1 (another address only with an explicit `--host`) on a free
port unless `--port` says; its URL goes to stderr, and a browser opens where one exists.
`--export OUT.html` writes one self-contained page instead of serving.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from treadle.cli.common import exit_on_error, say


def register(app: typer.Typer) -> None:
    app.command("view")(exit_on_error(view))


def view(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(
            help="eval results/reports, traces, attribution or rank reports, optimize run "
            "folders, or folders holding them (default .treadle/)"
        ),
    ] = None,
    port: Annotated[int, typer.Option("--port", help="the port (default: a free one)")] = 0,
    host: Annotated[
        str,
        typer.Option(
            "--host",
            help="listen on this address instead of 127.0.0.1 (anyone who "
            "reaches it reads the runs)",
        ),
    ] = "127.0.0.1",
    no_open: Annotated[bool, typer.Option("--no-open", help="do not open a browser")] = False,
    export: Annotated[
        Path | None,
        typer.Option("--export", help="write one self-contained HTML file instead of serving"),
    ] = None,
) -> None:
    """Look at evaluations, traces, attribution and ranking reports and optimize runs."""
    from treadle.errors import InputError
    from treadle.view import Catalog, Views, ViewServer, export_html, open_browser

    catalog = Catalog.of(paths or [])
    views = Views(catalog)
    if export is not None:
        size = export_html(views, export)
        say(f"wrote {export} ({size / 1e6:.1f} MB, {len(catalog.sources)} runs)")
        return
    try:
        server = ViewServer(views, host, port)
    except OSError as e:
        raise InputError(f"Cannot listen on {host}:{port}: {e.strerror or e}.") from None
    single = catalog.single()
    url = server.url + (f"#/{single.kind}/{single.id}" if single is not None else "")
    say(f"treadle view: {url}  ({len(catalog.sources)} runs; Ctrl-C stops)")
    if not no_open:
        open_browser(url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
