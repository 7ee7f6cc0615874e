"""`treadle attribute` from the command line: a table, a JSON report, a pruned flow, exit codes."""

from __future__ import annotations

import functools
import json
from pathlib import Path

from cli_runner import treadle as run_treadle

ROOT = Path(__file__).resolve().parents[2]
QA = ROOT / "examples" / "data" / "qa.jsonl"
# format passes the short answer through; revise turns every draft into "Paris"
MODEL = 'scripted:{"State its":"Paris","Improve":"Paris","":"I am not sure"}'


#: `treadle ARGS` in a fresh process, with this file's time budget
treadle = functools.partial(run_treadle, timeout=300)


def test_attribute_prints_ranked_units_and_writes_report_and_pruned_flow(tmp_path: Path) -> None:
    flow = ROOT / "examples" / "variants" / "qa_revise.flow"
    out = treadle(
        "attribute", str(flow), str(QA), "--model", MODEL, "--scorer", "contains", "--limit", "3",
        "--report", "attr.json", "--prune", "pruned.flow", "--progress", "plain", cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "qa.answer" in out.stdout and "model calls:" in out.stdout
    assert "baseline: " in out.stderr  # progress
    data = json.loads((tmp_path / "attr.json").read_text())
    units = {u["unit"]: u for u in data["units"]}
    # only the first question's answer is Paris: revise carries that one success
    assert data["baseline"] == 1 / 3
    assert units["qa.answer"]["effect"] == 1 / 3 and units["qa.answer"]["share"] == 1.0
    assert not units["qa.draft"]["removable"]
    assert data["model_calls"] < data["model_calls_naive"]
    # one success in three rows is no detectable effect (its interval includes 0), so prune
    # tries dropping revise; the pruned flow scores 0 on the same rows, so it backs off to the
    # original (a pruned flow never scores below it)
    assert units["qa.answer"]["ci_low"] == 0.0 and units["qa.answer"]["sign"] == "none"
    assert (tmp_path / "pruned.flow").read_text() == flow.read_text()
    assert data["prune"]["removed"] == [] and list(data["prune"]["backed_off"]) == ["qa.answer"]
    assert data["prune"]["score"] == data["prune"]["baseline"] == 1 / 3
    assert data["prune"]["model_calls"] == data["prune"]["model_calls_baseline"] == 6
    assert "backed off qa.answer: the pruned flow scored 0.000" in out.stdout


def test_attribute_bad_input_exits_2(tmp_path: Path) -> None:
    out = treadle("attribute", "missing.flow", str(QA), "--model", MODEL, cwd=tmp_path)
    assert out.returncode == 2 and "missing.flow" in out.stderr
    out = treadle("attribute", str(ROOT / "examples" / "variants" / "qa_revise.flow"), str(QA),
                  "--by", "nonsense", cwd=tmp_path)  # fmt: skip
    assert out.returncode == 2


def test_rank_cli_on_a_scripted_model(tmp_path: Path) -> None:
    flows = [str(ROOT / "examples" / "variants" / n) for n in
             ("qa_short.flow", "qa_quiz.flow", "qa_direct.flow")]  # fmt: skip
    model = 'scripted:{"You predict":"0.4","":"Paris"}'
    out = treadle(
        "rank", *flows, str(QA), "--model", model, "--scorer", "contains", "--limit", "6",
        "--warmup", "1", "--min-rows", "2", "--verify", "--report", "rank.json",
        "--progress", "none", cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "Spearman" in out.stdout and "saved" in out.stdout
    data = json.loads((tmp_path / "rank.json").read_text())
    assert [f["rank"] for f in data["flows"]] == [1, 2, 3]
    for f in data["flows"]:
        assert f["full"] == 1 / 6  # "Paris" is right for the first question only
        if not f["warmup"]:
            assert f["s_pred"] == 0.4 and 0 <= f["s_few"] <= 1


def test_the_analysis_commands_take_the_same_options(tmp_path: Path) -> None:
    """eval, attribute and rank spell their shared options alike (`--map` or `--input-map`,
    `--rows A-B`, `--display` or `--progress`, `--isolation`) and check them alike."""
    from typer.testing import CliRunner

    from treadle.cli import app

    for command in (["eval", "run"], ["attribute"], ["rank"]):
        page = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "200"}).output
        for option in ("--map", "--input-map", "--rows", "A-B", "--display", "--isolation",
                       "--sandbox", "--no-cache", "--concurrency", "--limit"):  # fmt: skip
            assert option in page, (command, option)
    flow = ROOT / "examples" / "variants" / "qa_revise.flow"
    out = treadle(
        "attribute", str(flow), str(QA), "--model", MODEL, "--scorer", "contains", "--rows",
        "1-2", "--map", "question=question", "--isolation", "fresh", "--sandbox", "process",
        "--display", "none", "--report", "a.json", cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert json.loads((tmp_path / "a.json").read_text())["n"] == 2
    for command, paths in (("attribute", [str(flow)]), ("rank", [str(flow), str(flow)])):
        out = treadle(command, *paths, str(QA), "--model", MODEL, "--isolation", "bogus",
                      cwd=tmp_path)  # fmt: skip
        assert out.returncode == 2 and "--isolation is fresh or reset" in out.stderr, out.stderr
