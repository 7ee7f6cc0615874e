"""How fast `treadle view` is on a large evaluation (issue 18: stays fast on 10,000 rows).

A real `treadle eval` of examples/answer.flow on N generated rows (a scripted model: one row in
three right) writes the results file; then, in Debian's headless chromium against the real
server on 127.0.0.1, this measures: the server's answer for the run's page (the report built
from the results file, as JSON), the page's first draw of the rows table, a text filter, a sort
by score, and opening a row with its trace. The table draws one page of 100 rows; filtering and
sorting run over all N in the browser.

    python benchmarks/view_rows.py [--rows 10000]

The last line printed is one JSON object with the figures (seconds, bytes).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "view"))


def make_run(work: Path, rows: int) -> Path:
    """A finished evaluation of `rows` rows; its results file."""
    data = work / "rows.jsonl"
    with data.open("w") as f:
        for i in range(rows):
            f.write(json.dumps({"id": f"r{i:05d}", "question": f"What is {i} plus one?",
                                "answer": "1" if i % 3 == 0 else "2"}) + "\n")  # fmt: skip
    results = work / ".treadle" / "evals" / "big.jsonl"
    subprocess.run(
        [sys.executable, "-c", "from treadle.cli import main; main()", "eval",
         str(ROOT / "examples" / "answer.flow"), str(data), "--model", 'scripted:{"":"1"}',
         "--scorer", "exact", "--display", "none", "--no-cache", "-j", "64", "--results",
         str(results)],
        cwd=work, check=True, stdout=subprocess.DEVNULL, env={**os.environ,
        "TREADLE_CACHE_DIR": str(work / "cache")},
    )  # fmt: skip
    return results


def measure(results: Path) -> dict[str, Any]:
    from selenium.webdriver.common.by import By
    from view_browser import chromium, console_errors, wait_for

    from treadle.view import Catalog, Views, ViewServer

    server = ViewServer(Views(Catalog.of([results])))
    server.start()
    try:
        sid = next(iter(server.views.catalog.sources))
        started = time.perf_counter()
        with urllib.request.urlopen(f"{server.url}api/source/{sid}") as r:
            body = r.read()
        api_s = time.perf_counter() - started
        n = len(json.loads(body)["rows"])
        with chromium() as driver:
            started = time.perf_counter()
            driver.get(f"{server.url}#/eval/{sid}")
            wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, "#rows tbody tr"), 60)
            first_draw_s = time.perf_counter() - started
            drawn = len(driver.find_elements(By.CSS_SELECTOR, "#rows tbody tr"))
            count = lambda: driver.find_element(By.ID, "row-count").text  # noqa: E731
            started = time.perf_counter()
            driver.find_element(By.ID, "filter-text").send_keys("r0000")  # r00000-r00009
            wait_for(lambda: count().startswith("10 of"), 30)
            filter_s = time.perf_counter() - started
            filtered = count()
            driver.execute_script(
                "const e = document.getElementById('filter-text'); e.value = '';"
                "e.dispatchEvent(new Event('input'));"
            )
            wait_for(lambda: count().startswith(f"{n} of"))
            started = time.perf_counter()
            driver.find_element(By.CSS_SELECTOR, "#rows th[data-key=score]").click()
            wait_for(lambda: driver.find_element(By.CSS_SELECTOR, "#rows th.sorted"))
            sort_s = time.perf_counter() - started
            started = time.perf_counter()
            driver.find_element(By.CSS_SELECTOR, "#rows tbody tr").click()
            wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, ".gantt g.span"), 30)
            row_s = time.perf_counter() - started
            errors = console_errors(driver)
    finally:
        server.shutdown()
        server.server_close()
    return {
        "rows": n,
        "payload_bytes": len(body),
        "api_s": round(api_s, 3),
        "first_draw_s": round(first_draw_s, 3),
        "filter_s": round(filter_s, 3),
        "filtered": filtered,
        "sort_s": round(sort_s, 3),
        "open_row_s": round(row_s, 3),
        "rows_in_dom": drawn,
        "console_errors": len(errors),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        results = make_run(Path(tmp), args.rows)
        eval_s = time.perf_counter() - started
        figures = measure(results)
    figures["eval_s"] = round(eval_s, 1)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
