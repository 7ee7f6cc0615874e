"""Mining: a pattern planted in a corpus is found, the library and the rewritten corpus
compile, and every rewritten workflow runs exactly like its original on a scripted model."""

from __future__ import annotations

import hashlib
from pathlib import Path

from typer.testing import CliRunner

from treadle.api import Flow
from treadle.compiler import check_file, compile_file
from treadle.generation.mining import mine
from treadle.runtime.models.base import Message
from treadle.runtime.models.scripted import ScriptedBackend

CORPUS = Path(__file__).parent / "data" / "corpus"
FILES = sorted(CORPUS.glob("*.flow"))


def _answer(messages: list[Message]) -> str:
    """The same prompt always gets the same reply (so identical calls give identical runs)."""
    digest = hashlib.sha256(messages[-1].content.encode()).hexdigest()[:8]
    return f"reply {digest}. Answer: {int(digest, 16) % 97}\nVERDICT: revise\nFEEDBACK: be brief"


async def _run(path: Path, workflow: str, inputs: dict[str, str]) -> tuple[dict, list[str]]:
    backend = ScriptedBackend(_answer)
    result = await Flow.load(path).run(inputs, workflow=workflow, model=backend, cache=False)
    return result.outputs, sorted(backend.prompts)


def test_finds_the_planted_pattern(tmp_path: Path) -> None:
    result = mine(FILES, library_path=tmp_path / "lib.flow")
    assert [c.name for c in result.capabilities] == ["generate_then_review_then_revise"]
    cap = result.capabilities[0]
    assert cap.steps == 3
    assert [o.rsplit("/", 1)[-1] for o in cap.occurrences] == ["a.flow:3", "b.flow:2"]
    assert cap.source.startswith("# generate → review → revise: mined from 2 occurrences")
    lib = tmp_path / "lib.flow"
    lib.write_text(result.library)
    assert [d for d in check_file(lib) if d.is_error] == []


async def test_rewritten_corpus_runs_identically(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    result = mine(FILES, library_path=tmp_path / "lib.flow", rewrite=True, rewrite_dir=out)
    (tmp_path / "lib.flow").write_text(result.library)
    assert sorted(Path(f).name for f in result.rewritten) == ["a.flow", "b.flow"]
    cases = {
        "a.flow": ("qa_a", {"question": "What is 6 times 7?"}),
        "b.flow": ("qa_b", {"topic": "rivers", "style": "plain"}),
    }
    for src, text in result.rewritten.items():
        name = Path(src).name
        new = out / name
        new.write_text(text)
        assert "generate_then_review_then_revise" in text
        compile_file(new)
        workflow, inputs = cases[name]
        before = await _run(Path(src), workflow, inputs)
        after = await _run(new, workflow, inputs)
        assert before == after


def test_no_pattern_below_support(tmp_path: Path) -> None:
    result = mine(FILES, library_path=tmp_path / "lib.flow", min_support=3)
    assert result.capabilities == []


def test_cli(tmp_path: Path) -> None:
    import treadle.cli

    lib = tmp_path / "lib.flow"
    res = CliRunner().invoke(
        treadle.cli.app,
        ["library", "mine", *map(str, FILES), "-o", str(lib), "--rewrite", str(tmp_path / "out")],
    )
    assert res.exit_code == 0, res.output
    assert "generate_then_review_then_revise: 3 steps, 2 occurrences" in res.output
    assert lib.exists() and (tmp_path / "out" / "a.flow").exists()
    compile_file(tmp_path / "out" / "b.flow")
