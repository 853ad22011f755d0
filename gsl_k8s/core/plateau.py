"""Online plateau detection on an evaluation curve: the criterion H of GSL's Algorithm 1."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class PlateauCriterion:
    """When a learning curve (higher is better) counts as plateaued.

    Attributes:
        window: Moving-average window, in evaluations.
        min_improvement: Margin by which the smoothed value must beat the best smoothed
            value so far to count as an improvement.
        patience: Consecutive evaluations without improvement that mean "plateau".
        min_steps: No plateau is declared before this many env steps.
    """

    window: int = 3
    min_improvement: float = 0.01
    patience: int = 4
    min_steps: int = 0

    def __post_init__(self) -> None:
        if self.window < 1:
            raise ValueError(f"window must be >= 1, got {self.window}")
        if self.patience < 1:
            raise ValueError(f"patience must be >= 1, got {self.patience}")
        if not self.min_improvement >= 0.0:
            raise ValueError(f"min_improvement must be >= 0, got {self.min_improvement}")
        if self.min_steps < 0:
            raise ValueError(f"min_steps must be >= 0, got {self.min_steps}")


class PlateauDetector:
    """Online, causal plateau detector on a series of (env_step, value) evaluations.

    Higher values are better; `update` is called once per evaluation, in step order.
    """

    def __init__(self, criterion: PlateauCriterion):
        self.criterion = criterion
        self._recent: deque[float] = deque(maxlen=criterion.window)
        self._smoothed: list[float] = []
        self._best_smoothed = -math.inf
        self._evaluations_without_improvement = 0
        self._last_step: int | None = None
        self._plateau_step: int | None = None

    def update(self, step: int, value: float) -> bool:
        """Feed one evaluation; True once the curve has plateaued (and ever after)."""
        if self._last_step is not None and step < self._last_step:
            raise ValueError(f"steps must be non-decreasing, got {step} after {self._last_step}")
        if not math.isfinite(value):
            raise ValueError(f"value must be finite, got {value} at step {step}")
        self._last_step = step
        self._recent.append(float(value))
        smoothed = sum(self._recent) / len(self._recent)
        self._smoothed.append(smoothed)

        if smoothed > self._best_smoothed + self.criterion.min_improvement:
            self._best_smoothed = smoothed
            self._evaluations_without_improvement = 0
        else:
            self._evaluations_without_improvement += 1

        if (
            self._plateau_step is None
            and self._evaluations_without_improvement >= self.criterion.patience
            and step >= self.criterion.min_steps
        ):
            self._plateau_step = step
        return self.plateaued

    @property
    def plateaued(self) -> bool:
        """Whether a plateau has been detected."""
        return self._plateau_step is not None

    @property
    def plateau_step(self) -> int | None:
        """The step of the evaluation at which the plateau was detected, if it was."""
        return self._plateau_step

    @property
    def smoothed(self) -> list[float]:
        """The moving-average series so far, one value per evaluation."""
        return list(self._smoothed)


def find_plateau(points: Iterable[tuple[int, float]], criterion: PlateauCriterion) -> int | None:
    """Replay a whole series through a fresh detector; the step at which it fires, or None."""
    detector = PlateauDetector(criterion)
    for step, value in points:
        detector.update(step, value)
    return detector.plateau_step
