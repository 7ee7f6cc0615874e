"""The screenshots in docs/view.md: the fixture runs (`view_fixtures.make_runs`), the real
server, Debian's headless chromium.

    PYTHONPATH=. python tests/view/screenshots.py docs/images
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from selenium.webdriver.common.by import By
from view_browser import chromium, console_errors, wait_for
from view_fixtures import make_runs

from treadle.view import Catalog, Views, ViewServer


def shoot(out: Path) -> list[Path]:
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        make_runs(work)
        os.chdir(work)
        server = ViewServer(Views(Catalog.of([".treadle"])))
        server.start()
        ids = {s.path.name: s.id for s in server.views.catalog.sources.values()}
        pages = [
            ("view-home.png", "", "ul.sources", None),
            ("view-eval.png", f"eval/{ids['qa-half.jsonl']}", "#rows tbody tr", None),
            ("view-row.png", f"eval/{ids['qa-half.jsonl']}/row/qa-03", ".gantt",
             ".gantt g.span[data-kind=model]"),
            ("view-sandbox.png", f"eval/{ids['math.jsonl']}/row/arith-001", ".gantt",
             ".gantt g.span[data-kind=sandbox]"),
            ("view-compare.png", f"compare/{ids['qa-half.jsonl']}/{ids['qa-all.jsonl']}",
             "#compare-rows", None),
            ("view-attribution.png", f"attribution/{ids['attribution.json']}", "#units", None),
            ("view-ranking.png", f"ranking/{ids['rank.json']}", "#flows", None),
            ("view-trace.png", f"trace/{ids['answer.jsonl']}", ".gantt", ".gantt g.span"),
        ]  # fmt: skip
        written = []
        try:
            with chromium(1400, 1100) as driver:
                for name, page, ready, click in pages:
                    driver.get("about:blank")
                    driver.get(f"{server.url}#/{page}")
                    wait_for(lambda r=ready: driver.find_elements(By.CSS_SELECTOR, r), what=ready)
                    if click:
                        driver.find_elements(By.CSS_SELECTOR, click)[0].click()
                        height = driver.execute_script("return document.body.scrollHeight")
                        driver.set_window_size(1400, min(2400, max(1100, height + 40)))
                    driver.save_screenshot(str(out / name))
                    driver.set_window_size(1400, 1100)
                    assert not console_errors(driver), name
                    written.append(out / name)
        finally:
            server.shutdown()
            server.server_close()
    return written


if __name__ == "__main__":
    for path in shoot(Path(sys.argv[1])):
        print(path)
