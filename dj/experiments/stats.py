"""The statistics of an experiment, as pure functions on arrays (scipy for the distributions).

* Sample-ratio mismatch: Pearson's chi-square of the arms' counts against their weights.
* Difference in means: Welch's t (unequal variances, Welch-Satterthwaite degrees of freedom).
* CUPED: ``y - theta (x - mean x)`` with ``theta = cov(y, x) / var(x)`` pooled over the arms,
  ``x`` the listener's pre-experiment listening; a listener without any is given the mean, so
  they are left unadjusted but still counted.
* Ratio metrics (numerator and denominator per listener): the delta method,
  ``Var(mean a / mean b) ~ (s_aa / mb^2 - 2 ma s_ab / mb^3 + ma^2 s_bb / mb^4) / n``.
* Several arms: Bonferroni over the comparisons with control (intervals at ``alpha / m``).
* Peeking: the mixture sequential probability ratio test (mSPRT, normal mixture of variance
  ``tau^2``) gives always-valid p-values, so looking every day does not inflate false positives.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

SRM_ALPHA = 0.001  # a split this unlikely under the design is broken, not unlucky


@dataclass(frozen=True, slots=True)
class SRMResult:
    counts: tuple[int, ...]
    expected: tuple[float, ...]
    chi2: float
    p: float
    mismatch: bool


def srm(counts: Sequence[int], weights: Sequence[float], alpha: float = SRM_ALPHA) -> SRMResult:
    """Chi-square goodness of fit of ``counts`` to the split ``weights``."""
    total = sum(counts)
    share = np.asarray(weights, float) / float(sum(weights))
    expected = share * total
    if total == 0:
        return SRMResult(tuple(counts), tuple(expected.tolist()), 0.0, 1.0, False)
    chi2, p = stats.chisquare(np.asarray(counts, float), expected)
    return SRMResult(tuple(int(c) for c in counts), tuple(float(e) for e in expected),
                     float(chi2), float(p), bool(p < alpha))


@dataclass(frozen=True, slots=True)
class Difference:
    """``treatment - control`` with a two-sided ``1 - alpha`` interval and its p-value."""

    diff: float
    se: float
    low: float
    high: float
    p: float
    df: float  # inf: a normal approximation (delta method)


def welch(treatment: Sequence[float], control: Sequence[float], alpha: float) -> Difference:
    t = np.asarray(treatment, float)
    c = np.asarray(control, float)
    if len(t) < 2 or len(c) < 2:
        return Difference(float(t.mean() - c.mean()) if len(t) and len(c) else math.nan,
                          math.nan, math.nan, math.nan, math.nan, math.nan)
    vt, vc = t.var(ddof=1) / len(t), c.var(ddof=1) / len(c)
    diff, se2 = float(t.mean() - c.mean()), float(vt + vc)
    if se2 == 0:
        p = 1.0 if diff == 0 else 0.0
        return Difference(diff, 0.0, diff, diff, p, math.inf)
    df = se2**2 / (vt**2 / (len(t) - 1) + vc**2 / (len(c) - 1))
    se = math.sqrt(se2)
    q = float(stats.t.ppf(1 - alpha / 2, df))
    p = float(2 * stats.t.sf(abs(diff) / se, df))
    return Difference(diff, se, diff - q * se, diff + q * se, p, float(df))


def cuped_theta(y: np.ndarray, x: np.ndarray) -> float:
    """``cov(y, x) / var(x)``; 0 when ``x`` does not vary (nothing to adjust with)."""
    vx = float(np.var(x, ddof=1)) if len(x) > 1 else 0.0
    if vx == 0:
        return 0.0
    return float(np.cov(y, x, ddof=1)[0, 1] / vx)


def cuped(y: Sequence[float], x: Sequence[float | None]) -> tuple[np.ndarray, float]:
    """``y`` adjusted by the covariate ``x`` (None where a listener has none), and theta.
    Pass every arm's listeners together: one theta for all keeps the difference unbiased."""
    ya = np.asarray(y, float)
    xa = np.array([math.nan if v is None else v for v in x], float)
    have = ~np.isnan(xa)
    if have.sum() < 2:
        return ya.copy(), 0.0
    xa[~have] = xa[have].mean()
    theta = cuped_theta(ya, xa)
    return ya - theta * (xa - xa.mean()), theta


def delta_ratio(num: Sequence[float], den: Sequence[float]) -> tuple[float, float]:
    """``(sum num / sum den, its variance)`` by the delta method, listeners as the unit."""
    a, b = np.asarray(num, float), np.asarray(den, float)
    n = len(a)
    if n < 2 or b.sum() == 0:
        return math.nan, math.nan
    ma, mb = a.mean(), b.mean()
    cov = np.cov(a, b, ddof=1)
    var = (cov[0, 0] / mb**2 - 2 * ma * cov[0, 1] / mb**3 + ma**2 * cov[1, 1] / mb**4) / n
    return float(ma / mb), float(var)


def ratio_difference(num_t: Sequence[float], den_t: Sequence[float], num_c: Sequence[float],
                     den_c: Sequence[float], alpha: float) -> Difference:
    rt, vt = delta_ratio(num_t, den_t)
    rc, vc = delta_ratio(num_c, den_c)
    diff, se2 = rt - rc, vt + vc
    if not math.isfinite(se2):
        return Difference(diff, math.nan, math.nan, math.nan, math.nan, math.inf)
    se = math.sqrt(se2)
    if se == 0:
        return Difference(diff, 0.0, diff, diff, 1.0 if diff == 0 else 0.0, math.inf)
    q = float(stats.norm.ppf(1 - alpha / 2))
    p = float(2 * stats.norm.sf(abs(diff) / se))
    return Difference(diff, se, diff - q * se, diff + q * se, p, math.inf)


def bonferroni(alpha: float, comparisons: int) -> float:
    return alpha / max(1, comparisons)


def msprt_p(diff: float, se: float, tau: float) -> float:
    """One look's mSPRT p-value, ``min(1, 1 / Lambda)``, for an estimate ``diff`` with standard
    error ``se`` and a normal mixture over the true effect of standard deviation ``tau``."""
    if not (math.isfinite(diff) and math.isfinite(se)) or se <= 0 or tau <= 0:
        return 1.0
    v, t2 = se * se, tau * tau
    log_lambda = 0.5 * math.log(v / (v + t2)) + t2 * diff * diff / (2 * v * (v + t2))
    return float(min(1.0, math.exp(-log_lambda)))


def always_valid_p(looks: Sequence[tuple[float, float]], tau: float) -> list[float]:
    """The always-valid p-value after each look ``(diff, se)``: the running minimum, so it
    never rises and stopping at any look keeps its error rate."""
    out, best = [], 1.0
    for diff, se in looks:
        best = min(best, msprt_p(diff, se, tau))
        out.append(best)
    return out
