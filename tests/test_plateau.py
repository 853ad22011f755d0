import math

import numpy as np
import pytest

from gsl_k8s.core.plateau import PlateauCriterion, PlateauDetector, find_plateau

# Rising, then flat at 0.6 from evaluation 3 on; one evaluation every 1000 steps.
RISING_THEN_FLAT = [
    (1000 * i, v) for i, v in enumerate([0.0, 0.2, 0.4, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6])
]
RISE_CRITERION = PlateauCriterion(window=2, min_improvement=0.01, patience=3)


def test_rising_then_flat_fires_shortly_after_the_flat_part_starts():
    # window=2 smoothing: 0.0, 0.1, 0.3, 0.5, 0.6 (step 4000, the last improvement), then 0.6 at
    # 5000, 6000, 7000 -> 1, 2, 3 evaluations without improvement -> fires at 7000 (patience 3).
    detector = PlateauDetector(RISE_CRITERION)
    fired = [detector.update(step, value) for step, value in RISING_THEN_FLAT]

    assert fired == [False] * 7 + [True] * 2
    assert detector.plateaued
    assert detector.plateau_step == 7000
    assert detector.smoothed == pytest.approx([0.0, 0.1, 0.3, 0.5, 0.6, 0.6, 0.6, 0.6, 0.6])


def test_steadily_rising_curve_never_fires():
    # Smoothed values grow by 0.05 per evaluation once the window is full (0.025 before): every
    # evaluation improves by more than 0.01.
    points = [(100 * i, 0.05 * i) for i in range(50)]
    criterion = PlateauCriterion(window=3, min_improvement=0.01, patience=2)

    detector = PlateauDetector(criterion)
    assert not any(detector.update(step, value) for step, value in points)
    assert detector.plateau_step is None
    assert find_plateau(points, criterion) is None


def _flat_with_growing_spikes(num_periods: int) -> list[tuple[int, float]]:
    """0.5 everywhere, except a spike of 0.60, 0.62, 0.64, ... every 4th evaluation."""
    values = []
    for period in range(num_periods):
        values += [0.5, 0.5, 0.5, 0.6 + 0.02 * period]
    return [(1000 * i, v) for i, v in enumerate(values)]


def test_smoothing_makes_a_noisy_flat_curve_fire():
    points = _flat_with_growing_spikes(5)
    # window=1: each spike beats the previous best by 0.02 > 0.01 and resets the counter, which
    # therefore never gets past 3 (the three 0.5s between spikes): never fires with patience 4.
    raw = PlateauCriterion(window=1, min_improvement=0.01, patience=4)
    assert find_plateau(points, raw) is None
    # window=4: smoothed 0.5 (improves), 0.5, 0.5, 0.525 (improves: > 0.51), 0.525, 0.525,
    # 0.525, then (0.5 + 0.5 + 0.5 + 0.62) / 4 = 0.53 < 0.535 at step 7000 -> the 4th
    # evaluation without improvement -> fires at 7000.
    smoothed = PlateauCriterion(window=4, min_improvement=0.01, patience=4)
    assert find_plateau(points, smoothed) == 7000


def test_min_steps_delays_firing():
    # Without min_steps it fires at 7000 (see above); the counter is still >= patience at 8000.
    delayed = PlateauCriterion(window=2, min_improvement=0.01, patience=3, min_steps=7500)
    assert find_plateau(RISING_THEN_FLAT, delayed) == 8000
    too_late = PlateauCriterion(window=2, min_improvement=0.01, patience=3, min_steps=9000)
    assert find_plateau(RISING_THEN_FLAT, too_late) is None


@pytest.mark.parametrize(
    "later_values",
    [[1.0, 1.0, 1.0], [0.0, 0.0], [0.6, 0.7, 0.8, 0.9, 1.0]],
    ids=["jump", "collapse", "rise"],
)
def test_decision_is_causal(later_values):
    prefix = RISING_THEN_FLAT[:8]  # up to and including the firing evaluation at 7000
    later = [(8000 + 1000 * i, v) for i, v in enumerate(later_values)]

    assert find_plateau(prefix[:-1], RISE_CRITERION) is None
    assert find_plateau(prefix, RISE_CRITERION) == 7000
    assert find_plateau(prefix + later, RISE_CRITERION) == 7000


def test_plateau_is_sticky():
    detector = PlateauDetector(RISE_CRITERION)
    for step, value in RISING_THEN_FLAT:
        detector.update(step, value)
    assert detector.update(20_000, 1.0)
    assert detector.plateau_step == 7000


@pytest.mark.parametrize("seed", range(5))
def test_find_plateau_equals_online_replay(seed):
    rng = np.random.default_rng(seed)
    values = np.minimum(np.linspace(0.0, 1.0, 60), 0.7) + rng.normal(0.0, 0.05, 60)
    points = [(500 * i, float(v)) for i, v in enumerate(values)]
    criterion = PlateauCriterion(
        window=int(rng.integers(1, 6)), min_improvement=0.02, patience=int(rng.integers(1, 8))
    )

    detector = PlateauDetector(criterion)
    first_firing = next((step for step, value in points if detector.update(step, value)), None)

    assert first_firing is not None
    assert find_plateau(points, criterion) == first_firing


def test_equal_steps_are_allowed_and_decreasing_steps_rejected():
    detector = PlateauDetector(PlateauCriterion())
    detector.update(10, 0.1)
    detector.update(10, 0.2)
    with pytest.raises(ValueError, match="non-decreasing"):
        detector.update(9, 0.3)


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_non_finite_values_are_rejected(value):
    with pytest.raises(ValueError, match="finite"):
        PlateauDetector(PlateauCriterion()).update(0, value)


def test_smoothed_is_a_copy():
    detector = PlateauDetector(PlateauCriterion())
    detector.update(0, 1.0)
    detector.smoothed.append(2.0)
    assert detector.smoothed == [1.0]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("window", 0),
        ("patience", 0),
        ("min_improvement", -0.1),
        ("min_improvement", math.nan),
        ("min_steps", -1),
    ],
)
def test_invalid_criteria_are_rejected(field, value):
    with pytest.raises(ValueError, match=field):
        PlateauCriterion(**{field: value})
