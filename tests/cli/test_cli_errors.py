"""Every command turns an error into its exit code and one paragraph through one function
(`treadle.cli.common.explain`): a bad input to any command exits 2 with a paragraph on stderr,
never a traceback, and nothing on stdout."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from cli_runner import treadle

from treadle.cli.common import explain, fail, parse_pairs
from treadle.errors import (
    EXIT_FAILED,
    EXIT_INPUT,
    EXIT_INTERRUPTED,
    EXIT_RUNTIME,
    CompileError,
    InputError,
    ModelError,
    RunError,
    TreadleError,
)

ROOT = Path(__file__).resolve().parents[2]
FLOW = str(ROOT / "examples" / "answer.flow")
DATA = str(ROOT / "examples" / "data" / "qa.jsonl")
CORE = str(ROOT / "examples" / "core" / "draft_check_loop.core")


def one_paragraph(stderr: str) -> str:
    """The failure on stderr: one paragraph (progress lines such as `results: ...` aside)."""
    assert "Traceback" not in stderr, stderr
    lines = [ln for ln in stderr.splitlines() if not ln.startswith(("results: ", "trace: "))]
    text = "\n".join(lines).strip()
    assert text and "\n" not in text, stderr
    return text


# every command, with a bad input it sees before doing any work
BAD_INPUT = [
    (["check", "nope.flow"], "There is no file nope.flow."),
    (["compile", "nope.flow"], "There is no file nope.flow."),
    (["fmt", "nope.flow"], "There is no file nope.flow."),
    (["check", "empty_dir"], "The folder empty_dir holds no .flow files."),
    (["run", "nope.flow"], "There is no file nope.flow."),
    (["run", FLOW, "--input", "nonsense"], "--input takes NAME=VALUE, got 'nonsense'."),
    (["trace", "show", "nope.jsonl"], "There is no trace file nope.jsonl."),
    (["eval", FLOW, DATA, "--map", "question"], "--map takes NAME=VALUE, got 'question'."),
    (["eval", FLOW, DATA, "--scorer-option", "=1"], "--scorer-option takes NAME=VALUE"),
    (["eval", "compare", "a.json", "b.json"], "There is no report file a.json."),
    (["attribute", FLOW, DATA, "--map", "question"], "--map takes NAME=VALUE"),
    (["attribute", FLOW, DATA, "--by", "line"], "--by is step, operator or call, got 'line'."),
    (["attribute", FLOW, FLOW, DATA], "attribute takes one FLOW"),
    (["rank", FLOW, FLOW, DATA, "--input-map", "question"], "--map takes NAME=VALUE"),
    (["generate", "add two numbers", "--library", "nope.flow"], "There is no file nope.flow"),
    (["generate", "add two numbers", "--library", "empty_dir"], "empty_dir (given to --library)"),
    (["generate", "add two numbers", "-n", "0"], "-n is the number of candidates"),
    (["library", "mine", "nope.flow", "-o", "lib.flow"], "There is no file nope.flow."),
    (["import", "core", "nope.core"], "There is no file nope.core."),
    (["import", "core", "empty_dir"], "empty_dir is a folder; give a file."),
    (["ops", "ensembel"], "No such operator: 'ensembel' (did you mean 'ensemble'?)"),
    (["ops", "--format", "yaml"], "unknown format 'yaml'; choose one of text"),
    (["sandbox", "run", "--isolation", "shared", FLOW], "--isolation is fresh or reset"),
    (["sandbox", "run", "--memory", "lots", FLOW], "--memory is a size such as 512m"),
]


@pytest.mark.parametrize(
    ("args", "message"),
    BAD_INPUT,
    ids=[" ".join(Path(a).name for a in args) for args, _ in BAD_INPUT],
)
def test_a_bad_input_exits_2_with_one_paragraph(
    tmp_path: Path, args: list[str], message: str
) -> None:
    (tmp_path / "empty_dir").mkdir()
    res = (
        treadle(*args, "--model", 'scripted:"x"', cwd=tmp_path)
        if _takes_model(args)
        else (treadle(*args, cwd=tmp_path))
    )
    assert res.returncode == EXIT_INPUT, (res.returncode, res.stderr)
    assert message in one_paragraph(res.stderr)
    assert res.stdout == ""
    assert not (tmp_path / "lib.flow").exists()


def _takes_model(args: list[str]) -> bool:
    return args[0] in ("run", "generate", "attribute", "rank") or args[:2] == ["eval", FLOW]


def test_the_verdict_and_a_failed_run_keep_their_codes(tmp_path: Path) -> None:
    """1: the answer is no (a file has errors); 3: the work failed (a model that is not there)."""
    bad = tmp_path / "bad.flow"
    bad.write_text("workflow f(q: text) -> a: text\n  a = genrate from q\nend\n")
    assert treadle("check", str(bad), cwd=tmp_path).returncode == EXIT_FAILED
    res = treadle(
        "run", FLOW, "-i", "question=hi", "--model", "openai:http://127.0.0.1:9/v1#m",
        "--retries", "0", cwd=tmp_path,
    )  # fmt: skip
    assert res.returncode == EXIT_RUNTIME, res.stderr
    text = one_paragraph(res.stderr)
    assert text.startswith("Error: ") and re.search(r"[.?!] The trace so far is in ", text)


# ---------------------------------------------------------------- the one mapping


def test_explain_maps_each_kind_of_error(tmp_path: Path) -> None:
    trace = tmp_path / "t.jsonl"
    trace.write_text("")
    assert explain(InputError("Bad --rows.")) == (EXIT_INPUT, "Error: Bad --rows.")
    assert explain(CompileError("f.flow:1:1: error[E101]: ...")) == (
        EXIT_INPUT,
        "f.flow:1:1: error[E101]: ...",
    )  # the diagnostics as rendered, no prefix
    # a sentence ends before the trace's (issue 21: "...(tried 5 times) The trace so far")
    code, text = explain(ModelError("no server at :9 (tried 5 times)"), trace=trace)
    assert code == EXIT_RUNTIME
    assert text == f"Error: no server at :9 (tried 5 times). The trace so far is in {trace}."
    assert explain(RunError("stopped?"), trace=tmp_path / "missing.jsonl")[1] == "Error: stopped?"
    assert explain(TreadleError("a scorer returned 7"))[0] == EXIT_RUNTIME
    assert explain(FileNotFoundError(2, "No such file or directory", "x/y.flow")) == (
        EXIT_INPUT,
        "Error: x/y.flow: No such file or directory.",
    )
    assert explain(KeyboardInterrupt(), interrupted="Interrupted: stopped") == (
        EXIT_INTERRUPTED,
        "Interrupted: stopped.",
    )
    code, text = explain(ValueError("oops"))
    assert code == EXIT_FAILED and text.startswith("Internal error (a bug in treadle): ValueError")
    assert "TREADLE_DEBUG=1" in text


def test_treadle_debug_raises_what_is_not_the_users_input(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TREADLE_DEBUG", "1")
    with pytest.raises(ValueError):
        fail(ValueError("a bug"))
    assert fail(InputError("yours")) == EXIT_INPUT
    assert capsys.readouterr().err == "Error: yours.\n"
    monkeypatch.delenv("TREADLE_DEBUG")
    assert os.environ.get("TREADLE_DEBUG") is None
    assert fail(RunError("boom")) == EXIT_RUNTIME


def test_name_value_pairs() -> None:
    assert parse_pairs(["a=1", " b =x=y", "a=2", "c="], "--input") == {
        "a": "2",
        "b": "x=y",
        "c": "",
    }
    assert parse_pairs(None, "--map") == {}
    for bad in ("nothing", "=value", " =v"):
        with pytest.raises(InputError, match="--map takes NAME=VALUE"):
            parse_pairs([bad], "--map")
