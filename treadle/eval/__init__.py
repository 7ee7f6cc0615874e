"""Evaluation: a dataset × a workflow → per-row traces, scores and a report.

Datasets, scorers, the one row runner every analysis goes through, the results file, reports,
statistics, `eval compare`, the progress display and the executors (local, Ray).
"""

from __future__ import annotations

from treadle.eval.datasets import Dataset, DatasetError, Row, load_dataset
from treadle.eval.evaluate import evaluate, evaluate_sync
from treadle.eval.report import EvalReport, RowReport, StepStats
from treadle.eval.scorers import Score, Scorer, ScorerError

__all__ = [
    "Dataset",
    "DatasetError",
    "EvalReport",
    "Row",
    "RowReport",
    "Score",
    "Scorer",
    "ScorerError",
    "StepStats",
    "evaluate",
    "evaluate_sync",
    "load_dataset",
]
