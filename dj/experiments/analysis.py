"""One experiment's analysis, in the order an experimentation engineer reads it: the split
(sample-ratio mismatch first), then each metric per arm with its interval against control, the
primary with CUPED, the sequential (always-valid) p-value over the days, and the decision.

The split is checked twice. Assigned listeners are those with any event logged in the
experiment (a session of theirs played in it), whether or not the DJ ever spoke to them; the
exposed are those who then heard a line. The assigned split tests the assignment and the
logging; the exposed split tests whether the arms expose alike. An arm that talks less (a lower
talk probability, a longer gap) exposes fewer of its listeners, and later: its exposed
listeners are then a different kind of listener (the ones who stayed longer) and the metrics
compare unlike groups, so such an experiment is not shipped whatever its metrics say.

The result is a plain JSON-ready dict: the CLI's table, the JSON API and the HTML report all
render this one value.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, time, timedelta
from typing import Any

import numpy as np

from dj.experiments.definition import Experiment, Guardrail
from dj.experiments.exposure import deviations, exposures
from dj.experiments.metrics import METRICS, EventLike, ListenerMetrics, listener_metrics
from dj.experiments.stats import (
    SRM_ALPHA,
    Difference,
    SRMResult,
    always_valid_p,
    bonferroni,
    cuped,
    delta_ratio,
    ratio_difference,
    srm,
    welch,
)

MIN_PER_ARM = 2  # fewer exposed listeners than this in an arm: no interval can be drawn
#: the mSPRT mixture's spread, as a share of the control mean: the size of effect it is tuned to
SEQUENTIAL_TAU_REL = 0.05


def _num(x: float) -> float | None:
    """JSON has no NaN or infinity: an undefined number is null."""
    return float(x) if isinstance(x, int | float) and math.isfinite(x) else None


def _diff(d: Difference) -> dict[str, float | None]:
    return {"diff": _num(d.diff), "se": _num(d.se), "ci_low": _num(d.low),
            "ci_high": _num(d.high), "p": _num(d.p)}


def _values(rows: Sequence[ListenerMetrics], metric: str) -> list[float]:
    return [v for r in rows if math.isfinite(v := r.values[metric])]


def compare(metric: str, treatment: Sequence[ListenerMetrics], control: Sequence[ListenerMetrics],
            alpha: float) -> Difference:
    """``treatment - control`` for one metric: Welch for a per-listener mean, the delta method
    for a ratio."""
    if METRICS[metric].kind == "ratio":
        nt, dt = zip(*(r.ratios[metric] for r in treatment), strict=True) if treatment else ((), ())
        nc, dc = zip(*(r.ratios[metric] for r in control), strict=True) if control else ((), ())
        return ratio_difference(nt, dt, nc, dc, alpha)
    return welch(_values(treatment, metric), _values(control, metric), alpha)


def arm_summary(metric: str, rows: Sequence[ListenerMetrics]) -> dict[str, Any]:
    if METRICS[metric].kind == "ratio":
        num = [r.ratios[metric][0] for r in rows]
        den = [r.ratios[metric][1] for r in rows]
        value, var = delta_ratio(num, den)
        return {"n": len(rows), "value": _num(value), "se": _num(math.sqrt(var))
                if math.isfinite(var) else None, "numerator": sum(num), "denominator": sum(den)}
    vals = _values(rows, metric)
    return {"n": len(vals), "value": _num(float(np.mean(vals))) if vals else None,
            "se": _num(float(np.std(vals, ddof=1) / math.sqrt(len(vals))))
            if len(vals) > 1 else None}


def cuped_primary(metric: str, by_arm: dict[str, list[ListenerMetrics]], control: str,
                  alpha: float) -> dict[str, Any]:
    """The primary metric adjusted with each listener's pre-experiment listening: one theta
    over every arm, then Welch on the adjusted values."""
    rows = [r for arm_rows in by_arm.values() for r in arm_rows
            if math.isfinite(r.values[metric])]
    with_pre = sum(1 for r in rows if r.pre is not None)
    if METRICS[metric].kind != "mean" or with_pre < 2:
        return {"applied": False, "listeners_with_pre": with_pre}
    adjusted, theta = cuped([r.values[metric] for r in rows], [r.pre for r in rows])
    by_id = {id(r): a for r, a in zip(rows, adjusted, strict=True)}
    raw = np.array([r.values[metric] for r in rows])
    reduction = 1 - float(np.var(adjusted, ddof=1) / np.var(raw, ddof=1)) if raw.var() else 0.0
    adj = {arm: [by_id[id(r)] for r in arm_rows if id(r) in by_id]
           for arm, arm_rows in by_arm.items()}
    return {"applied": True, "theta": theta, "listeners_with_pre": with_pre,
            "variance_reduction": reduction,
            "comparisons": {arm: _diff(welch(adj[arm], adj[control], alpha))
                            for arm in by_arm if arm != control}}


def _bad_bound(d: Difference, higher_is_better: bool) -> float:
    """How much worse the metric may be, at the interval's worse end (positive is worse)."""
    return -d.low if higher_is_better else d.high


def guardrail_check(g: Guardrail, d: Difference, control_value: float | None,
                    ) -> dict[str, Any]:
    info = METRICS[g.metric]
    margin = g.margin * abs(control_value) if g.relative and control_value is not None else (
        g.margin if not g.relative else math.nan)
    worst = _bad_bound(d, info.higher_is_better)
    # not worse at all at the interval's worse end passes even a zero margin (a guardrail that
    # is 0 in both arms, such as dead air on a healthy station)
    ok = math.isfinite(worst) and math.isfinite(margin) and (worst <= 0 or worst < margin)
    return {"metric": g.metric, "margin": _num(margin), "margin_relative": g.relative,
            "margin_setting": g.margin, "worst_case": _num(worst), "non_inferior": ok}


def _day_ends(first: datetime, until: datetime) -> list[datetime]:
    out, day = [], first.date()
    while True:
        end = datetime.combine(day + timedelta(days=1), time(), UTC) - timedelta(microseconds=1)
        out.append(min(end, until))
        if end >= until:
            return out
        day += timedelta(days=1)


def analyse(
    experiment: Experiment,
    events: Iterable[EventLike],
    pre_events: Iterable[EventLike] = (),
    now: datetime | None = None,
    series: bool = True,
) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    until = min(now, experiment.end) if experiment.end else now
    in_exp = [e for e in events if e.experiment == experiment.name]
    pre = list(pre_events)
    arms = [a.name for a in experiment.arms]
    control = experiment.control.name
    alpha = bonferroni(experiment.alpha, len(arms) - 1)

    devs = deviations(in_exp, experiment)
    exposed_all = exposures(in_exp, experiment.name)
    exposed = {lid: x for lid, x in exposed_all.items() if lid not in devs}
    seen: dict[str, set[str]] = defaultdict(set)
    for e in in_exp:
        seen[e.arm].add(e.listener_id)
    rows = listener_metrics(in_exp, exposed, until, pre)
    by_arm: dict[str, list[ListenerMetrics]] = {a: [] for a in arms}
    for r in rows:
        if r.arm in by_arm:
            by_arm[r.arm].append(r)

    weights = [a.weight for a in experiment.arms]
    # deviating listeners are reported apart, in both splits
    assigned = {a: {lid for lid in seen.get(a, ()) if lid not in devs} for a in arms}
    check_assigned = srm([len(assigned[a]) for a in arms], weights)
    check = srm([len(by_arm[a]) for a in arms], weights)
    metric_names = [experiment.primary, *(g.metric for g in experiment.guardrails)]
    metrics: dict[str, Any] = {}
    diffs: dict[str, dict[str, Difference]] = {}
    for name in metric_names:
        info = METRICS[name]
        diffs[name] = {a: compare(name, by_arm[a], by_arm[control], alpha)
                       for a in arms if a != control}
        metrics[name] = {
            "label": info.label, "unit": info.unit, "kind": info.kind,
            "higher_is_better": info.higher_is_better, "description": info.description,
            "method": "delta method" if info.kind == "ratio" else "Welch t",
            "arms": {a: arm_summary(name, by_arm[a]) for a in arms},
            "comparisons": {a: _diff(d) for a, d in diffs[name].items()},
        }
    primary_cuped = cuped_primary(experiment.primary, by_arm, control, alpha)
    metrics[experiment.primary]["cuped"] = primary_cuped

    daily = _series(experiment, in_exp, exposed, pre, until, by_arm, alpha) if series else []
    running = until < experiment.end if experiment.end else True
    report: dict[str, Any] = {
        "experiment": experiment.name,
        "description": experiment.description,
        "arms": [{"name": a.name, "persona": a.persona, "weight": a.weight,
                  "overrides": dict(a.overrides)} for a in experiment.arms],
        "control": control,
        "window": {"start": experiment.start.isoformat() if experiment.start else None,
                   "end": experiment.end.isoformat() if experiment.end else None,
                   "analysed_until": until.isoformat(), "running": running},
        "territories": list(experiment.territories),
        "alpha": experiment.alpha, "alpha_per_comparison": alpha,
        "correction": f"Bonferroni over {len(arms) - 1} comparison(s) with control",
        "counts": {a: {"listeners_seen": len(seen.get(a, ())),
                       "assigned": len(assigned[a]),
                       "exposed": sum(1 for x in exposed_all.values() if x.arm == a),
                       "deviations": sum(1 for lid in devs if exposed_all.get(lid)
                                         and exposed_all[lid].arm == a),
                       "analysed": len(by_arm[a]),
                       "exposed_share": len(by_arm[a]) / len(assigned[a])
                       if assigned[a] else None} for a in arms},
        "deviations": len(devs),
        "srm": _srm(arms, check, "exposed"),
        "srm_assigned": _srm(arms, check_assigned, "assigned"),
        "primary": experiment.primary,
        "metrics": metrics,
        "series": daily,
        "distribution": {a: [round(r.values[experiment.primary], 3) for r in by_arm[a]
                             if math.isfinite(r.values[experiment.primary])]
                         for a in arms} if METRICS[experiment.primary].kind == "mean" else {},
    }
    report["decision"] = decide(experiment, report, diffs, primary_cuped, daily, running)
    return _clean(report)


def _srm(arms: list[str], check: SRMResult, population: str) -> dict[str, Any]:
    return {"population": population, "counts": dict(zip(arms, check.counts, strict=True)),
            "expected": dict(zip(arms, check.expected, strict=True)),
            "chi2": check.chi2, "p": check.p, "mismatch": check.mismatch,
            "threshold": SRM_ALPHA}


def _clean(value: Any) -> Any:
    """The report with every non-finite number as null (JSON has none)."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _series(experiment: Experiment, in_exp: list[EventLike], exposed: dict, pre: list,
            until: datetime, by_arm: dict[str, list[ListenerMetrics]], alpha: float,
            ) -> list[dict[str, Any]]:
    """The primary metric per arm at the end of each day, with the always-valid p-value of
    each arm against control as it stood that day."""
    if not exposed:
        return []
    primary, control = experiment.primary, experiment.control.name
    first = min(x.at for x in exposed.values())
    looks: dict[str, list[tuple[float, float]]] = defaultdict(list)
    out = []
    for day_end in _day_ends(first, until):
        rows = listener_metrics(in_exp, exposed, day_end, pre)
        arms: dict[str, list[ListenerMetrics]] = {a: [] for a in by_arm}
        for r in rows:
            if r.arm in arms:
                arms[r.arm].append(r)
        point: dict[str, Any] = {"day": day_end.date().isoformat(),
                                 "arms": {a: arm_summary(primary, rs) for a, rs in arms.items()},
                                 "always_valid_p": {}, "fixed_horizon_p": {}}
        base = point["arms"][control]["value"]
        tau = SEQUENTIAL_TAU_REL * abs(base) if base else 0.0
        for a in arms:
            if a == control:
                continue
            d = compare(primary, arms[a], arms[control], alpha)
            looks[a].append((d.diff, d.se))
            point["always_valid_p"][a] = always_valid_p(looks[a], tau)[-1]
            # what a naive reading of each day's Welch test would say (peeking inflates it)
            point["fixed_horizon_p"][a] = d.p
        out.append(point)
    return out


def decide(experiment: Experiment, report: dict[str, Any],
           diffs: dict[str, dict[str, Difference]], primary_cuped: dict[str, Any],
           daily: list[dict[str, Any]], running: bool) -> dict[str, Any]:
    """Ship an arm only if the split is sound (assigned and exposed), its primary metric
    improved significantly (CUPED-adjusted when available; while the experiment runs, also by
    the always-valid p-value) and no guardrail is worse beyond its non-inferiority margin."""
    reasons: list[str] = []
    assigned, exposed = report["srm_assigned"], report["srm"]
    if assigned["mismatch"]:
        return {"ship": None, "verdict": "do not ship: sample ratio mismatch",
                "reasons": [f"the assigned split {assigned['counts']} is unlikely under the"
                            f" design (chi-square p = {assigned['p']:.2g} < {SRM_ALPHA}):"
                            " the assignment or the logging is broken; no metric can be"
                            " trusted until that is fixed"], "arms": {}}
    if exposed["mismatch"]:
        shares = ", ".join(
            f"{arm} {c['analysed']}/{c['assigned']}"
            + (f" ({100 * c['exposed_share']:.0f}%)" if c["exposed_share"] is not None else "")
            for arm, c in report["counts"].items())
        return {"ship": None, "verdict": "do not ship: exposure differs by arm",
                "reasons": [f"the assigned split {assigned['counts']} fits the design"
                            f" (p = {assigned['p']:.2g}) but the exposed split"
                            f" {exposed['counts']} does not (p = {exposed['p']:.2g} <"
                            f" {SRM_ALPHA}): the arms expose different shares of their"
                            f" listeners to the DJ (exposed of assigned: {shares}), likely"
                            " because they talk at different rates. The exposed listeners of"
                            " the arms are then not alike, so their metrics cannot be"
                            " compared"], "arms": {}}
    control = experiment.control.name
    primary = experiment.primary
    higher = METRICS[primary].higher_is_better
    alpha = report["alpha_per_comparison"]
    candidates: list[tuple[float, str]] = []
    per_arm: dict[str, Any] = {}
    for arm in (a.name for a in experiment.arms if a.name != control):
        why: list[str] = []
        n_t, n_c = report["counts"][arm]["analysed"], report["counts"][control]["analysed"]
        if min(n_t, n_c) < MIN_PER_ARM:
            why.append(f"too few exposed listeners ({arm}: {n_t}, {control}: {n_c})")
        d = primary_cuped["comparisons"][arm] if primary_cuped.get("applied") else _diff(
            diffs[primary][arm])
        low, high = d["ci_low"], d["ci_high"]
        improved = low is not None and high is not None and (low > 0 if higher else high < 0)
        if not why and not improved:
            why.append(f"{primary} did not improve significantly (difference {d['diff']:.3g},"
                       f" {100 * (1 - alpha):.1f}% CI [{low:.3g}, {high:.3g}])"
                       if low is not None and high is not None and d["diff"] is not None
                       else f"{primary}: no interval (too little data)")
        if improved and running and daily:
            p_seq = daily[-1]["always_valid_p"].get(arm)
            if p_seq is None or p_seq >= alpha:
                why.append(f"{primary} is not yet significant by the always-valid p-value"
                           f" ({p_seq:.3g} >= {alpha:.3g}) while the experiment runs"
                           if p_seq is not None else "no sequential p-value yet")
        checks = []
        for g in experiment.guardrails:
            ctl = report["metrics"][g.metric]["arms"][control]["value"]
            check = guardrail_check(g, diffs[g.metric][arm], ctl)
            checks.append(check)
            if not check["non_inferior"]:
                worst, margin = check["worst_case"], check["margin"]
                measured = report["metrics"][g.metric]["arms"][control]["n"]
                if not measured:
                    why.append(f"guardrail {g.metric} not measured yet: it is"
                               f" {METRICS[g.metric].description}")
                elif margin is None:
                    why.append(f"guardrail {g.metric}: no margin (control mean unknown)")
                elif worst is None:
                    why.append(f"guardrail {g.metric}: no interval (too little data)")
                else:
                    why.append(f"guardrail {g.metric} not shown within its margin (worst case"
                               f" {worst:.3g} worse vs margin {margin:.3g})")
        per_arm[arm] = {"primary": d, "guardrails": checks, "ship": not why, "reasons": why}
        if not why:
            candidates.append((d["diff"] if higher else -d["diff"], arm))
        reasons.extend(f"{arm}: {w}" for w in why)
    if candidates:
        best = max(candidates)[1]
        return {"ship": best, "verdict": f"ship {best}",
                "reasons": [f"{best}: {primary} improved significantly and every guardrail"
                            " is within its non-inferiority margin"], "arms": per_arm}
    return {"ship": None, "verdict": "do not ship", "reasons": reasons, "arms": per_arm}
