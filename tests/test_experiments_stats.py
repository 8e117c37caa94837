"""The experiments' statistics on data with known answers: each number is computed here a second
way (by hand, from the textbook formula, or with another scipy routine)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from dj.experiments.stats import (
    always_valid_p,
    cuped,
    cuped_theta,
    delta_ratio,
    msprt_p,
    ratio_difference,
    srm,
    welch,
)


def test_srm_chi_square_by_hand() -> None:
    # 450/550 against 50/50: chi2 = 2 * 50^2 / 500 = 10, p = P(chi2_1 > 10)
    r = srm([450, 550], [1, 1])
    assert r.chi2 == pytest.approx(10.0)
    assert r.p == pytest.approx(math.erfc(math.sqrt(10 / 2)))  # chi2 with 1 df: erfc(sqrt(x/2))
    assert r.p == pytest.approx(0.001565, rel=1e-3)
    assert not r.mismatch  # 0.0016 is not below 0.001
    # ten times the listeners in the same proportions: chi2 = 100, flagged loudly
    big = srm([4500, 5500], [1, 1])
    assert big.chi2 == pytest.approx(100.0) and big.mismatch
    # a sound uneven design: 1:3 weights, counts right on it
    assert srm([250, 750], [1, 3]).chi2 == pytest.approx(0.0)
    assert not srm([250, 750], [1, 3]).mismatch
    assert srm([0, 0], [1, 1]).p == 1.0  # nobody yet: nothing to flag


def test_welch_matches_the_formula_and_scipy() -> None:
    t = [12.0, 15.0, 11.0, 19.0, 14.0, 13.0]
    c = [10.0, 9.0, 12.0, 8.0, 11.0]
    d = welch(t, c, alpha=0.05)
    mt, mc = sum(t) / len(t), sum(c) / len(c)
    vt = sum((x - mt) ** 2 for x in t) / (len(t) - 1) / len(t)
    vc = sum((x - mc) ** 2 for x in c) / (len(c) - 1) / len(c)
    df = (vt + vc) ** 2 / (vt**2 / (len(t) - 1) + vc**2 / (len(c) - 1))
    assert d.diff == pytest.approx(mt - mc)
    assert d.se == pytest.approx(math.sqrt(vt + vc))
    assert d.df == pytest.approx(df)
    ref = stats.ttest_ind(t, c, equal_var=False)
    assert d.p == pytest.approx(ref.pvalue)
    ci = ref.confidence_interval(0.95)
    assert (d.low, d.high) == (pytest.approx(ci.low), pytest.approx(ci.high))
    # a narrower confidence (a corrected alpha) widens the interval
    wide = welch(t, c, alpha=0.05 / 3)
    assert wide.low < d.low and wide.high > d.high


def test_cuped_theta_and_adjustment_known_answer() -> None:
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    y = 3.0 * x + 7.0  # y is all covariate: theta is 3 and nothing is left after adjusting
    assert cuped_theta(y, x) == pytest.approx(3.0)
    adjusted, theta = cuped(y, list(x))
    assert theta == pytest.approx(3.0)
    assert np.allclose(adjusted, y.mean())  # the mean is kept, the variance is gone
    # theta is cov/var: with noise, the same as a least-squares slope
    rng = np.random.default_rng(3)
    x2 = rng.normal(10, 2, 500)
    y2 = 0.5 * x2 + rng.normal(0, 1, 500)
    adjusted2, theta2 = cuped(y2, list(x2))
    assert theta2 == pytest.approx(stats.linregress(x2, y2).slope)
    assert adjusted2.mean() == pytest.approx(y2.mean())
    assert adjusted2.var() < y2.var()


def test_cuped_leaves_listeners_without_a_pre_period_unadjusted() -> None:
    y = [10.0, 20.0, 30.0, 40.0, 55.0]
    x = [1.0, 2.0, 3.0, 4.0, None]  # the last listener is new
    adjusted, theta = cuped(y, x)
    assert theta != 0
    assert adjusted[4] == pytest.approx(55.0)  # given the mean x: (x - mean x) = 0
    assert cuped([1.0, 2.0], [None, None]) == (pytest.approx(np.array([1.0, 2.0])), 0.0)


def test_delta_method_equals_the_linearised_variance() -> None:
    # skips (numerator) and plays after a voice line (denominator) per listener
    num = [1.0, 0.0, 3.0, 2.0, 0.0, 5.0, 1.0]
    den = [4.0, 2.0, 6.0, 3.0, 1.0, 9.0, 5.0]
    ratio, var = delta_ratio(num, den)
    n = len(num)
    r = sum(num) / sum(den)
    assert ratio == pytest.approx(r)
    mean_b = sum(den) / n
    lin = [(a - r * b) / mean_b for a, b in zip(num, den, strict=True)]
    mean_l = sum(lin) / n
    assert var == pytest.approx(sum((v - mean_l) ** 2 for v in lin) / (n - 1) / n)
    # pooled counts would pretend each play were independent: a different (smaller) variance
    pooled = r * (1 - r) / sum(den)
    assert var != pytest.approx(pooled)


def test_ratio_difference_is_normal_on_the_delta_variances() -> None:
    num_t, den_t = [2.0, 3.0, 1.0, 4.0], [5.0, 6.0, 4.0, 8.0]
    num_c, den_c = [1.0, 1.0, 0.0, 2.0], [5.0, 7.0, 3.0, 9.0]
    d = ratio_difference(num_t, den_t, num_c, den_c, alpha=0.05)
    rt, vt = delta_ratio(num_t, den_t)
    rc, vc = delta_ratio(num_c, den_c)
    assert d.diff == pytest.approx(rt - rc)
    assert d.se == pytest.approx(math.sqrt(vt + vc))
    assert d.high - d.diff == pytest.approx(1.959964 * d.se, rel=1e-5)
    assert d.p == pytest.approx(2 * stats.norm.sf(abs(d.diff) / d.se))


def test_msprt_always_valid_p() -> None:
    # the mixture likelihood ratio by hand: sqrt(V/(V+t2)) exp(t2 d^2 / (2 V (V+t2)))
    v, t2, d = 4.0, 1.0, 3.0
    lam = math.sqrt(v / (v + t2)) * math.exp(t2 * d * d / (2 * v * (v + t2)))
    assert msprt_p(d, 2.0, 1.0) == pytest.approx(min(1.0, 1 / lam))
    assert msprt_p(0.0, 1.0, 1.0) == 1.0  # no difference: no evidence
    ps = always_valid_p([(0.5, 1.0), (4.0, 1.0), (0.1, 0.5)], tau=1.0)
    assert ps[1] < ps[0] and ps[2] == ps[1]  # it never rises: stopping any day is valid
    # more evidence than a fixed-horizon test needs: the price of peeking
    assert msprt_p(2.0, 1.0, 1.0) > 2 * stats.norm.sf(2.0)
