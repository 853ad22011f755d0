"""Retention: how much of what the specialists learned the finetuned generalist keeps.

Per variation a specialist trained on, its success there is compared with the final
generalist's. A variation is *mastered* where its specialist's success reaches
`MASTERED_SUCCESS`; the aggregate is the mean, over the mastered variations, of the final
success as a fraction of the specialist's, each capped at 1 (a variation the finetune
improved on does not hide one it lost).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from statistics import fmean
from typing import Any

MASTERED_SUCCESS = 0.8  # a specialist's success from which its variation counts as mastered


def best_specialist_success(evaluations: Iterable[Mapping[str, float]]) -> dict[str, float]:
    """Per variation, the best success any specialist reached on it (over every round), from
    the specialists' per-variation evaluations (variation id -> success rate)."""
    best: dict[str, float] = {}
    for per_variation in evaluations:
        for variation, success in per_variation.items():
            best[variation] = max(success, best.get(variation, 0.0))
    return best


def fraction_retained(specialist: float, final: float) -> float | None:
    """The final success as a fraction of the specialist's, at most 1; None where the
    specialist had none to keep."""
    return min(1.0, final / specialist) if specialist > 0.0 else None


def retention_summary(
    specialist: Mapping[str, float],
    final: Mapping[str, float],
    mastered_success: float = MASTERED_SUCCESS,
) -> dict[str, Any]:
    """The report's `retention` section: per variation a specialist trained on, its success,
    the final success and the fraction retained; the variations mastered (specialist success
    >= `mastered_success`) and, over them, the mean successes and the mean fraction retained
    (None where no specialist mastered a variation)."""
    variations = sorted(specialist, key=int)
    per_variation = {
        v: {
            "specialist": specialist[v],
            "final": final.get(v, 0.0),
            "retained": fraction_retained(specialist[v], final.get(v, 0.0)),
        }
        for v in variations
    }
    mastered = [v for v in variations if specialist[v] >= mastered_success]
    rows = [per_variation[v] for v in mastered]
    return {
        "mastered_success": mastered_success,
        "per_variation": per_variation,
        "mastered": [int(v) for v in mastered],
        "specialist_success": fmean(r["specialist"] for r in rows) if rows else None,
        "final_success": fmean(r["final"] for r in rows) if rows else None,
        "retained": fmean(r["retained"] for r in rows) if rows else None,
    }
