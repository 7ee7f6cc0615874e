"""`treadle ops`: every operator with its signature, in text, JSON or markdown."""

from __future__ import annotations

import json

import typer
from typer.testing import CliRunner

from treadle.cli import ops_cmds
from treadle.stdlib_ops import docs, registry


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """treadle"""

    ops_cmds.register(app)
    return app


def _invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(_app(), ["ops", *args])
    return result.exit_code, result.stdout, result.stderr


def test_lists_every_operator_with_its_signature() -> None:
    code, out, _ = _invoke()
    assert code == 0
    for name, op in registry.operators().items():
        assert docs.usage(op) in out, name
        assert op.summary in out
    assert "write code for <problem: text>" in out
    assert "with timeout N, retries N, samples N" in out


def test_json_and_markdown_formats() -> None:
    code, out, _ = _invoke("--format", "json")
    assert code == 0
    names = [o["name"] for o in json.loads(out)["operators"]]
    assert names == sorted(registry.operators())
    code, out, _ = _invoke("--format", "markdown")
    assert code == 0 and out == docs.render_markdown()


def test_selected_operators_show_each_parameter() -> None:
    code, out, _ = _invoke("write code", "ensemble")
    assert code == 0
    assert out.index("write code for") < out.index("ensemble <candidates")
    assert "    with entry_point (none): the function the code must define" in out
    assert "    for problem: the problem they solve" in out
    code, out, _ = _invoke("validate", "-f", "json")
    assert [o["name"] for o in json.loads(out)] == ["validate"]


def test_unknown_operator_or_format_is_a_clear_error() -> None:
    code, _, err = _invoke("ensembel")
    assert code == 2
    assert "No such operator: 'ensembel' (did you mean 'ensemble'?)" in err
    code, _, err = _invoke("--format", "html")
    assert code == 2 and "unknown format 'html'" in err
