"""The local web server behind `treadle view`.

The standard library's threading HTTP server: the viewer answers a handful of GET paths for one
person on their own machine, which needs no framework, and so `treadle view` works in the base
install (starlette and uvicorn are in the dependency tree only through the phoenix extra).
Each request is a thread; answers are cached per file change (`Views`).
"""

from __future__ import annotations

import contextlib
import threading
import webbrowser
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import orjson

from treadle.errors import TreadleError
from treadle.view.page import render_page
from treadle.view.payloads import Views


class _Handler(BaseHTTPRequestHandler):
    server: ViewServer

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path in ("/", "/index.html"):
            self._send(HTTPStatus.OK, "text/html; charset=utf-8", self.server.page.encode())
            return
        if not path.startswith("/api/"):
            self._send(HTTPStatus.NOT_FOUND, "text/plain", b"not found")
            return
        try:
            answer = self.server.views.answer(path)
        except (TreadleError, OSError, ValueError) as e:
            # a file the viewer cannot read is the page's to say, not a failed request
            message = getattr(e, "message", None) or str(e).splitlines()[0]
            answer = {"error": message}
        if answer is None:
            self._send(HTTPStatus.NOT_FOUND, "application/json", b'{"error": "not found"}')
            return
        self._send(HTTPStatus.OK, "application/json", orjson.dumps(answer, default=str))

    def _send(self, status: HTTPStatus, kind: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the terminal shows the URL, not every poll."""


class ViewServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, views: Views, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__((host, port), _Handler)
        self.views = views
        self.page = render_page()

    @property
    def url(self) -> str:
        host, port = str(self.server_address[0]), int(self.server_address[1])
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}/"

    def start(self) -> threading.Thread:
        """Serve in a background thread (tests, notebooks); `shutdown()` stops it."""
        thread = threading.Thread(target=self.serve_forever, name="treadle-view", daemon=True)
        thread.start()
        return thread


def open_browser(url: str) -> bool:
    """Open `url` where a browser exists; False on a machine without one (a server, CI)."""
    try:
        return webbrowser.get().open(url)
    except webbrowser.Error:
        return False
