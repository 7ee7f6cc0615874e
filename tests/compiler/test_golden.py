"""One golden file per diagnostic code: the input, and the exact rendered diagnostics.

Regenerate after a deliberate change with `UPDATE_GOLDEN=1 pytest tests/compiler/test_golden.py`
and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from flow_ops import OPS

from treadle.compiler import CODES, check_file
from treadle.compiler.diagnostics import render_all

GOLDEN = Path(__file__).parent / "golden"
CASES = sorted(p.stem for p in GOLDEN.glob("*.flow") if p.stem[:1] in "EW" and p.stem[1:].isdigit())


def render(code: str) -> tuple[str, list[str]]:
    diags = check_file(f"{code}.flow", operators=OPS)
    return render_all(diags) + "\n", [d.code for d in diags]


def test_every_code_has_a_golden() -> None:
    assert sorted(CODES) == CASES


@pytest.mark.parametrize("code", CASES)
def test_golden(code: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(GOLDEN)
    text, codes = render(code)
    assert code in codes
    out = GOLDEN / f"{code}.out"
    if os.environ.get("UPDATE_GOLDEN"):
        out.write_text(text, encoding="utf-8")
    assert text == out.read_text(encoding="utf-8")
