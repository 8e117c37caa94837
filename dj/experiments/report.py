"""An experiment's analysis (:func:`dj.experiments.analysis.analyse`) as a table for a terminal,
as JSON, or as a self-contained HTML page whose plots (the primary metric per arm over the days,
the distribution of listening time per arm) are PNG images embedded as data: URIs, so the page
loads nothing from anywhere and passes the served pages' content-security policy."""

from __future__ import annotations

import base64
import html
import io
import json
import logging
import math
from typing import Any

logger = logging.getLogger(__name__)

FORMATS = ("table", "json", "html")


def _f(x: Any, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    if isinstance(x, int):
        return str(x)
    return f"{x:.{digits}g}"


def _interval(c: dict[str, Any]) -> str:
    return f"{_f(c['diff'])} [{_f(c['ci_low'])}, {_f(c['ci_high'])}] p={_f(c['p'], 2)}"


def as_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, ensure_ascii=False, allow_nan=False)


def as_table(report: dict[str, Any]) -> str:
    arms = [a["name"] for a in report["arms"]]
    control = report["control"]
    srm = report["srm"]
    out = [f"experiment {report['experiment']}"
           + (f": {report['description']}" if report["description"] else ""),
           f"  window {report['window']['start'] or 'open'} .. {report['window']['end'] or 'open'}"
           f", analysed until {report['window']['analysed_until']}"
           + (" (running)" if report["window"]["running"] else " (ended)"),
           "  arms: " + ", ".join(
               f"{a['name']}={a['persona']} (weight {_f(a['weight'])}"
               + "".join(f", {k} = {_f(v)}" for k, v in a.get("overrides", {}).items()) + ")"
               for a in report["arms"]) + f"; control {control}",
           ""]
    assigned = report["srm_assigned"]
    for check in (assigned, srm):
        flag = "!! SAMPLE RATIO MISMATCH !!" if check["mismatch"] else "ok"
        out.append(f"SRM check ({check['population']}): {flag}  chi2={_f(check['chi2'])}"
                   f" p={_f(check['p'], 3)} (flagged below {check['threshold']})")
    out.append(f"{'arm':<14}{'seen':>8}{'deviating':>11}{'assigned':>10}{'expected':>10}"
               f"{'exposed':>9}{'analysed':>10}{'expected':>10}{'exposed %':>11}")
    for a in arms:
        c = report["counts"][a]
        share = "-" if c["exposed_share"] is None else f"{100 * c['exposed_share']:.1f}"
        out.append(f"{a:<14}{c['listeners_seen']:>8}{c['deviations']:>11}{c['assigned']:>10}"
                   f"{assigned['expected'][a]:>10.1f}{c['exposed']:>9}{c['analysed']:>10}"
                   f"{srm['expected'][a]:>10.1f}{share:>11}")
    out.append("  (assigned: listeners who played in the experiment; exposed: who heard a DJ"
               " line; analysed: exposed and not deviating; exposed %: analysed of assigned)")
    out.append("")
    out.append(f"metrics ({report['correction']}; intervals at"
               f" {100 * (1 - report['alpha_per_comparison']):.1f}%)")
    for name, m in report["metrics"].items():
        role = "primary" if name == report["primary"] else "guardrail"
        out.append(f"  {name} [{role}] {m['label']} ({m['unit']}, {m['method']},"
                   f" {'higher' if m['higher_is_better'] else 'lower'} is better)")
        for a in arms:
            s = m["arms"][a]
            line = f"    {a:<12} n={s['n']:<6} value={_f(s['value'])} se={_f(s['se'])}"
            if a in m["comparisons"]:
                line += f"  vs {control}: {_interval(m['comparisons'][a])}"
            out.append(line)
        cup = m.get("cuped")
        if cup is not None:
            if cup["applied"]:
                out.append(f"    CUPED: theta={_f(cup['theta'])}, variance reduced by"
                           f" {100 * cup['variance_reduction']:.1f}%"
                           f" ({cup['listeners_with_pre']} listeners with pre-period data)")
                for a, c in cup["comparisons"].items():
                    out.append(f"    {a:<12} adjusted vs {control}: {_interval(c)}")
            else:
                out.append(f"    CUPED: not applied ({cup['listeners_with_pre']} listeners"
                           " with pre-period listening)")
    if report["series"]:
        last = report["series"][-1]
        out.append("")
        out.append(f"sequential (mSPRT, always-valid) p on {report['primary']} after"
                   f" {len(report['series'])} daily look(s): "
                   + ", ".join(f"{a}={_f(p, 3)}" for a, p in last["always_valid_p"].items()))
    d = report["decision"]
    out.append("")
    out.append(f"DECISION: {d['verdict']}")
    out.extend(f"  - {r}" for r in d["reasons"])
    return "\n".join(out) + "\n"


def plots(report: dict[str, Any]) -> dict[str, str] | None:
    """Figure name -> PNG as base64; None when matplotlib is not installed."""
    try:  # the Figure API, not pyplot: no global state, so two requests may draw at once
        from matplotlib.figure import Figure
    except ImportError:
        return None
    out: dict[str, str] = {}
    arms = [a["name"] for a in report["arms"]]
    metric = report["metrics"][report["primary"]]

    def png(fig: Figure) -> str:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
        return base64.b64encode(buf.getvalue()).decode()

    if report["series"]:
        fig = Figure(figsize=(7, 3.4))
        ax = fig.subplots()
        days = [p["day"] for p in report["series"]]
        for j, a in enumerate(arms):
            shift = (j - (len(arms) - 1) / 2) * 0.08  # side by side: the error bars stay apart
            ys = [p["arms"][a]["value"] for p in report["series"]]
            se = [p["arms"][a]["se"] or 0.0 for p in report["series"]]
            xs = range(len(days))
            ok = [i for i, y in zip(xs, ys, strict=True) if y is not None]
            ax.errorbar([i + shift for i in ok], [ys[i] for i in ok],
                        yerr=[1.96 * se[i] for i in ok],
                        marker="o", capsize=3, label=a)
        ax.set_xticks(range(len(days)), days, rotation=30, ha="right")
        ax.set_ylabel(f"{metric['label']} ({metric['unit']})")
        ax.set_title(f"{report['primary']} per arm, cumulative by day (95% error bars)")
        ax.legend()
        out["over_time"] = png(fig)
    dist = report.get("distribution") or {}
    if any(dist.values()):
        fig = Figure(figsize=(7, 3.4))
        ax = fig.subplots()
        values = [v for vs in dist.values() for v in vs]
        top = max(values) if values else 1.0
        bins = [top * i / 20 for i in range(21)] if top > 0 else 10
        for a in arms:
            if dist.get(a):
                ax.hist(dist[a], bins=bins, alpha=0.5, label=f"{a} (n={len(dist[a])})")
        ax.set_xlabel(f"{metric['label']} ({metric['unit']})")
        ax.set_ylabel("listeners")
        ax.set_title("Distribution per listener")
        ax.legend()
        out["distribution"] = png(fig)
    return out


STYLE = ("body{font:15px/1.45 system-ui,sans-serif;margin:2em auto;max-width:60em;"
         "padding:0 1em;color:#222}table{border-collapse:collapse;margin:.5em 0 1.2em}"
         "td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}"
         "th:first-child,td:first-child{text-align:left}.bad{background:#fdd;font-weight:bold}"
         ".ok{background:#dfd}.verdict{font-size:1.3em;font-weight:bold}img{max-width:100%}"
         "pre{white-space:pre-wrap}")


def as_html(report: dict[str, Any]) -> str:
    e = html.escape
    arms = [a["name"] for a in report["arms"]]
    control = report["control"]
    srm, assigned = report["srm"], report["srm_assigned"]
    d = report["decision"]
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f"<title>Experiment {e(report['experiment'])}</title><style>{STYLE}</style></head><body>",
        f"<h1>Experiment {e(report['experiment'])}</h1>",
        f"<p>{e(report['description'])}</p>" if report["description"] else "",
        f"<p class='verdict {'ok' if d['ship'] else 'bad'}'>Decision: {e(d['verdict'])}</p><ul>",
        *(f"<li>{e(r)}</li>" for r in d["reasons"]), "</ul>",
        "<h2>Split</h2>",
        *(f"<p class='{'bad' if c['mismatch'] else 'ok'}'>Sample-ratio check of the"
          f" {c['population']} listeners: {'MISMATCH' if c['mismatch'] else 'ok'} (chi-square"
          f" {_f(c['chi2'])}, p = {_f(c['p'], 3)}; flagged below {c['threshold']})</p>"
          for c in (assigned, srm)),
        "<table><tr><th>arm</th><th>persona</th><th>overrides</th><th>seen</th>"
        "<th>deviating</th><th>assigned</th><th>expected</th><th>exposed</th><th>analysed</th>"
        "<th>expected</th><th>exposed of assigned</th></tr>",
    ]
    for a in report["arms"]:
        c = report["counts"][a["name"]]
        share = "-" if c["exposed_share"] is None else f"{100 * c['exposed_share']:.1f}%"
        overrides = ", ".join(f"{k} = {_f(v)}" for k, v in a.get("overrides", {}).items())
        parts.append(f"<tr><td>{e(a['name'])}</td><td>{e(a['persona'])}</td>"
                     f"<td>{e(overrides)}</td><td>{c['listeners_seen']}</td>"
                     f"<td>{c['deviations']}</td><td>{c['assigned']}</td>"
                     f"<td>{assigned['expected'][a['name']]:.1f}</td><td>{c['exposed']}</td>"
                     f"<td>{c['analysed']}</td><td>{srm['expected'][a['name']]:.1f}</td>"
                     f"<td>{share}</td></tr>")
    parts.append("</table><p>Assigned: listeners who played in the experiment; exposed: who"
                 " heard a DJ line; analysed: exposed and not deviating.</p>")
    parts.append(f"<h2>Metrics</h2><p>{e(report['correction'])}; intervals at"
                 f" {100 * (1 - report['alpha_per_comparison']):.1f}%.</p>")
    parts.append("<table><tr><th>metric</th><th>arm</th><th>n</th><th>value</th><th>se</th>"
                 f"<th>difference vs {e(control)} [CI]</th><th>p</th></tr>")
    for name, m in report["metrics"].items():
        role = "primary" if name == report["primary"] else "guardrail"
        for a in arms:
            s = m["arms"][a]
            c = m["comparisons"].get(a)
            parts.append(
                f"<tr><td>{e(m['label'])} ({role}, {e(m['unit'])})</td><td>{e(a)}</td>"
                f"<td>{s['n']}</td><td>{_f(s['value'])}</td><td>{_f(s['se'])}</td>"
                + (f"<td>{_f(c['diff'])} [{_f(c['ci_low'])}, {_f(c['ci_high'])}]</td>"
                   f"<td>{_f(c['p'], 2)}</td>" if c else "<td>control</td><td></td>") + "</tr>")
        cup = m.get("cuped")
        if cup and cup["applied"]:
            for a, c in cup["comparisons"].items():
                parts.append(
                    f"<tr><td>{e(m['label'])}, CUPED (theta {_f(cup['theta'])}, variance"
                    f" -{100 * cup['variance_reduction']:.0f}%)</td><td>{e(a)}</td><td></td>"
                    f"<td></td><td>{_f(c['se'])}</td><td>{_f(c['diff'])} [{_f(c['ci_low'])},"
                    f" {_f(c['ci_high'])}]</td><td>{_f(c['p'], 2)}</td></tr>")
    parts.append("</table>")
    images = plots(report)
    parts.append("<h2>Plots</h2>")
    if images is None:
        parts.append("<p>Plots need matplotlib, which is not installed here"
                     " (pip install matplotlib).</p>")
    elif not images:
        parts.append("<p>No exposed listeners yet: nothing to plot.</p>")
    for name, data in (images or {}).items():
        parts.append(f"<p><img alt='{e(name.replace('_', ' '))}'"
                     f" src='data:image/png;base64,{data}'></p>")
    parts.append(f"<h2>Full table</h2><pre>{e(as_table(report))}</pre></body></html>")
    return "\n".join(p for p in parts if p)


def render(report: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return as_json(report) + "\n"
    if fmt == "html":
        return as_html(report)
    return as_table(report)
