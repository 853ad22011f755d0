import dataclasses
import math

import numpy as np
import pytest

from gsl_k8s.core.plateau import (
    PlateauCriterion,
    PlateauDetector,
    Trend,
    find_plateau,
    fit_trend,
    replay,
)

# Rising by 0.1 per evaluation, then flat at 0.5 from evaluation 5 on; one every 1000 steps.
RISING_THEN_FLAT = [
    (1000 * i, v) for i, v in enumerate([0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5])
]
# Noiseless curves: the scatter around the trend is all there is to its standard error.
EXACT = PlateauCriterion(window=3, min_improvement=0.05, confidence=2.0, patience=2)


def test_trend_of_a_line_is_its_rise_across_the_window():
    points = [(0, 0.1), (1000, 0.2), (3000, 0.4)]  # uneven spacing: the rise is per env step
    trend = fit_trend(points)
    assert trend.rise == pytest.approx(0.3)
    assert trend.stderr == pytest.approx(0.0, abs=1e-12)


def test_trend_standard_error_from_the_scatter():
    # x = -1, 0, 1 (in 1000s of steps): slope 0.05, residuals -1/60, 1/30, -1/60, RSS 1/600 with
    # one degree of freedom; se(rise) = span * sqrt(RSS / Sxx) = 2 * sqrt(1/1200).
    trend = fit_trend([(0, 0.4), (1000, 0.5), (2000, 0.5)])
    assert trend.rise == pytest.approx(0.1)
    assert trend.stderr == pytest.approx(2 * math.sqrt(1 / 1200))


@pytest.mark.parametrize("window", [3, 10, 20])
def test_binomial_floor_matches_the_closed_form(window):
    # A perfectly flat window has no scatter; its standard error is the sampling noise alone:
    # sigma * (window - 1) * sqrt(12 / (window^3 - window)), sigma = sqrt(p (1 - p) / episodes).
    points = [(500 * i, 0.3) for i in range(window)]
    sigma = math.sqrt(0.3 * 0.7 / 200)
    expected = sigma * (window - 1) * math.sqrt(12 / (window**3 - window))
    assert fit_trend(points).stderr == pytest.approx(0.0, abs=1e-12)
    assert fit_trend(points, episodes=200).stderr == pytest.approx(expected)


def test_rising_then_flat_fires_once_a_whole_window_is_flat():
    # Windows ending at evaluations 2..5 rise by 0.2; the one ending at 6 (0.4, 0.5, 0.5) rises
    # by 0.1 with se 0.058; those ending at 7 and 8 are flat: fires at 8 (patience 2).
    detector = PlateauDetector(EXACT)
    fired = [detector.update(step, value) for step, value in RISING_THEN_FLAT]

    assert fired == [False] * 8 + [True] * 3
    assert detector.plateau_step == 8000
    assert detector.trend == Trend(0.0, 0.0)


def test_a_window_that_merely_looks_smooth_does_not_fire_a_success_rate():
    # Three identical evaluations: no scatter, but with 100 episodes each the rise has a
    # standard error of 0.07, so it is not shown to be below 0.05.
    flat = [(1000 * i, 0.5) for i in range(10)]
    assert find_plateau(flat, EXACT) == 3000
    assert find_plateau(flat, dataclasses.replace(EXACT, episodes=100)) is None


def test_steadily_rising_curve_never_fires():
    points = [(100 * i, 0.02 * i) for i in range(50)]  # +0.04 per 3-evaluation window
    criterion = PlateauCriterion(window=3, min_improvement=0.03, confidence=0.0, patience=1)
    assert find_plateau(points, criterion) is None


def test_min_steps_delays_firing():
    delayed = dataclasses.replace(EXACT, min_steps=9500)
    assert find_plateau(RISING_THEN_FLAT, delayed) == 10_000
    too_late = dataclasses.replace(EXACT, min_steps=11_000)
    assert find_plateau(RISING_THEN_FLAT, too_late) is None


@pytest.mark.parametrize(
    "later_values",
    [[1.0, 1.0, 1.0], [0.0, 0.0], [0.6, 0.7, 0.8, 0.9, 1.0]],
    ids=["jump", "collapse", "rise"],
)
def test_decision_is_causal(later_values):
    prefix = RISING_THEN_FLAT[:9]  # up to and including the firing evaluation at 8000
    later = [(9000 + 1000 * i, v) for i, v in enumerate(later_values)]

    assert find_plateau(prefix[:-1], EXACT) is None
    assert find_plateau(prefix, EXACT) == 8000
    assert find_plateau(prefix + later, EXACT) == 8000


def test_plateau_is_sticky():
    detector = replay(RISING_THEN_FLAT, EXACT)
    assert detector.update(20_000, 1.0)
    assert detector.plateau_step == 8000


def test_a_flat_evaluation_in_a_rise_resets_patience():
    # The window ending at 4 is flat, the one ending at 5 rises again: the count starts over,
    # and only the flat windows ending at 9 and 10 fire.
    values = [0.0, 0.1, 0.2, 0.2, 0.2, 0.3, 0.4, 0.5, 0.5, 0.5, 0.5]
    points = [(1000 * i, v) for i, v in enumerate(values)]
    assert find_plateau(points, EXACT) == 10_000
    assert find_plateau(points, dataclasses.replace(EXACT, patience=1)) == 4000


@pytest.mark.parametrize("seed", range(5))
def test_find_plateau_equals_online_replay(seed):
    rng = np.random.default_rng(seed)
    values = np.minimum(np.linspace(0.0, 1.0, 60), 0.7) + rng.normal(0.0, 0.02, 60)
    points = [(500 * i, float(v)) for i, v in enumerate(values)]
    criterion = PlateauCriterion(
        window=int(rng.integers(3, 10)), min_improvement=0.1, patience=int(rng.integers(1, 5))
    )

    detector = PlateauDetector(criterion)
    first_firing = next((step for step, value in points if detector.update(step, value)), None)

    assert first_firing is not None
    assert find_plateau(points, criterion) == first_firing


# Noisy success rates: 256 episodes per evaluation, binomial noise ~0.03, as large as the
# true gain of 0.006 per evaluation over ~5 evaluations. Default criterion (window 20, rise
# below 0.1 with 2 standard errors to spare, patience 2), 200 fixed seeds each.
EPISODES = 256
SEEDS = range(200)
NOISY = PlateauCriterion(episodes=EPISODES)


def _noisy_success(true_rates: np.ndarray, seed: int) -> list[tuple[int, float]]:
    observed = np.random.default_rng(seed).binomial(EPISODES, true_rates) / EPISODES
    return [(1000 * i, float(v)) for i, v in enumerate(observed)]


def test_slowly_rising_noisy_curve_rarely_fires():
    rising = 0.2 + 0.3 * np.arange(50) / 49  # 0.2 -> 0.5 over 50 evaluations
    fired = [find_plateau(_noisy_success(rising, seed), NOISY) for seed in SEEDS]
    false_fires = sum(step is not None for step in fired) / len(SEEDS)
    assert false_fires <= 0.05  # measured: 0.015 (3 of 200)

    # Blind to the noise (no margin) and looking at 3 evaluations, the same test fires on
    # nearly every one of them, as the smoothed-mean criterion this one replaced did.
    blind = PlateauCriterion(window=3, confidence=0.0, patience=4, episodes=EPISODES)
    assert sum(find_plateau(_noisy_success(rising, s), blind) is not None for s in SEEDS) > 190


def test_truly_stalled_noisy_curve_fires_soon_after_the_stall():
    stall = 24  # rises 0.2 -> 0.5 over 25 evaluations, then flat at 0.5 for 40
    rates = np.concatenate([0.2 + 0.3 * np.arange(stall + 1) / stall, np.full(40, 0.5)])
    fired = [find_plateau(_noisy_success(rates, seed), NOISY) for seed in SEEDS]
    delays = np.array(
        [(step - 1000 * stall) / 1000 if step is not None else np.inf for step in fired]
    )
    assert (delays >= 0).all()  # never during the rise
    assert np.mean(delays <= 25) >= 0.95  # measured: 11 to 24, 95% within 18


def test_equal_steps_are_allowed_and_decreasing_steps_rejected():
    detector = PlateauDetector(EXACT)
    detector.update(10, 0.1)
    detector.update(10, 0.2)
    detector.update(10, 0.3)  # a window at a single step has no trend
    assert detector.trend == Trend(0.0, math.inf)
    with pytest.raises(ValueError, match="non-decreasing"):
        detector.update(9, 0.3)


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_non_finite_values_are_rejected(value):
    with pytest.raises(ValueError, match="finite"):
        PlateauDetector(PlateauCriterion()).update(0, value)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("window", 2),
        ("patience", 0),
        ("min_improvement", -0.1),
        ("min_improvement", math.nan),
        ("confidence", -1.0),
        ("min_steps", -1),
        ("episodes", 0),
    ],
)
def test_invalid_criteria_are_rejected(field, value):
    with pytest.raises(ValueError, match=field):
        PlateauCriterion(**{field: value})
