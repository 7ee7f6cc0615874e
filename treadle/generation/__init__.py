"""Generation: workflows written by a model from a task, constrained by the grammar, judged by
the compiler; the capability library (selection, mining). SFT export is in `treadle.train`,
the CoRE importer in `treadle.compiler.importers`.

    result = await treadle.generate("Solve a grade-school math problem ...")
    print(result.flow)
"""

from __future__ import annotations

from treadle.generation.generator import (
    Candidate,
    GenerationResult,
    GenerationSettings,
    generate,
    generate_sync,
)

__all__ = ["Candidate", "GenerationResult", "GenerationSettings", "generate", "generate_sync"]
