"""Studies: many evaluations of one dataset that answer a question about flows.

Counterfactual attribution (which step or capability carries the score) and calibrated ranking
(SCALE: warm-up, difficulty strata, few-shot execution plus self-prediction).
"""

from __future__ import annotations

from treadle.studies.attribution import AttributionReport, attribute, attribute_sync
from treadle.studies.ranking import RankReport, rank, rank_sync

__all__ = ["AttributionReport", "RankReport", "attribute", "attribute_sync", "rank", "rank_sync"]
