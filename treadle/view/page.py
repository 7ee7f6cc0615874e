"""The viewer's one HTML page, with its script and style inlined.

Served or exported, it is the same file: the server's copy asks `/api/...` for its data, an
exported copy carries every answer in a `<script type="application/json">` element and asks
nothing (no network at view time, no CDN: the script and style ship in this package).
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import orjson


def _asset(name: str) -> str:
    return resources.files("treadle.view").joinpath("static", name).read_text(encoding="utf-8")


def render_page(answers: dict[str, Any] | None = None) -> str:
    """The page; with `answers` (API path → JSON), a self-contained export of them."""
    data = "null" if answers is None else orjson.dumps(answers, default=str).decode()
    # inside <script>, "</" could close the element early; "<\/" reads the same in JSON
    data = data.replace("</", "<\\/")
    return (
        _asset("index.html")
        .replace("/*STYLE*/", _asset("app.css"))
        .replace("/*SCRIPT*/", _asset("app.js"))
        .replace("/*DATA*/", data)  # last: the data may hold any text
    )
