"""Online plateau detection on a noisy evaluation curve: the criterion H of GSL's Algorithm 1.

A curve (higher is better) has plateaued once the data show, with confidence, that it no
longer rises by `min_improvement` over a window of evaluations:

1. Trend. At each evaluation, fit a least-squares line value ~ a + b * env_step through the
   last `window` evaluations. Its rise across the window, b * (last step - first step), is
   the estimated improvement; a single noisy evaluation moves it little.
2. Noise. The standard error of that rise comes from the scatter of the window's evaluations
   around the line (the ordinary least-squares one), which holds both the sampling noise and
   the policy's own jitter between evaluations. For success rates with a known number of
   episodes per evaluation it is never taken below the sampling noise alone, the binomial
   sqrt(p (1 - p) / episodes) of each evaluation: a window that happens to look smooth cannot
   make a trend look certain.
3. Test. The evaluation counts as flat when the upper confidence bound of the rise is at most
   `min_improvement`: rise + confidence * standard_error <= min_improvement.
4. Decision. After `patience` consecutive flat evaluations (and past `min_steps`) the curve
   has plateaued, for good.

Comparing the mean of the last evaluations with the best such mean so far (the criterion
this one replaces) fires early under noise: the best is a lucky window, and a slow climb
takes longer than the patience to beat it. This test asks for evidence of a plateau, not for
missing evidence of progress: noisier evaluations widen the bound and delay the decision
instead of triggering it, so a curve that still climbs slowly under noise as large as its
climb keeps training (up to its budget). A truly flat curve fires once `window` evaluations
resolve it, i.e. once confidence * standard_error drops below `min_improvement`; with
binomial noise sigma per evaluation and evenly spaced evaluations the standard error of the
rise is sigma * (window - 1) * sqrt(12 / (window^3 - window)), about sigma * sqrt(12 /
window).

Every decision uses only the evaluations up to it (online and causal), and the module is
pure: no I/O, no torch.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class PlateauCriterion:
    """When a learning curve (higher is better) counts as plateaued.

    Attributes:
        window: Evaluations in the trend window (at least 3: the scatter needs one degree of
            freedom beyond the line's two).
        min_improvement: Rise of the trend across the window below which the curve is flat.
        confidence: Standard errors between the estimated rise and its upper bound.
        patience: Consecutive flat evaluations that mean "plateau".
        min_steps: No plateau is declared before this many env steps.
        episodes: Episodes behind each evaluation, when the values are success rates: their
            binomial noise floors the standard error. None: the scatter alone.
    """

    window: int = 20
    min_improvement: float = 0.1
    confidence: float = 2.0
    patience: int = 2
    min_steps: int = 0
    episodes: int | None = None

    def __post_init__(self) -> None:
        if self.window < 3:
            raise ValueError(f"window must be >= 3, got {self.window}")
        if self.patience < 1:
            raise ValueError(f"patience must be >= 1, got {self.patience}")
        if not self.min_improvement >= 0.0:
            raise ValueError(f"min_improvement must be >= 0, got {self.min_improvement}")
        if not self.confidence >= 0.0:
            raise ValueError(f"confidence must be >= 0, got {self.confidence}")
        if self.min_steps < 0:
            raise ValueError(f"min_steps must be >= 0, got {self.min_steps}")
        if self.episodes is not None and self.episodes < 1:
            raise ValueError(f"episodes must be >= 1, got {self.episodes}")


@dataclass(frozen=True)
class Trend:
    """The least-squares trend through one window: its rise across the window and the
    standard error of that rise."""

    rise: float
    stderr: float

    def upper_bound(self, confidence: float) -> float:
        """The rise plus `confidence` standard errors."""
        return self.rise + confidence * self.stderr


def fit_trend(points: list[tuple[int, float]], episodes: int | None = None) -> Trend:
    """The trend through `points` (env step, value), at least 3 of them; see the module
    docstring for the standard error."""
    if len(points) < 3:
        raise ValueError(f"a trend needs at least 3 points, got {len(points)}")
    steps = [float(step) for step, _ in points]
    values = [value for _, value in points]
    mean_step, mean_value = sum(steps) / len(steps), sum(values) / len(values)
    offsets = [s - mean_step for s in steps]
    sxx = sum(x * x for x in offsets)
    if sxx == 0.0:  # every evaluation at the same step: no trend to speak of
        return Trend(0.0, math.inf)
    slope = sum(x * v for x, v in zip(offsets, values, strict=True)) / sxx
    residuals = [v - mean_value - slope * x for x, v in zip(offsets, values, strict=True)]
    slope_var = sum(r * r for r in residuals) / (len(points) - 2) / sxx
    if episodes is not None:
        rates = [min(max(v, 0.0), 1.0) for v in values]
        sampling = [p * (1.0 - p) / episodes for p in rates]
        sampling_var = sum(x * x * s for x, s in zip(offsets, sampling, strict=True)) / sxx**2
        slope_var = max(slope_var, sampling_var)
    span = steps[-1] - steps[0]
    return Trend(slope * span, math.sqrt(slope_var) * span)


class PlateauDetector:
    """Online, causal plateau detector on a series of (env_step, value) evaluations.

    Higher values are better; `update` is called once per evaluation, in step order.
    """

    def __init__(self, criterion: PlateauCriterion):
        self.criterion = criterion
        self._window: deque[tuple[int, float]] = deque(maxlen=criterion.window)
        self._trend: Trend | None = None
        self._flat_evaluations = 0
        self._plateau_step: int | None = None

    def update(self, step: int, value: float) -> bool:
        """Feed one evaluation; True once the curve has plateaued (and ever after)."""
        if self._window and step < self._window[-1][0]:
            raise ValueError(
                f"steps must be non-decreasing, got {step} after {self._window[-1][0]}"
            )
        if not math.isfinite(value):
            raise ValueError(f"value must be finite, got {value} at step {step}")
        criterion = self.criterion
        self._window.append((step, float(value)))
        if len(self._window) < criterion.window:
            return self.plateaued
        self._trend = fit_trend(list(self._window), criterion.episodes)
        if self._trend.upper_bound(criterion.confidence) <= criterion.min_improvement:
            self._flat_evaluations += 1
        else:
            self._flat_evaluations = 0
        if (
            self._plateau_step is None
            and self._flat_evaluations >= criterion.patience
            and step >= criterion.min_steps
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
    def trend(self) -> Trend | None:
        """The trend through the last full window; None before `window` evaluations."""
        return self._trend


def replay(points: Iterable[tuple[int, float]], criterion: PlateauCriterion) -> PlateauDetector:
    """A fresh detector fed a whole series of (env step, value) evaluations."""
    detector = PlateauDetector(criterion)
    for step, value in points:
        detector.update(step, value)
    return detector


def find_plateau(points: Iterable[tuple[int, float]], criterion: PlateauCriterion) -> int | None:
    """The step at which a fresh detector fed the whole series fires, or None."""
    return replay(points, criterion).plateau_step
