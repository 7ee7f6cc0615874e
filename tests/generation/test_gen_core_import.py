"""CoRE import: good programs become compiling flows of the expected shape; every malformed
line is an error with its line number; unreachable steps are reported."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from treadle.compiler import compile_source
from treadle.compiler.importers.core import CoreImportError, import_core

EXAMPLES = Path(__file__).parents[2] / "examples" / "core"


def _app():  # the typer app with every command
    import treadle.cli

    return treadle.cli.app


@pytest.mark.parametrize("name", ["support_answer", "draft_check_loop", "travel_plan"])
def test_examples_import_and_compile(name: str) -> None:
    path = EXAMPLES / f"{name}.core"
    result = import_core(path.read_text(), file=str(path))
    program = compile_source(result.flow)
    assert result.warnings == []
    assert program.workflows[program.entry].outputs[0].name == "reply"


def test_decision_becomes_if_and_back_jump_a_bounded_repeat() -> None:
    flow = import_core((EXAMPLES / "draft_check_loop.core").read_text(), loop_bound=5).flow
    assert "repeat up to 5 times" in flow
    assert 'until step_3 != "no"' in flow
    flow2 = import_core((EXAMPLES / "support_answer.core").read_text()).flow
    assert 'if step_2 == "yes" then' in flow2 and "else" in flow2
    assert "with max_tokens 4" in flow2


def test_malformed_lines_are_errors_with_line_numbers() -> None:
    with pytest.raises(CoreImportError) as err:
        import_core((EXAMPLES / "broken.core").read_text(), file="broken.core")
    lines = str(err.value).splitlines()
    assert lines == [
        "broken.core:2: error: unknown step type 'Decison'; expected process, decision or terminal",
        "broken.core:3: error: expected `Step Name:::type:::instruction:::branches` (4 fields "
        "separated by `:::`), got 1 field(s)",
        "broken.core:5: error: step 'Step 5' jumps to 'Step 9', which no line defines",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("S1:::process:::Do it.:::next::S2\nS1:::terminal:::Done.:::", "defined twice"),
        ("S1:::decision:::Ok?:::yes::S2\nS2:::terminal:::Done.:::", "at least two branches"),
        ("S1:::terminal:::Done.:::next::S1", "has branches"),
        ("S1:::process:::Do it.:::", "last line"),
        ("S1:::process:::Do it.:::next::S2::x\nS2:::terminal:::Done.:::", "malformed branches"),
        ("S1:::process::::::next::S2\nS2:::terminal:::Done.:::", "no instruction"),
        ("S1:::process:::Loop.:::next::S1", "no bound"),
    ],
)
def test_each_kind_of_mistake(text: str, message: str) -> None:
    with pytest.raises(CoreImportError) as err:
        import_core(text, file="p.core")
    assert message in str(err.value)
    assert str(err.value).startswith("p.core:")


def test_unreachable_steps_are_reported() -> None:
    text = (
        "S1:::process:::Restate.:::next::S2\n"
        "S2:::terminal:::Answer.:::\n"
        "S3:::process:::Orphan.:::next::S2\n"
    )
    result = import_core(text, file="u.core")
    assert [w.render("u.core") for w in result.warnings] == [
        "u.core:3: warning: step 'S3' is unreachable from the first step 'S1'"
    ]
    compile_source(result.flow)


def test_cli_exit_codes_and_output(tmp_path: Path) -> None:
    runner = CliRunner()
    bad = runner.invoke(_app(), ["import", "core", str(EXAMPLES / "broken.core")])
    assert bad.exit_code == 1
    assert f"{EXAMPLES / 'broken.core'}:2: error:" in bad.output
    out = tmp_path / "travel.flow"
    good = runner.invoke(
        _app(), ["import", "core", str(EXAMPLES / "travel_plan.core"), "-o", str(out)]
    )
    assert good.exit_code == 0, good.output
    program = compile_source(out.read_text())
    assert program.entry == "travel_plan"
