"""Persona experiments proven by simulation: listeners with a known true effect are logged as the
station logs them (ledger events: plays with the seconds heard and how they ended, the DJ's lines
at the heard position, sessions) and analysed by the same code as `dj report experiment`
(dj.experiments: assignment, exposure, metrics, statistics, decision).

Prints one table:
  * the false-positive rate of the primary metric over A/A simulations (no true effect) at
    alpha = 0.05, with and without CUPED; it must be within 3.5-6.5 %;
  * the same under daily peeking: naive Welch at every look against the always-valid (mSPRT)
    p-value;
  * the power at the stated effect (listening time +X %, skip rate after a voice line +Y);
  * the variance reduction CUPED achieves from each listener's pre-experiment listening;
  * the sample-ratio check on an injected 45/55 split (exposures lost from one arm).

Every simulation's events are Event values; `--ledger-sims` of them also go through a real SQLite
ledger (appended, read back by `read_and_analyse`) and must give the identical analysis.

    python bench/ab_sim.py [--aa 1000] [--listeners 600] [--effect-pct 10] [--seed 1]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from dj.experiments.analysis import analyse
from dj.experiments.definition import Arm, Experiment
from dj.experiments.service import read_and_analyse
from dj.ledger.log import Event, Ledger
from dj.store import Store

START = datetime(2026, 11, 2, tzinfo=UTC)
DAYS = 3  # experiment days simulated
ALPHA = 0.05


@dataclass(frozen=True, slots=True)
class World:
    """The true state of the simulated station."""

    listening_effect: float = 0.0  # relative change of listening time in the treatment arm
    skip_effect: float = 0.0  # absolute change of the skip probability after a voice line
    #: the control arm's share of the logged listeners when a logging fault loses some of its
    #: listeners' events (an SRM to catch); None: nothing is lost
    control_share: float | None = None
    median_s_per_day: float = 900.0
    spread: float = 0.8  # log-normal sigma of listeners' appetite
    day_noise_shape: float = 3.0  # gamma shape of day-to-day variation
    active_p: float = 0.7  # chance a listener tunes in on a given day
    voice_p: float = 0.35  # chance a play is introduced by the DJ
    skip_after_voice: float = 0.2
    skip_otherwise: float = 0.1


def experiment(salt: str) -> Experiment:
    return Experiment("sim", (Arm("control", "nova"), Arm("treatment", "spark")), salt=salt)


def simulate(world: World, n: int, rng: np.random.Generator, salt: str) -> list[Event]:
    """Every event the station would log for ``n`` listeners (pre-period and experiment)."""
    exp = experiment(salt)
    events: list[Event] = []
    appetite = np.exp(np.log(world.median_s_per_day) + world.spread * rng.standard_normal(n))
    shape = world.day_noise_shape
    day_noise = rng.gamma(shape, size=(n, DAYS)) / shape
    # the 14 days before sum 14 days' noise: the period's total is steadier than one day's
    pre_noise = rng.gamma(14 * shape, size=n) / (14 * shape)
    active = rng.random((n, DAYS)) < world.active_p
    assigned = [exp.assign(f"{salt}-l{i}") for i in range(n)]
    keep_control = n
    if world.control_share is not None:  # exactly this split: keep the first so many
        treated_n = sum(a is not None and a.name == "treatment" for a in assigned)
        keep_control = round(treated_n * world.control_share / (1 - world.control_share))
    control_seen = 0
    start_h = rng.uniform(6, 20, size=(n, DAYS))
    cap = 40
    voice_u, skip_u = rng.random((n, DAYS, cap)), rng.random((n, DAYS, cap))
    heard_skip, heard_full = rng.uniform(5, 30, (n, DAYS, cap)), rng.uniform(120, 360,
                                                                            (n, DAYS, cap))
    pre_at = (START - timedelta(days=7)).isoformat()
    for i in range(n):
        lid = f"{salt}-l{i}"
        arm = assigned[i]
        assert arm is not None
        treated = arm.name == "treatment"
        if not treated:
            control_seen += 1
            if control_seen > keep_control:
                continue  # a logging fault lost this listener's events
        # 14 days before: one long play carrying the period's listening (the CUPED covariate)
        pid = f"{lid}:pre"
        events.append(Event(pid, "play_started", lid, at=pre_at, session_id=f"{lid}:p",
                            play_id=pid))
        events.append(Event(f"{pid}:end", "play_ended", lid, at=pre_at, session_id=f"{lid}:p",
                            play_id=pid, heard_s=float(appetite[i] * 14 * pre_noise[i]),
                            outcome="completed"))
        ctx = {"experiment": "sim", "arm": arm.name, "persona": arm.persona}
        first = True
        for day in range(DAYS):
            if not first and not active[i, day]:
                continue
            want = appetite[i] * day_noise[i, day] * (
                1 + world.listening_effect if treated else 1.0)
            session = f"{lid}:s{day}"
            t = START + timedelta(days=day, hours=float(start_h[i, day]))
            heard_total = 0.0
            for k in range(cap):
                voiced = first or voice_u[i, day, k] < world.voice_p
                pid = f"{session}:{k}"
                events.append(Event(pid, "play_started", lid, at=t.isoformat(),
                                    session_id=session, play_id=pid, **ctx))
                if voiced:  # the line ends a few seconds into the track it introduces
                    events.append(Event(f"{pid}:line", "line_aired", lid,
                                        at=(t + timedelta(seconds=4)).isoformat(),
                                        session_id=session, **ctx))
                p_skip = (world.skip_after_voice + (world.skip_effect if treated else 0.0)
                          if voiced else world.skip_otherwise)
                skipped = skip_u[i, day, k] < p_skip
                heard = float(heard_skip[i, day, k] if skipped else heard_full[i, day, k])
                if not skipped and want - heard_total < heard:
                    heard = max(5.0, want - heard_total)  # leaves part-way through
                t += timedelta(seconds=heard)
                heard_total += heard
                last = heard_total >= want or k == cap - 1
                outcome = "skipped" if skipped else ("left" if last else "completed")
                events.append(Event(f"{pid}:end", "play_ended", lid, at=t.isoformat(),
                                    session_id=session, play_id=pid, heard_s=round(heard, 3),
                                    outcome=outcome, **ctx))
                first = False
                if last:
                    break
    return events


def run(world: World, n: int, rng: np.random.Generator, salt: str,
        series: bool = False) -> dict:
    events = simulate(world, n, rng, salt)
    now = START + timedelta(days=DAYS)
    return analyse(experiment(salt), [e for e in events if e.experiment],
                   [e for e in events if not e.experiment], now=now, series=series)


def via_ledger(world: World, n: int, rng_seed: int, salt: str, directory: Path) -> bool:
    """The same simulation appended to a real ledger and analysed from it: identical?"""
    direct = run(world, n, np.random.default_rng(rng_seed), salt, series=True)
    ledger = Ledger(Store(directory / f"{salt}.sqlite3"))
    ledger.append(simulate(world, n, np.random.default_rng(rng_seed), salt))
    stored = read_and_analyse(experiment(salt), ledger, now=START + timedelta(days=DAYS))
    return stored == direct


def significant(report: dict, metric: str, cuped: bool = False) -> bool:
    m = report["metrics"][metric]
    c = (m["cuped"]["comparisons"] if cuped and m.get("cuped", {}).get("applied")
         else m["comparisons"])["treatment"]
    return c["p"] is not None and c["p"] < ALPHA


def progress(what: str) -> None:
    print(f"  {time.strftime('%H:%M:%S')} {what}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--aa", type=int, default=1000, help="A/A simulations (at least 500)")
    ap.add_argument("--power-sims", type=int, default=200)
    ap.add_argument("--peek-sims", type=int, default=200,
                    help="A/A simulations analysed at every daily look")
    ap.add_argument("--srm-sims", type=int, default=50)
    ap.add_argument("--ledger-sims", type=int, default=10,
                    help="simulations also run through a real SQLite ledger")
    ap.add_argument("--listeners", type=int, default=400, help="per A/A simulation")
    ap.add_argument("--power-listeners", type=int, default=1000)
    ap.add_argument("--srm-listeners", type=int, default=2000)
    ap.add_argument("--effect-pct", type=float, default=15.0,
                    help="true listening-time effect of the treatment, percent")
    ap.add_argument("--skip-effect", type=float, default=0.05,
                    help="true change of the skip probability after a voice line")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    started = time.monotonic()
    rows: list[tuple[str, str, str]] = []

    aa_fp = aa_fp_cuped = 0
    reductions = []
    for s in range(args.aa):
        r = run(World(), args.listeners, rng, f"aa{s}")
        aa_fp += significant(r, "listening_s_per_day")
        aa_fp_cuped += significant(r, "listening_s_per_day", cuped=True)
        cup = r["metrics"]["listening_s_per_day"]["cuped"]
        if cup["applied"]:
            reductions.append(cup["variance_reduction"])
    progress("A/A done")
    rate, rate_c = aa_fp / max(1, args.aa), aa_fp_cuped / max(1, args.aa)
    band = ("ok" if not args.aa or 0.035 <= rate <= 0.065 and 0.035 <= rate_c <= 0.065
            else "OUT OF 3.5-6.5 %")
    rows.append(("A/A false positives, Welch (alpha 0.05)", f"{100 * rate:.1f} %",
                 f"{aa_fp}/{args.aa} sims, {args.listeners} listeners; {band}"))
    rows.append(("A/A false positives, Welch + CUPED", f"{100 * rate_c:.1f} %",
                 f"{aa_fp_cuped}/{args.aa} sims"))

    naive = seq = 0
    for s in range(args.peek_sims):
        r = run(World(), args.listeners, rng, f"peek{s}", series=True)
        ps = [d["always_valid_p"]["treatment"] for d in r["series"]]
        looks = [d["fixed_horizon_p"]["treatment"] for d in r["series"]]
        naive += any(p is not None and p < ALPHA for p in looks)
        seq += any(p is not None and p < ALPHA for p in ps)
    rows.append(("A/A peeking daily: naive Welch at any look",
                 f"{100 * naive / max(1, args.peek_sims):.1f} %",
                 f"{args.peek_sims} sims x {DAYS} looks"))
    rows.append(("A/A peeking daily: always-valid p (mSPRT)",
                 f"{100 * seq / max(1, args.peek_sims):.1f} %",
                 "under alpha however often one looks"))

    progress("peeking done")
    effect = World(listening_effect=args.effect_pct / 100, skip_effect=args.skip_effect)
    power = power_c = power_skip = ships = 0
    for s in range(args.power_sims):
        r = run(effect, args.power_listeners, rng, f"pw{s}")
        power += significant(r, "listening_s_per_day")
        power_c += significant(r, "listening_s_per_day", cuped=True)
        power_skip += significant(r, "skip_after_voice")
        ships += r["decision"]["ship"] is not None
    rows.append((f"power, listening +{args.effect_pct:g} %, Welch",
                 f"{100 * power / max(1, args.power_sims):.1f} %",
                 f"{args.power_sims} sims, {args.power_listeners} listeners"))
    rows.append((f"power, listening +{args.effect_pct:g} %, Welch + CUPED",
                 f"{100 * power_c / max(1, args.power_sims):.1f} %", ""))
    rows.append((f"power, skip after voice +{args.skip_effect:g}, delta method",
                 f"{100 * power_skip / max(1, args.power_sims):.1f} %", "same simulations"))
    rows.append(("decision 'ship' despite the skip guardrail",
                 f"{100 * ships / max(1, args.power_sims):.1f} %",
                 "skips rise 0.20 -> 0.25 (margin 10 %): should be ~0"))
    good = World(listening_effect=args.effect_pct / 100)
    good_ships, blocked = 0, Counter()
    for s in range(args.power_sims):
        decision = run(good, args.power_listeners, rng, f"good{s}")["decision"]
        good_ships += decision["ship"] == "treatment"
        blocked.update({r.split(" ")[2] if "guardrail" in r else "primary"
                        for r in decision["reasons"] if decision["ship"] is None})
    rows.append((f"decision 'ship', listening +{args.effect_pct:g} %, guardrails flat",
                 f"{100 * good_ships / max(1, args.power_sims):.1f} %",
                 "primary up and every guardrail shown non-inferior; blocked by: "
                 + (", ".join(f"{k} {v}x" for k, v in blocked.most_common(3)) or "-")))
    rows.append(("CUPED variance reduction (primary)",
                 f"{100 * float(np.mean(reductions)):.1f} %" if reductions else "-",
                 f"mean over {len(reductions)} A/A sims; theta from pre-period listening"))

    progress("power done")
    caught = caught_ok = 0
    skew = World(control_share=0.45)
    for s in range(args.srm_sims):
        caught += run(skew, args.srm_listeners, rng, f"srm{s}")["srm"]["mismatch"]
        caught_ok += run(World(), args.srm_listeners, rng, f"srmok{s}")["srm"]["mismatch"]
    rows.append(("SRM check flags an injected 45/55 split",
                 f"{100 * caught / max(1, args.srm_sims):.1f} %",
                 f"{args.srm_sims} sims, {args.srm_listeners} listeners, p < 0.001"))
    rows.append(("SRM check flags a sound 50/50 split",
                 f"{100 * caught_ok / max(1, args.srm_sims):.1f} %",
                 "false alarms"))

    same = 0
    with tempfile.TemporaryDirectory() as tmp:
        for s in range(args.ledger_sims):
            same += via_ledger(effect, 200, args.seed * 1000 + s, f"led{s}", Path(tmp))
    rows.append(("through a real SQLite ledger: identical analysis",
                 f"{same}/{args.ledger_sims}",
                 "events appended, read back, analysed"))

    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'value':>8}  notes")
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:>8}  {note}")
    print(f"({time.monotonic() - started:.0f} s, seed {args.seed})")
    return 0 if band == "ok" and caught == args.srm_sims and same == args.ledger_sims else 1


if __name__ == "__main__":
    sys.exit(main())
