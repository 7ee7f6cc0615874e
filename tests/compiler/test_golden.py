"""One golden file per diagnostic code: the input, and the exact rendered diagnostics.

More cases of one code are named `CODE-what.flow` (`E401-prompt-file.flow`).

Regenerate after a deliberate change with `UPDATE_GOLDEN=1 pytest tests/compiler/test_golden.py`
(every case then fails, saying whether it rewrote its file; refused when CI is set), review the
diff, and run the tests again without it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from flow_ops import OPS

from treadle.compiler import CODES, check_file
from treadle.compiler.diagnostics import render_all

GOLDEN = Path(__file__).parent / "golden"
CASES = sorted(
    p.stem
    for p in GOLDEN.glob("*.flow")
    if p.stem[:1] in "EW" and p.stem[1:].partition("-")[0].isdigit()
)


def render(case: str) -> tuple[str, list[str]]:
    diags = check_file(f"{case}.flow", operators=OPS)
    return render_all(diags) + "\n", [d.code for d in diags]


def test_every_code_has_a_golden() -> None:
    assert sorted(CODES) == sorted({c.partition("-")[0] for c in CASES})


@pytest.mark.parametrize("case", CASES)
def test_golden(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(GOLDEN)
    text, codes = render(case)
    assert case.partition("-")[0] in codes
    out = GOLDEN / f"{case}.out"
    if os.environ.get("UPDATE_GOLDEN"):
        # a rewrite is never a pass: the run that writes the files fails, the next one checks
        if os.environ.get("CI"):
            pytest.fail("UPDATE_GOLDEN is refused when CI is set")
        old = out.read_text(encoding="utf-8") if out.exists() else None
        if old != text:
            out.write_text(text, encoding="utf-8")
        pytest.fail(f"UPDATE_GOLDEN: {out.name} {'unchanged' if old == text else 'rewritten'}")
    assert text == out.read_text(encoding="utf-8")
