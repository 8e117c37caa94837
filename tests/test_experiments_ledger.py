"""Metrics and decisions from real ledger events (appended to a SQLite ledger, read back by the
same code the report uses): exposure is the first heard DJ line, each metric per listener has a
value worked out by hand, deviations are left out, and the decision rule gives the known answer
on data built to have one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from dj.experiments import Arm, Experiment, assign
from dj.experiments.report import as_html, as_table
from dj.experiments.service import ExperimentReports, UnknownExperiment, read_and_analyse
from dj.ledger.log import Event, Ledger
from dj.store import Store

EXP = Experiment("nova-vs-spark", (Arm("control", "nova"), Arm("spark", "spark")), salt="t")
DAY0 = datetime(2026, 11, 2, tzinfo=UTC)


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return Ledger(Store(tmp_path / "dj.sqlite3"))


def iso(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds")


def ids_in(arm: str, n: int, prefix: str = "l") -> list[str]:
    out, i = [], 0
    while len(out) < n:
        lid = f"{prefix}{i}"
        if assign(EXP, lid).name == arm:
            out.append(lid)
        i += 1
    return out


def play(lid: str, arm: str, session: str, pid: str, start: datetime, heard_s: float,
         outcome: str, *, persona: str | None = None, dead_air_s: float = 0.0,
         experiment: str = EXP.name) -> list[Event]:
    ctx = {"session_id": session, "experiment": experiment, "arm": arm if experiment else "",
           "persona": persona or (EXP.arm(arm).persona if experiment else "nova"),
           "territory": "US", "tier": "ad-supported"}
    return [Event(pid, "play_started", lid, at=iso(start), play_id=pid, track_id="t",
                  artist_id="a", **ctx),
            Event(f"{pid}:end", "play_ended", lid, at=iso(start + timedelta(seconds=heard_s)),
                  play_id=pid, track_id="t", artist_id="a", heard_s=heard_s, outcome=outcome,
                  detail={"dead_air_s": dead_air_s} if dead_air_s else {}, **ctx)]


def line(lid: str, arm: str, session: str, at: datetime, n: int) -> Event:
    return Event(f"{session}:line{n}", "line_aired", lid, at=iso(at), session_id=session,
                 experiment=EXP.name, arm=arm, persona=EXP.arm(arm).persona, line_id="x",
                 detail={"engine": "espeak", "text": "hi"})


def test_exposure_is_the_first_heard_line_and_metrics_are_per_listener(ledger: Ledger) -> None:
    (a,) = ids_in("control", 1, "a")
    (b,) = ids_in("spark", 1, "b")
    (silent,) = ids_in("spark", 1, "s")
    t = DAY0 + timedelta(hours=10)
    events = [
        # a: two plays before the first line (counted: the arm's programme was already theirs),
        # then a line that introduces a play that is skipped, then one they leave 5 s after a line
        *play(a, "control", "a1", "a1:0", t, 100.0, "completed"),
        *play(a, "control", "a1", "a1:1", t + timedelta(seconds=100), 200.0, "completed",
              dead_air_s=1.5),
        line(a, "control", "a1", t + timedelta(seconds=303), 0),
        *play(a, "control", "a1", "a1:2", t + timedelta(seconds=300), 20.0, "skipped"),
        line(a, "control", "a1", t + timedelta(seconds=500), 1),
        *play(a, "control", "a1", "a1:3", t + timedelta(seconds=320), 185.0, "left"),
        # the next day: a second session, no line
        *play(a, "control", "a2", "a2:0", t + timedelta(days=1), 95.0, "completed"),
        # b: one line, one play it introduced, completed
        line(b, "spark", "b1", t + timedelta(seconds=4), 0),
        *play(b, "spark", "b1", "b1:0", t, 240.0, "completed"),
        # silent: plays, but never heard the DJ: assigned, not exposed
        *play(silent, "spark", "s1", "s1:0", t, 300.0, "completed"),
        # a's listening a week before the experiment: the CUPED covariate (14-day average)
        *play(a, "", "p1", "p1:0", t - timedelta(days=7), 700.0, "completed", experiment=""),
    ]
    assert ledger.append(events) == len(events)
    report = read_and_analyse(EXP, ledger, now=t + timedelta(days=2, hours=1))
    counts = report["counts"]
    assert counts["control"] == {"listeners_seen": 1, "assigned": 1, "exposed": 1,
                                 "deviations": 0, "analysed": 1, "exposed_share": 1.0}
    assert counts["spark"] == {"listeners_seen": 2, "assigned": 2, "exposed": 1,
                               "deviations": 0, "analysed": 1, "exposed_share": 0.5}
    m = report["metrics"]
    # a heard 100 + 200 + 20 + 185 + 95 = 600 s over 3 days (first session's day to now)
    assert m["listening_s_per_day"]["arms"]["control"]["value"] == pytest.approx(200.0)
    assert m["listening_s_per_day"]["arms"]["spark"]["value"] == pytest.approx(240.0 / 3)
    # a: the first line introduced a1:2 (skipped); the second introduced none within 30 s
    skip = m["skip_after_voice"]["arms"]["control"]
    assert (skip["numerator"], skip["denominator"]) == (1.0, 1.0)
    # a left (a1:3 ended at +505 s) 5 s after the line at +500 s: one tune-out of two lines
    tune = m["tuneout_after_voice"]["arms"]["control"]
    assert (tune["numerator"], tune["denominator"]) == (1.0, 2.0)
    assert m["sessions"]["arms"]["control"]["value"] == 2.0
    assert m["next_day_return"]["arms"]["control"]["value"] == 1.0
    assert m["next_day_return"]["arms"]["spark"]["value"] == 0.0
    assert m["dead_air_s"]["arms"]["control"]["value"] == pytest.approx(1.5)
    assert m["listening_s_per_day"]["cuped"]["listeners_with_pre"] == 1


def test_a_listener_logged_in_another_arm_or_persona_is_left_out(ledger: Ledger) -> None:
    ok = ids_in("control", 3, "ok")
    (wrong_arm,) = ids_in("control", 1, "w")
    (wrong_persona,) = ids_in("spark", 1, "p")
    t = DAY0 + timedelta(hours=9)
    events: list[Event] = []
    for lid in ok:
        events += [line(lid, "control", lid, t, 0), *play(lid, "control", lid, f"{lid}:0", t,
                                                         60.0, "completed")]
    events += [line(wrong_arm, "spark", "w", t, 0),  # logged under an arm it is not in
               *play(wrong_arm, "spark", "w", "w:0", t, 60.0, "completed")]
    events += [line(wrong_persona, "spark", "p", t, 0),
               *play(wrong_persona, "spark", "p", "p:0", t, 60.0, "completed",
                     persona="atlas")]
    ledger.append(events)
    report = read_and_analyse(EXP, ledger, now=t + timedelta(hours=2))
    assert report["deviations"] == 2
    assert report["counts"]["control"]["analysed"] == 3
    assert report["counts"]["spark"] == {"listeners_seen": 2, "assigned": 0, "exposed": 2,
                                         "deviations": 2, "analysed": 0,
                                         "exposed_share": None}
    assert "too few" in " ".join(report["decision"]["reasons"])


def population(ledger: Ledger, per_arm: dict[str, int], listening: dict[str, float],
               skips: dict[str, int], seed: int = 0) -> datetime:
    """Listeners on two days: 4 plays a day, each introduced by a line, ``skips[arm]`` of them
    skipped; a day's listening about ``listening[arm]`` s (sd 10 %). Returns the analysis time."""
    rng = np.random.default_rng(seed)
    events: list[Event] = []
    for arm, n in per_arm.items():
        for lid in ids_in(arm, n, f"{arm}-"):
            for day in range(2):
                session = f"{lid}:{day}"
                t = DAY0 + timedelta(days=day, hours=12)
                total = listening[arm] * (1 + 0.1 * rng.standard_normal())
                for k in range(4):
                    events.append(line(lid, arm, session, t + timedelta(seconds=3), k))
                    events += play(lid, arm, session, f"{session}:{k}", t, total / 4,
                                   "skipped" if k < skips[arm] else "completed")
                    t += timedelta(seconds=total / 4)
    ledger.append(events)
    return DAY0 + timedelta(days=2, hours=1)


def test_decision_ships_a_clear_win_with_flat_guardrails(ledger: Ledger) -> None:
    now = population(ledger, {"control": 40, "spark": 40}, {"control": 1000, "spark": 1300},
                     {"control": 1, "spark": 1})
    report = read_and_analyse(EXP, ledger, now=now)
    assert not report["srm"]["mismatch"]
    c = report["metrics"]["listening_s_per_day"]["comparisons"]["spark"]
    # 300 s more on each of 2 days, over the 3 listener-days up to the analysis (day 3 begun)
    assert c["ci_low"] > 0 and c["diff"] == pytest.approx(200, rel=0.1)
    assert report["decision"]["ship"] == "spark", report["decision"]
    assert report["decision"]["verdict"] == "ship spark"


def test_decision_refuses_a_win_that_costs_skips(ledger: Ledger) -> None:
    now = population(ledger, {"control": 40, "spark": 40}, {"control": 1000, "spark": 1300},
                     {"control": 1, "spark": 2})
    report = read_and_analyse(EXP, ledger, now=now)
    skip = report["metrics"]["skip_after_voice"]
    assert skip["arms"]["control"]["value"] == pytest.approx(0.25)
    assert skip["arms"]["spark"]["value"] == pytest.approx(0.5)
    assert report["decision"]["ship"] is None
    assert any("skip_after_voice" in r for r in report["decision"]["reasons"])
    assert not any("listening_s_per_day" in r for r in report["decision"]["reasons"])


def test_decision_without_a_lift_says_so(ledger: Ledger) -> None:
    now = population(ledger, {"control": 40, "spark": 40}, {"control": 1000, "spark": 1000},
                     {"control": 1, "spark": 1}, seed=4)
    report = read_and_analyse(EXP, ledger, now=now)
    assert report["decision"]["ship"] is None
    assert any("did not improve significantly" in r for r in report["decision"]["reasons"])


def test_a_broken_split_is_flagged_before_anything_else(ledger: Ledger) -> None:
    # 50/50 by design, 60 against 140 exposed: chi2 = 2 * 40^2 / 100 = 32
    now = population(ledger, {"control": 60, "spark": 140}, {"control": 1000, "spark": 1300},
                     {"control": 1, "spark": 1})
    report = read_and_analyse(EXP, ledger, now=now)
    assert report["srm"]["chi2"] == pytest.approx(32.0)
    assert report["srm"]["mismatch"]
    # everyone assigned was exposed: the assignment itself is off, not the exposure
    assert report["srm_assigned"]["chi2"] == pytest.approx(32.0)
    assert report["srm_assigned"]["mismatch"]
    assert report["decision"]["verdict"] == "do not ship: sample ratio mismatch"


def test_an_arm_that_exposes_fewer_of_its_listeners_is_not_shipped(ledger: Ledger) -> None:
    """40 listeners assigned to each arm, all of whom play; every control listener hears a DJ
    line, only 10 of spark's do (an arm that talks less). Spark's exposed listeners listen
    longer: compared as they are, spark would win. The assigned split is exactly the design's
    (chi2 0); the exposed one, 40 against 10 of an expected 25 each, has chi2 = 2 * 15^2 / 25
    = 18 (p = 2.2e-5): exposure differs by arm, and the decision says so instead of shipping."""
    t = DAY0 + timedelta(hours=12)
    events: list[Event] = []
    rng = np.random.default_rng(7)
    for arm, heard_line, listening in (("control", 40, 1000.0), ("spark", 10, 1500.0)):
        for i, lid in enumerate(ids_in(arm, 40, f"{arm}-")):
            total = listening * (1 + 0.1 * rng.standard_normal())
            if i < heard_line:
                events.append(line(lid, arm, lid, t + timedelta(seconds=3), 0))
            events += play(lid, arm, lid, f"{lid}:0", t, total, "completed")
    ledger.append(events)
    report = read_and_analyse(EXP, ledger, now=t + timedelta(hours=2))
    counts = report["counts"]
    assert (counts["control"]["assigned"], counts["control"]["analysed"]) == (40, 40)
    assert (counts["spark"]["assigned"], counts["spark"]["analysed"]) == (40, 10)
    assert counts["control"]["exposed_share"] == 1.0
    assert counts["spark"]["exposed_share"] == 0.25
    assigned, exposed = report["srm_assigned"], report["srm"]
    assert assigned["counts"] == {"control": 40, "spark": 40}
    assert assigned["chi2"] == pytest.approx(0.0) and not assigned["mismatch"]
    assert exposed["counts"] == {"control": 40, "spark": 10}
    assert exposed["chi2"] == pytest.approx(18.0)
    assert exposed["p"] == pytest.approx(2.2e-5, rel=0.05) and exposed["mismatch"]
    # the metrics alone would ship spark
    assert report["metrics"]["listening_s_per_day"]["comparisons"]["spark"]["ci_low"] > 0
    decision = report["decision"]
    assert decision["ship"] is None
    assert decision["verdict"] == "do not ship: exposure differs by arm"
    (reason,) = decision["reasons"]
    assert "control 40/40 (100%), spark 10/40 (25%)" in reason
    assert "talk at different rates" in reason
    table = as_table(report)
    assert "SRM check (assigned): ok" in table
    assert "SRM check (exposed): !! SAMPLE RATIO MISMATCH !!" in table
    assert "exposure differs by arm" in table and "25.0" in table
    assert "exposure differs by arm" in as_html(report)


def test_reports_name_unknown_experiments(ledger: Ledger) -> None:
    reports = ExperimentReports([EXP], ledger)
    with pytest.raises(UnknownExperiment, match="known: nova-vs-spark"):
        reports.analysis("nova-vs-sparkle")
    empty = reports.analysis(EXP.name)  # nothing logged yet: a report, not an error
    assert empty["counts"]["control"]["exposed"] == 0
    assert empty["decision"]["ship"] is None


def test_dead_air_heard_in_a_play_is_logged_with_its_end(ledger: Ledger, demo_catalog) -> None:
    """The stream's path: the dead-air marker the ear reaches is added to the play it cut short
    and written with the play's end, where the dead-air guardrail reads it."""
    from types import SimpleNamespace

    from dj.audio.plan import Marker
    from dj.catalog import Listener
    from dj.ledger.writer import EventWriter
    from dj.stream.credit import HeardEvents
    from dj.stream.session import NowPlaying
    from dj.stream.sinks import LedgerPlays, NarratorAirings, Writer

    track = demo_catalog.tracks()[0]
    failures: list[str] = []
    writer, learn = EventWriter(ledger, failures.append), Writer(failures.append)
    events = HeardEvents(catalog_track=demo_catalog.track,
                         plays=LedgerPlays(writer, demo_catalog, None, learn),
                         airings=NarratorAirings(None, writer), on_failure=failures.append)
    session = SimpleNamespace(
        id="sess", listener=Listener("dead-air-listener", "US"), persona="spark",
        experiment=EXP.name, arm="spark", heard_s=0.0, heard_wall=DAY0.timestamp(),
        open_plays={}, skipped_plays=set(), held=[], now=NowPlaying())
    events.apply(session, [Marker(0, "track_start", track.id, play="p1")])
    events.apply(session, [Marker(44100, "dead_air", track.id, 1.75)])
    events.apply(session, [Marker(88200, "dead_air", track.id, 0.5)])
    session.heard_s = 42.0
    events.end_all(session, "left")
    writer.flush()
    writer.close()
    learn.shutdown()
    (end,) = ledger.events(play_id="p1", kind="play_ended")
    assert end.detail["dead_air_s"] == pytest.approx(2.25)
    assert (end.experiment, end.arm, end.heard_s) == (EXP.name, "spark", 42.0)
    assert failures == ["dead_air", "dead_air"]  # still counted for /metrics as before
