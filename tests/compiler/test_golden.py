"""Golden files for diagnostics: the input, and the exact rendered diagnostics. One per code
(`E101.flow`), and one per mistake people make that gets a targeted message
(`E001-elif.flow`: the code it must produce, then what it is about).

Regenerate after a deliberate change with `UPDATE_GOLDEN=1 pytest tests/compiler/test_golden.py`
(every case then fails, saying whether it rewrote its file; refused when CI is set), review the
diff, and run the tests again without it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from flow_ops import OPS

from treadle.compiler import CODES, check_file
from treadle.compiler.diagnostics import render_all

GOLDEN = Path(__file__).parent / "golden"
CASE = re.compile(r"[EW]\d{3}(-[a-z0-9_]+)?")
CASES = sorted(p.stem for p in GOLDEN.glob("*.flow") if CASE.fullmatch(p.stem))


def render(code: str) -> tuple[str, list[str]]:
    diags = check_file(f"{code}.flow", operators=OPS)
    return render_all(diags) + "\n", [d.code for d in diags]


def test_every_code_has_a_golden() -> None:
    assert sorted(CODES) == sorted({case[:4] for case in CASES})


@pytest.mark.parametrize("code", CASES)
def test_golden(code: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(GOLDEN)
    text, codes = render(code)
    assert code[:4] in codes
    out = GOLDEN / f"{code}.out"
    if os.environ.get("UPDATE_GOLDEN"):
        # a rewrite is never a pass: the run that writes the files fails, the next one checks
        if os.environ.get("CI"):
            pytest.fail("UPDATE_GOLDEN is refused when CI is set")
        old = out.read_text(encoding="utf-8") if out.exists() else None
        if old != text:
            out.write_text(text, encoding="utf-8")
        pytest.fail(f"UPDATE_GOLDEN: {out.name} {'unchanged' if old == text else 'rewritten'}")
    assert text == out.read_text(encoding="utf-8")
