"""What `treadle view` reads, without a browser: files sorted by kind from their content, a run
in progress read without touching its file, the server's answers over real HTTP on 127.0.0.1,
bad paths refused in one paragraph, and an optimize run folder's rounds and lineage."""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from cli_runner import treadle
from view_fixtures import ALL_RIGHT, EXAMPLES, HALF_RIGHT, QA

from treadle.eval.evaluate import read_results
from treadle.view import Catalog, Views, ViewServer
from treadle.view.catalog import classify


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One evaluation (results, report, traces) and one lone trace, by the real CLI."""
    work = tmp_path_factory.mktemp("runs")
    out = treadle("eval", str(EXAMPLES / "answer.flow"), str(QA), "--model", HALF_RIGHT,
                  "--scorer", "exact", "--display", "none", "--results", ".treadle/evals/a.jsonl",
                  "--report", ".treadle/a.json", cwd=work)  # fmt: skip
    assert out.returncode == 0, out.stderr
    out = treadle("run", str(EXAMPLES / "answer.flow"), "--input",
                  "question=What is 12 times 12?", "--model", ALL_RIGHT, "--trace",
                  ".treadle/t.jsonl", cwd=work)  # fmt: skip
    assert out.returncode == 0, out.stderr
    return work


def test_kinds_come_from_content(runs: Path, tmp_path: Path) -> None:
    tr = runs / ".treadle"
    assert classify(tr / "evals" / "a.jsonl") == "eval"
    assert classify(tr / "a.json") == "eval"
    assert classify(tr / "t.jsonl") == "trace"
    assert classify(next((tr / "evals" / "a-traces").iterdir())) == "trace"
    (tmp_path / "other.json").write_text('{"rows": []}')
    (tmp_path / "notes.jsonl").write_text("not json\n")
    assert classify(tmp_path / "other.json") is None and classify(tmp_path / "notes.jsonl") is None


def test_a_folder_lists_each_run_once(runs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(runs)  # the report names its results file relative to where eval ran
    cat = Catalog.of([".treadle"])
    # the row traces are reached from the rows; the report is its results file's run
    assert sorted((s.kind, s.path.name) for s in cat.sources.values()) == [
        ("eval", "a.jsonl"), ("trace", "t.jsonl")]  # fmt: skip
    assert Catalog.of([".treadle/a.json"]).single() is not None  # alone, the report is shown


def test_a_run_in_progress_is_read_as_far_as_it_got(runs: Path, tmp_path: Path) -> None:
    data = (runs / ".treadle" / "evals" / "a.jsonl").read_bytes()
    torn = data[: data.rfind(b"\n", 0, len(data) - 1) + 40]  # a last line half written
    path = tmp_path / "running.jsonl"
    path.write_bytes(torn)
    header, rows = read_results(path, repair=False)
    assert header is not None and len(rows) == data.count(b"\n") - 2
    assert path.read_bytes() == torn  # the viewer never cuts a file a run is writing


@pytest.fixture
def served(runs: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ViewServer]:
    monkeypatch.chdir(runs)
    server = ViewServer(Views(Catalog.of([".treadle"])))
    server.start()
    yield server
    server.shutdown()
    server.server_close()


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_the_server_answers_on_loopback(served: ViewServer, runs: Path) -> None:
    assert served.server_address[0] == "127.0.0.1"
    status, page = get(served.url)
    assert status == 200 and b"<script>" in page and b"http" not in page.split(b"<body>")[1][:400]
    catalog = orjson.loads(get(served.url + "api/catalog")[1])
    sid = next(s["id"] for s in catalog["sources"] if s["kind"] == "eval")
    run = orjson.loads(get(f"{served.url}api/source/{sid}")[1])
    report = orjson.loads((runs / ".treadle" / "a.json").read_bytes())
    assert run["summary"]["mean"] == report["mean"] == 0.75
    assert [r["id"] for r in run["rows"]] == [r["id"] for r in report["rows"]]
    row = orjson.loads(get(f"{served.url}api/source/{sid}/row/qa-02")[1])
    assert row["epochs"][0]["inputs"] == {"question": json.loads(QA.read_text().splitlines()[1])[
        "question"]}  # fmt: skip
    assert [s["kind"] for s in row["epochs"][0]["trace"]["spans"]] == ["workflow", "step", "model"]
    assert get(f"{served.url}api/source/{sid}/row/nope")[0] == 404
    assert get(f"{served.url}api/source/unknown")[0] == 404
    assert get(served.url + "etc/passwd")[0] == 404


def test_bad_paths_are_one_paragraph(tmp_path: Path) -> None:
    out = treadle("view", "missing", "--no-open", cwd=tmp_path)
    assert out.returncode == 2 and "nothing at missing" in out.stderr
    assert "Traceback" not in out.stderr
    (tmp_path / "notes.txt").write_text("hello")
    out = treadle("view", "notes.txt", "--no-open", cwd=tmp_path)
    assert out.returncode == 2 and "is not a file treadle view reads" in out.stderr


def test_export_of_an_empty_folder_says_so(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    out = treadle("view", "empty", "--export", "out.html", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    html = (tmp_path / "out.html").read_text()
    assert '"/api/catalog":{"sources":[]' in html


def test_an_optimize_folder_shows_rounds_and_lineage(runs: Path, tmp_path: Path) -> None:
    """The shape `treadle optimize` is known to write: state.json, experience.jsonl, a folder
    per round with the child flow and its results file."""
    root = tmp_path / "opt"
    for n, name in ((0, "seed.flow"), (1, "child.flow")):
        folder = root / f"round-{n}"
        folder.mkdir(parents=True)
        text = (EXAMPLES / "answer.flow").read_text()
        (folder / name).write_text(text if n == 0 else text.replace("concisely", "in one word"))
        shutil.copy(runs / ".treadle" / "evals" / "a.jsonl", folder / "results.jsonl")
    (root / "state.json").write_text('{"round": 1, "best": "round-1/child.flow"}')
    (root / "experience.jsonl").write_text(json.dumps(
        {"parent": "round-0/seed.flow", "child": "round-1/child.flow", "move": "reword",
         "score": 0.75, "tokens": 296}) + "\n")  # fmt: skip
    page = Views(Catalog.of([root])).answer(f"/api/source/{next(iter(Catalog.of([root]).sources))}")
    assert page is not None and page["kind"] == "optimize"
    assert [r["name"] for r in page["rounds"]] == ["round-0", "round-1"]
    assert [e["mean"] for r in page["rounds"] for e in r["evals"]] == [0.75, 0.75]
    (edge,) = page["lineage"]
    assert '-  answer = generate from "Answer the question concisely.' in edge["diff"]
    assert page["state"] == {"round": 1, "best": "round-1/child.flow"}
