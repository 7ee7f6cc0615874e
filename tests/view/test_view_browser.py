"""`treadle view` in a real headless chromium, on runs real `treadle` commands made: every page
kind shows the rows and numbers the files hold, filters and sorting work, a row opens with its
trace, the export renders from a file with no server, and a running evaluation's new rows
appear. Any JavaScript console error fails the test that caused it."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import orjson
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from view_browser import chromium, console_errors, wait_for
from view_fixtures import ANSWERS, ARITH, EXAMPLES, make_runs, math_model

pytestmark = pytest.mark.slow

Serve = Callable[..., AbstractContextManager[subprocess.Popen[bytes]]]


def view_argv(*args: str) -> list[str]:
    return [sys.executable, "-c", "from treadle.cli import main; main()", "view", *args]


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    make_runs(root)
    return root


@pytest.fixture(scope="module")
def viewer(work: Path, server: Serve, free_ports: Callable[[], int]) -> Iterator[str]:
    port = free_ports()
    url = f"http://127.0.0.1:{port}/"
    argv = view_argv(".treadle", "--no-open", "--port", str(port))
    with server(argv, url + "api/catalog", work / "view.log", what="treadle view", cwd=work):
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    with chromium() as driver:
        yield driver


@pytest.fixture(autouse=True)
def no_console_errors(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "browser" in request.fixturenames:
        driver = request.getfixturevalue("browser")
        errors = console_errors(driver)
        assert not errors, f"JavaScript console errors: {errors}"


def catalog(viewer: str) -> dict[str, Any]:
    import urllib.request

    with urllib.request.urlopen(viewer + "api/catalog", timeout=10) as r:
        return dict(orjson.loads(r.read()))


def source_id(viewer: str, path_end: str) -> str:
    found = [s for s in catalog(viewer)["sources"] if s["path"].endswith(path_end)]
    assert len(found) == 1, (path_end, catalog(viewer))
    return str(found[0]["id"])


def open_page(driver: WebDriver, url: str, ready: str) -> None:
    """Load `url` afresh (a URL differing only in its #hash would not reload) and wait."""
    driver.get("about:blank")
    driver.get(url)
    wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, ready), what=ready)


def texts(driver: WebDriver, css: str) -> list[str]:
    return [e.text for e in driver.find_elements(By.CSS_SELECTOR, css)]


def row_ids(driver: WebDriver) -> list[str]:
    return [
        e.get_attribute("data-id") or ""
        for e in driver.find_elements(By.CSS_SELECTOR, "#rows tbody tr")
    ]


def type_into(driver: WebDriver, element_id: str, text: str) -> None:
    """Replace an input's text as a person does (clear() fires no input event)."""
    box = driver.find_element(By.ID, element_id)
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(Keys.BACKSPACE)
    if text:
        box.send_keys(text)


def card(driver: WebDriver, cls: str) -> str:
    return driver.find_element(By.CSS_SELECTOR, f"#summary .card.{cls} .value").text


# ---------------------------------------------------------------- the pages


def test_home_lists_every_run_by_kind(viewer: str, browser: WebDriver, tmp_path: Path) -> None:
    open_page(browser, viewer, "ul.sources")
    kinds = {e.get_attribute("data-kind"): len(e.find_elements(By.TAG_NAME, "li"))
             for e in browser.find_elements(By.CSS_SELECTOR, "ul.sources")}  # fmt: skip
    # 3 evaluations, attribution's baseline and ablation, rank's warm-up, few-shot and full runs;
    # the report of qa-half is its results file's run, listed once
    assert kinds == {"eval": 3 + 2 + 5, "trace": 1, "attribution": 1, "ranking": 1}
    browser.save_screenshot(str(tmp_path / "home.png"))


def test_eval_page_summary_rows_filters_and_a_row(
    viewer: str, browser: WebDriver, work: Path, tmp_path: Path
) -> None:
    report = orjson.loads((work / ".treadle" / "qa-half.json").read_bytes())  # what eval wrote
    sid = source_id(viewer, "qa-half.jsonl")
    open_page(browser, f"{viewer}#/eval/{sid}", "#rows tbody tr")
    assert card(browser, "score") == f"{report['mean']:.3f}" == "0.750"
    ci = browser.find_element(By.CSS_SELECTOR, "#summary .card.score .sub").text
    assert ci == f"95% CI [{report['ci_low']:.3f}, {report['ci_high']:.3f}]"
    assert card(browser, "errors") == "0" and card(browser, "rows") == "20"
    assert card(browser, "tokens") == str(report["tokens_in"] + report["tokens_out"])
    assert row_ids(browser) == [r["id"] for r in report["rows"]]
    assert texts(browser, "#steps tbody td:first-child") == list(report["steps"])
    # filters: score at most 0 → the five rows the model got wrong; text; status
    type_into(browser, "filter-max", "0")
    wait_for(lambda: len(row_ids(browser)) == 5)
    assert row_ids(browser) == [f"qa-0{i}" for i in range(1, 6)]
    assert browser.find_element(By.ID, "row-count").text == "5 of 20 rows"
    type_into(browser, "filter-max", "")
    type_into(browser, "filter-text", "pacific")
    wait_for(lambda: row_ids(browser) == ["qa-09"])
    type_into(browser, "filter-text", "")
    browser.find_element(By.CSS_SELECTOR, "#filter-status option[value=failed]").click()
    wait_for(lambda: browser.find_element(By.ID, "row-count").text == "0 of 20 rows")
    browser.find_element(By.CSS_SELECTOR, "#filter-status option[value='']").click()
    wait_for(lambda: len(row_ids(browser)) == 20)
    # sorting by score, descending: the right answers first
    head = browser.find_element(By.CSS_SELECTOR, "#rows th[data-key=score]")
    head.click()
    head = browser.find_element(By.CSS_SELECTOR, "#rows th[data-key=score]")
    head.click()
    scores = texts(browser, "#rows tbody tr td:nth-child(3)")
    assert scores == sorted(scores, reverse=True) and scores[0] == "1.000"
    browser.save_screenshot(str(tmp_path / "eval.png"))
    # a row: inputs, output, target, every scorer with its score, the trace
    browser.find_element(By.CSS_SELECTOR, "#rows tbody tr[data-id=qa-03]").click()
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#row-detail"))
    question = next(q for q in ANSWERS if "plants" in q)
    assert question in browser.find_element(By.CSS_SELECTOR, "pre.inputs").text
    assert browser.find_element(By.CSS_SELECTOR, "pre.output").text == "no idea"
    assert "carbon dioxide" in browser.find_element(By.CSS_SELECTOR, "pre.target").text
    assert texts(browser, "#scores tbody td:first-child") == ["exact", "f1"]
    assert texts(browser, "#scores tbody td:nth-child(2)") == ["0.000", "0.000"]
    bars = browser.find_elements(By.CSS_SELECTOR, ".gantt g.span")
    assert [b.get_attribute("data-kind") for b in bars] == ["workflow", "step", "model"]
    bars[2].click()
    detail = browser.find_element(By.ID, "span-detail").text
    assert "tokens" in detail and "no idea" in detail
    browser.save_screenshot(str(tmp_path / "row.png"))


def test_a_sandbox_span_shows_its_stdout(viewer: str, browser: WebDriver, tmp_path: Path) -> None:
    sid = source_id(viewer, "math.jsonl")
    open_page(browser, f"{viewer}#/eval/{sid}/row/arith-001", ".gantt")
    sandbox = browser.find_elements(By.CSS_SELECTOR, ".gantt g.span[data-kind=sandbox]")
    assert sandbox, "no sandbox span drawn"
    sandbox[0].click()
    stdout = browser.find_element(By.CSS_SELECTOR, "#span-detail pre.stdout").text
    assert 'treadle-result {"value": 42' in stdout  # the harness's report of solve()
    assert "6 * 7" in browser.find_element(By.CSS_SELECTOR, "#span-detail pre.span-inputs").text
    browser.save_screenshot(str(tmp_path / "sandbox.png"))


def test_compare_two_runs(viewer: str, browser: WebDriver, tmp_path: Path) -> None:
    a, b = source_id(viewer, "qa-half.jsonl"), source_id(viewer, "qa-all.jsonl")
    open_page(browser, f"{viewer}#/compare/{a}/{b}", "#compare-rows tbody tr")
    diff = browser.find_element(By.CSS_SELECTOR, "#compare-result .card.diff .value").text
    assert diff == "0.250"  # 15 rows right in both, 5 right only in B
    assert "B is better by +0.250" in browser.find_element(By.CSS_SELECTOR, ".verdict").text
    browser.find_element(By.ID, "changed-only").click()
    ids = lambda: [e.get_attribute("data-id") for e in  # noqa: E731
                   browser.find_elements(By.CSS_SELECTOR, "#compare-rows tbody tr")]  # fmt: skip
    wait_for(lambda: ids() == [f"qa-0{i}" for i in range(1, 6)])
    browser.save_screenshot(str(tmp_path / "compare.png"))


def test_attribution_page(viewer: str, browser: WebDriver, work: Path, tmp_path: Path) -> None:
    report = orjson.loads((work / ".treadle" / "attribution.json").read_bytes())
    open_page(browser, f"{viewer}#/attribution/{source_id(viewer, 'attribution.json')}", "#units")
    measured = [u for u in report["units"] if u["effect"] is not None]
    bars = browser.find_elements(By.CSS_SELECTOR, "#attr-chart rect.effect")
    assert [b.get_attribute("data-unit") for b in bars] == [u["unit"] for u in measured]
    assert len(texts(browser, "#units tbody tr")) == len(report["units"])
    assert card(browser, "score") == f"{report['baseline']:.3f}"
    if report["cumulative"]:
        points = browser.find_elements(By.CSS_SELECTOR, "#attr-cumulative circle")
        assert len(points) == len(report["cumulative"]) + 1
    browser.save_screenshot(str(tmp_path / "attribution.png"))


def test_ranking_page(viewer: str, browser: WebDriver, work: Path, tmp_path: Path) -> None:
    report = orjson.loads((work / ".treadle" / "rank.json").read_bytes())
    open_page(browser, f"{viewer}#/ranking/{source_id(viewer, 'rank.json')}", "#flows")
    verified = [f for f in report["flows"] if f["full"] is not None]
    assert len(browser.find_elements(By.CSS_SELECTOR, "#rank-scatter circle")) == len(verified) == 3
    assert card(browser, "saving") == f"{100 * report['saving']:.1f}%"
    ranks = texts(browser, "#flows tbody td:first-child")
    assert ranks == ["1", "2", "3"]
    browser.save_screenshot(str(tmp_path / "ranking.png"))


def test_trace_page(viewer: str, browser: WebDriver, tmp_path: Path) -> None:
    open_page(browser, f"{viewer}#/trace/{source_id(viewer, 'answer.jsonl')}", ".gantt")
    bars = browser.find_elements(By.CSS_SELECTOR, ".gantt g.span")
    assert [b.get_attribute("data-kind") for b in bars] == ["workflow", "step", "model"]
    bars[1].click()
    assert "generate" in browser.find_element(By.ID, "span-detail").text
    browser.save_screenshot(str(tmp_path / "trace.png"))


# ---------------------------------------------------------------- one file, export, live


def test_a_single_results_file_opens_its_run(
    work: Path, server: Serve, free_ports: Callable[[], int], browser: WebDriver, tmp_path: Path
) -> None:
    port = free_ports()
    log = tmp_path / "view.log"
    argv = view_argv(".treadle/evals/qa-all.jsonl", "--no-open", "--port", str(port))
    base = f"http://127.0.0.1:{port}/"
    with server(argv, base + "api/catalog", log, what="treadle view", cwd=work):
        line = wait_for(lambda: "#/eval/" in log.read_text() and log.read_text(), what="the URL")
        url = line.split("treadle view: ", 1)[1].split()[0]
        assert url.startswith(base + "#/eval/")
        open_page(browser, url, "#rows tbody tr")  # the rows on the first screen
        assert len(row_ids(browser)) == 20 and card(browser, "score") == "1.000"
        browser.get("about:blank")  # stop polling before the server stops


def test_export_renders_offline(work: Path, browser: WebDriver, tmp_path: Path) -> None:
    out = tmp_path / "view.html"
    done = subprocess.run(view_argv(".treadle", "--export", str(out)), cwd=work,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    html = out.read_text()
    assert "<script src" not in html and '<link rel="stylesheet"' not in html
    open_page(browser, out.as_uri(), "ul.sources")
    browser.find_element(By.PARTIAL_LINK_TEXT, "qa-half.jsonl").click()
    wait_for(lambda: len(row_ids(browser)) == 20)
    assert card(browser, "score") == "0.750"
    browser.find_element(By.CSS_SELECTOR, "#rows tbody tr[data-id=qa-01]").click()
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, ".gantt g.span"))
    # nothing was fetched: the page, its script, style and data came in the one file
    resources = browser.execute_script("return performance.getEntriesByType('resource').length")
    assert resources == 0
    browser.save_screenshot(str(tmp_path / "export.png"))


def test_a_running_evaluation_shows_new_rows(
    tmp_path: Path, server: Serve, free_ports: Callable[[], int], browser: WebDriver
) -> None:
    # each row's program sleeps 1 s and rows run one at a time: the run takes ~10 s
    results = tmp_path / ".treadle" / "evals" / "slow.jsonl"
    run = subprocess.Popen(
        [sys.executable, "-c", "from treadle.cli import main; main()", "eval",
         str(EXAMPLES / "solve_math.flow"), str(ARITH), "--limit", "10", "-j", "1", "--sandbox",
         "process", "--model", math_model(pause=1.0), "--scorer", "numeric", "--display", "none",
         "--no-cache", "--results", str(results)],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        port = free_ports()
        base = f"http://127.0.0.1:{port}/"
        wait_for(lambda: results.is_file() and results.read_bytes().count(b"\n") >= 2, 60,
                 "the first row")  # fmt: skip
        argv = view_argv(str(results), "--no-open", "--port", str(port))
        with server(argv, base + "api/catalog", tmp_path / "view.log", what="treadle view"):
            sid = catalog(base)["single"]
            open_page(browser, f"{base}#/eval/{sid}", "#rows tbody tr")
            first = len(row_ids(browser))
            assert first < 10, "the run finished before the page opened"
            started = time.monotonic()
            wait_for(lambda: len(row_ids(browser)) > first, 8, "a new row")
            assert time.monotonic() - started < 8
            assert run.wait(timeout=120) == 0, run.stderr.read() if run.stderr else ""
            wait_for(lambda: len(row_ids(browser)) == 10, 8, "every row")
            assert card(browser, "rows") == "10"
            browser.get("about:blank")
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
