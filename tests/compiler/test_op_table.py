"""The operator signature table a fresh `treadle check` reads (`treadle.compiler.op_table`)
equals the live registry, is keyed by the operator library's source, and is used (the
registry is not imported) once written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from treadle.compiler import op_table
from treadle.stdlib_ops.registry import COMMON_OPTIONS, operators

ROOT = Path(__file__).resolve().parents[2]


def plain(sig: Any, common: Any) -> dict[str, Any]:
    def opt(o: Any) -> tuple[Any, ...]:
        return (o.name, o.type, o.default, o.description)

    return {
        "params": [(p.name, p.type, p.prep, p.required, p.description) for p in sig.params],
        "options": [opt(o) for o in sig.options],
        "output": sig.output,
        "common": [opt(o) for o in common],
        "subject": sig.subject.name if sig.subject else None,
        "lookups": [sig.option(n) is not None for n in ("timeout", "samples", "temperature")],
    }


def test_the_table_equals_the_live_registry() -> None:
    live = operators()
    table = op_table.load(json.loads(json.dumps(op_table.dump(live))))
    assert list(table) == list(live)
    for name, op in live.items():
        t = table[name]
        assert t.summary == op.summary
        assert plain(t.signature, t.signature.common) == plain(op.signature, COMMON_OPTIONS)
        for p in op.signature.params:
            if p.prep:
                assert t.signature.by_prep(p.prep).name == p.name  # type: ignore[union-attr]


def _fresh(code: str, cache: Path) -> str:
    env = {**os.environ, "TREADLE_CACHE_DIR": str(cache)}
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env
    )
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


CHECK = (
    "import sys; from treadle.compiler import check_file; "
    "d = check_file('examples/use_capabilities.flow'); "
    "print(len(d), 'treadle.stdlib_ops.registry' in sys.modules)"
)


def test_a_fresh_check_reads_the_table_not_the_registry(tmp_path: Path) -> None:
    assert _fresh(CHECK, tmp_path) == "0 True"  # first process: derives and writes the table
    (table,) = (tmp_path / "compiler").glob("operators-*.json")
    assert table.name == f"operators-{op_table.source_hash()}.json"
    assert _fresh(CHECK, tmp_path) == "0 False"  # then: the table only
    # an unreadable table is derived again, never trusted
    table.write_text("{not json")
    assert _fresh(CHECK, tmp_path) == "0 True"
    assert json.loads(table.read_text())["version"] == op_table.TABLE_VERSION


def test_a_changed_source_names_another_table(monkeypatch: pytest.MonkeyPatch) -> None:
    before = op_table.source_hash()
    real = Path.read_bytes

    def edited(self: Path) -> bytes:
        data = real(self)
        return data + b"\n# edited" if self.name == "vote.py" else data

    monkeypatch.setattr(Path, "read_bytes", edited)
    assert op_table.source_hash() != before


def test_a_cache_dir_others_can_write_is_not_used(tmp_path: Path) -> None:
    shared = tmp_path / "compiler"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    out = _fresh("from treadle.compiler.build_cache import cache_dir; print(cache_dir())", tmp_path)
    assert out == "None"
