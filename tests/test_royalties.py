"""Royalties from the ledger: a worked example in exact cents under both models, the largest
remainder rule, periods and money, the ``dj report`` subcommands and their exit codes, and an
artist's statement over a real aiohttp server (own token 200, another artist's 403, none 401).

The worked example (``EXAMPLE``, November 2026, revenue 100.00 EUR, pools 50/50: 50.00 each):

    tracks   t1 (ana): master  X 100          publishing  P 70, Q 30
             t2 (bo):  master  X 50, Y 50     publishing  Q 100
             t3 (cy):  master  Y 100          publishing  R 100
    plays    L1: t1 x6        L2: t2, t3       L3: t3       (9 qualifying plays, 3 listeners)
             not counted: L3 heard t1 for 10 s; L2 played t1 on 31 October

Pro-rata, each play 1/9 of a pool:
    master      X = (6 + 0.5)/9 = 13/18 -> 3611.11   Y = (0.5 + 2)/9 = 5/18 -> 1388.89
    publishing  P = 6*0.7/9 = 7/15 -> 2333.33   Q = (6*0.3 + 1)/9 = 14/45 -> 1555.56
                R = 2/9 -> 1111.11
    floors: 3611 + 1388 = 4999, the cent left to Y (.89 > .11): X 36.11, Y 13.89;
            2333 + 1555 + 1111 = 4999, the cent left to Q (.56): P 23.33, Q 15.56, R 11.11
User-centric, each listener 1/3, spread over their own plays (L1 1/18 each, L2 1/6, L3 1/3):
    master      X = 1/3 + 1/12 = 5/12 -> 2083.33   Y = 1/12 + 1/6 + 1/3 = 7/12 -> 2916.67
    publishing  P = 1/3*0.7 = 7/30 -> 1166.67   Q = 1/3*0.3 + 1/6 = 4/15 -> 1333.33
                R = 1/6 + 1/3 = 1/2 -> 2500
    floors: 2083 + 2916 = 4999, the cent to Y: X 20.83, Y 29.17;
            1166 + 1333 + 2500 = 4999, the cent to P: P 11.67, Q 13.33, R 25.00
Every pool sums to 50.00, and each model to 100.00. The heavy listener L1 decides 2/3 of the
plays, so pro-rata pays t1's holders (X, P) most; user-centric gives L1's money only to t1 and
L2's and L3's to what they played, so Y and R gain.
"""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path

import aiohttp
import pytest

from dj.auth import TokenStore
from dj.catalog import Catalog
from dj.cli import main as dj
from dj.ledger import Ledger
from dj.ledger.log import Event, ended, qualified
from dj.ledger.royalties import (
    UNALLOCATED,
    Money,
    NoPlays,
    RoyaltyError,
    artist_statement,
    largest_remainder,
    lines_report,
    parse_money,
    parse_pct,
    parse_period,
    plays_report,
    record_revenue,
    royalties,
)
from dj.store import Store

NOV = parse_period("2026-11")
HOLDERS = {
    "t1": [("X", "master", 100), ("P", "publishing", 70), ("Q", "publishing", 30)],
    "t2": [("X", "master", 50), ("Y", "master", 50), ("Q", "publishing", 100)],
    "t3": [("Y", "master", 100), ("R", "publishing", 100)],
}
ARTIST = {"t1": "ana", "t2": "bo", "t3": "cy"}


def play(play_id: str, listener: str, track: str, at: str, heard_s: float = 90.0,
         territory: str = "DE", holders: list[tuple[str, str, float]] | None = None,
         artist: str | None = None) -> list[Event]:
    """A play's events as the stream writes them: started, qualified once 30 s were heard,
    ended."""
    rights = [{"party": p, "role": r, "share_pct": s}
              for p, r, s in (HOLDERS[track] if holders is None else holders)]
    start = Event(play_id, "play_started", listener, at=at, session_id=f"s-{listener}",
                  territory=territory, tier="subscription", play_id=play_id, track_id=track,
                  artist_id=artist or ARTIST.get(track, "zed"), detail={"rightsholders": rights})
    events = [start]
    if heard_s >= 30:
        events.append(qualified(start, 30.0, at=at))
    events.append(ended(start, heard_s, "completed" if heard_s >= 60 else "skipped", at=at))
    return events


def example(ledger: Ledger) -> None:
    events: list[Event] = []
    for i in range(6):
        events += play(f"l1-{i}", "L1", "t1", f"2026-11-0{i + 1}T10:00:00.000+00:00")
    events += play("l2-0", "L2", "t2", "2026-11-03T12:00:00.000+00:00", territory="AT")
    events += play("l2-1", "L2", "t3", "2026-11-30T23:59:59.999+00:00")
    # 23:30 on 30 November in UTC, written with another offset: still November
    events += play("l3-0", "L3", "t3", "2026-12-01T00:30:00+01:00")
    events += play("l3-short", "L3", "t1", "2026-11-04T09:00:00.000+00:00", heard_s=10.0)
    events += play("l2-oct", "L2", "t1", "2026-10-31T23:59:59.000+00:00")
    events += play("l1-dec", "L1", "t1", "2026-12-01T00:00:00.000+00:00")
    ledger.append(events)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    store = Store(tmp_path / "dj.sqlite3")
    Catalog(store)
    example(Ledger(store))
    return store


def by_key(report) -> dict[tuple[str, str], object]:
    return {(r.role, r.party): r for r in report.rows}


# -- the worked example ---------------------------------------------------------------------
def test_worked_example_in_exact_cents(store: Store) -> None:
    report = royalties(store, NOV, parse_money("100.00", "EUR"))
    assert (report.plays, report.listeners, report.tracks) == (9, 3, 3)
    assert report.split.pools == {"master": 5000, "publishing": 5000}
    rows = by_key(report)
    cents = {key: (r.amount["pro-rata"], r.amount["user-centric"]) for key, r in rows.items()}
    assert cents == {
        ("master", "X"): (3611, 2083), ("master", "Y"): (1389, 2917),
        ("publishing", "P"): (2333, 1167), ("publishing", "Q"): (1556, 1333),
        ("publishing", "R"): (1111, 2500),
    }
    shares = {key: (r.share["pro-rata"], r.share["user-centric"]) for key, r in rows.items()}
    assert shares[("master", "X")] == (Fraction(13, 18), Fraction(5, 12))
    assert shares[("publishing", "Q")] == (Fraction(14, 45), Fraction(4, 15))
    assert {key: (r.plays, r.listeners) for key, r in rows.items()} == {
        ("master", "X"): (7, 2), ("master", "Y"): (3, 2), ("publishing", "P"): (6, 1),
        ("publishing", "Q"): (7, 2), ("publishing", "R"): (2, 2)}
    for model in ("pro-rata", "user-centric"):
        for role in ("master", "publishing"):
            assert report.pool_total(role, model) == 5000
            assert sum(r.share[model] for r in report.rows if r.role == role) == 1


def test_every_pool_sums_to_the_revenue_for_awkward_amounts(store: Store) -> None:
    for amount, currency, pct in [("100.01", "EUR", "50"), ("0.01", "EUR", "50"),
                                  ("999999.99", "USD", "62.5"), ("1001", "JPY", "33.3"),
                                  ("7.777", "BHD", "100"), ("0", "EUR", "0")]:
        revenue = parse_money(amount, currency)
        report = royalties(store, NOV, revenue, parse_pct(pct))
        assert sum(report.split.pools.values()) == revenue.minor
        for model in ("pro-rata", "user-centric"):
            for role, pool in report.split.pools.items():
                assert report.pool_total(role, model) == pool
            assert sum(r.amount[model] for r in report.rows) == revenue.minor


def test_the_odd_cent_of_the_role_split_goes_to_master(store: Store) -> None:
    report = royalties(store, NOV, parse_money("100.01", "EUR"))
    assert report.split.pools == {"master": 5001, "publishing": 5000}


def test_a_role_without_holders_is_held_unallocated(tmp_path: Path) -> None:
    store = Store(tmp_path / "dj.sqlite3")
    Ledger(store).append(
        play("a", "L1", "t9", "2026-11-02T00:00:00Z", holders=[("Solo", "master", 100)])
        + play("b", "L2", "t8", "2026-11-02T00:00:00Z",
               holders=[("Duo", "master", 100), ("Pub", "publishing", 40)]))
    report = royalties(store, NOV, Money(1000, "EUR"))
    cents = {(r.role, r.party): r.amount["pro-rata"] for r in report.rows}
    # publishing: a half of nobody's, and 60 % of b's half: held, not given to Pub
    assert cents == {("master", "Solo"): 250, ("master", "Duo"): 250,
                     ("publishing", "Pub"): 100, ("publishing", UNALLOCATED): 400}


def test_shares_as_they_stood_when_heard(tmp_path: Path) -> None:
    store = Store(tmp_path / "dj.sqlite3")
    Ledger(store).append(
        play("a", "L1", "t1", "2026-11-02T00:00:00Z", holders=[("Old", "master", 100)])
        + play("b", "L1", "t1", "2026-11-20T00:00:00Z", holders=[("New", "master", 100)]))
    shares = {(r.role, r.party): r.share["pro-rata"]
              for r in royalties(store, NOV).rows if r.role == "master"}
    assert shares == {("master", "Old"): Fraction(1, 2), ("master", "New"): Fraction(1, 2)}


# -- largest remainder ----------------------------------------------------------------------
def test_largest_remainder_edge_cases() -> None:
    thirds = {k: Fraction(1) for k in "abc"}
    assert largest_remainder(100, thirds) == {"a": 34, "b": 33, "c": 33}  # tie: name order
    assert largest_remainder(2, thirds) == {"a": 1, "b": 1, "c": 0}
    assert largest_remainder(0, thirds) == {"a": 0, "b": 0, "c": 0}
    assert largest_remainder(0, {}) == {}
    # a tie of remainders goes to the larger weight before the name
    assert largest_remainder(1, {"a": Fraction(1), "b": Fraction(3)}) == {"a": 0, "b": 1}
    assert largest_remainder(5, {"a": Fraction(1), "b": Fraction(0)}) == {"a": 5, "b": 0}
    # a tiny weight gets nothing, never a negative or a cent the total lacks
    assert largest_remainder(1, {"big": Fraction(10**9), "tiny": Fraction(1)}) == {
        "big": 1, "tiny": 0}
    with pytest.raises(ValueError):
        largest_remainder(1, {"a": Fraction(0)})
    with pytest.raises(ValueError):
        largest_remainder(-1, thirds)


def test_largest_remainder_sums_exactly_and_stays_within_a_cent() -> None:
    rng = random.Random(7)
    for _ in range(300):
        weights = {f"k{i}": Fraction(rng.randint(0, 1000), rng.randint(1, 97))
                   for i in range(rng.randint(1, 12))}
        if not any(weights.values()):
            continue
        total = rng.randint(0, 10**7)
        out = largest_remainder(total, weights)
        assert sum(out.values()) == total
        whole = sum(weights.values())
        for key, weight in weights.items():
            assert abs(out[key] - Fraction(total) * weight / whole) < 1


# -- periods and money ----------------------------------------------------------------------
def test_periods() -> None:
    p = parse_period("2026-12")
    assert (p.start, p.end) == (datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
    day = parse_period("2024-02-29")
    assert (day.start, day.end) == (datetime(2024, 2, 29, tzinfo=UTC),
                                    datetime(2024, 3, 1, tzinfo=UTC))
    assert NOV.contains("2026-11-30T23:59:59.999+00:00")
    assert NOV.contains("2026-12-01T00:30:00+01:00")  # 23:30 UTC on the 30th
    assert not NOV.contains("2026-12-01T00:00:00+00:00")
    assert not NOV.contains("2026-10-31T23:59:59Z")
    for bad in ["2026-13", "2026-00", "2026-1", "2026-02-29", "nov", "", "2026-11-",
                "2026/11", " 2026-11-31", "0999-01", "2026-11-01T00:00"]:
        with pytest.raises(RoyaltyError):
            parse_period(bad)


def test_money() -> None:
    assert parse_money("100", "EUR") == Money(10000, "EUR")
    assert parse_money("100.5", "eur") == Money(10050, "EUR")
    assert parse_money("1000", "JPY") == Money(1000, "JPY")
    assert parse_money("1.234", "BHD") == Money(1234, "BHD")
    assert str(Money(123456, "EUR")) == "1234.56 EUR" and str(Money(5, "JPY")) == "5 JPY"
    for amount, currency in [("100.001", "EUR"), ("1000.5", "JPY"), ("-1", "EUR"),
                             ("abc", "EUR"), ("NaN", "EUR"), ("inf", "EUR"), ("1e30", "EUR"),
                             ("10", "QQQ")]:  # not an ISO 4217 code
        with pytest.raises(RoyaltyError):
            parse_money(amount, currency)
    for bad in ["101", "-1", "half"]:
        with pytest.raises(RoyaltyError):
            parse_pct(bad)


# -- the other reports ----------------------------------------------------------------------
def test_plays_report_per_track_and_territory(store: Store) -> None:
    rows = plays_report(store, NOV)
    got = [(r.track_id, r.territory, r.plays, r.performances, r.label) for r in rows]
    assert got == [("t2", "AT", 1, 1, "X; Y"), ("t1", "DE", 6, 6, "X"), ("t3", "DE", 2, 2, "Y")]
    with pytest.raises(NoPlays):
        plays_report(store, parse_period("2026-09"))


def test_lines_credit_every_artist_named(tmp_path: Path) -> None:
    store = Store(tmp_path / "dj.sqlite3")
    ledger = Ledger(store)
    for i, listener in enumerate(["L1", "L2", "L1"]):
        ledger.line_aired(event_id=f"air{i}", line_id="hello", artist_id="ana", persona="nova",
                          listener_id=listener, session_id="s", text="Ana, then Bo.",
                          artists=["bo"], at=f"2026-11-0{i + 1}T00:00:00Z")
    ledger.line_aired(event_id="old", line_id="hello", artist_id="ana", persona="nova",
                      listener_id="L3", session_id="s", at="2026-10-01T00:00:00Z")
    rows = lines_report(store, NOV)
    assert [(r.artist_id, r.line_id, r.airings, r.listeners, r.text) for r in rows] == [
        ("ana", "hello", 3, 2, "Ana, then Bo."), ("bo", "hello", 3, 2, "Ana, then Bo.")]
    assert [r.artist_id for r in lines_report(store, NOV, "bo")] == ["bo"]


# -- the command ----------------------------------------------------------------------------
def test_cli_royalties_table_csv_json(store: Store, capsys) -> None:
    data = ["--data-dir", str(store.path.parent)]
    assert dj(["report", "royalties", "--period", "2026-11", "--revenue", "100.00",
               "--currency", "EUR", *data]) == 0
    table = capsys.readouterr().out
    assert "master 50 % = 50.00 EUR; publishing 50 % = 50.00 EUR" in table
    assert "largest remainder" in table
    x = next(line for line in table.splitlines() if line.startswith("master      X "))
    assert x.split()[-5:] == ["72.2222", "36.11", "41.6667", "20.83", "-15.28"]
    assert dj(["report", "royalties", "--period", "2026-11", "--revenue", "100",
               "--model", "user-centric", "--format", "csv", *data]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[0] == ("role,party,plays,listeners,user_centric_share,"
                                   "user_centric_amount,currency")
    assert "publishing,R,2,2,0.500000000,25.00,EUR" in out.splitlines()
    assert "Rounding" in err  # the rules go beside the data, not into it
    assert dj(["report", "--data-dir", str(store.path.parent), "royalties", "--period",
               "2026-11", "--format", "json"]) == 0  # --data-dir before the subcommand too
    doc = json.loads(capsys.readouterr().out)
    assert doc["revenue"] is None and doc["plays"] == 9
    assert {r["party"]: r["pro_rata"]["share_exact"] for r in doc["rows"]
            if r["role"] == "master"} == {"X": "13/18", "Y": "5/18"}


def test_cli_plays_and_lines(store: Store, capsys) -> None:
    data = ["--data-dir", str(store.path.parent)]
    assert dj(["report", "plays", "--period", "2026-11", "--format", "csv", *data]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "featured_artist,title,isrc,album,label,plays,performances,territory"
    assert "ana,t1,,,X,6,6,DE" in lines  # no catalog entry: the ids stand in
    assert dj(["report", "lines", "--period", "2026-11", *data]) == 1  # nothing aired


@pytest.mark.parametrize(("args", "code", "message"), [
    (["--period", "2026-13"], 2, "not a date"),
    (["--period", "November"], 2, "expected YYYY-MM"),
    (["--period", "2026-09"], 1, "no qualifying plays in 2026-09"),
    (["--period", "2026-11", "--revenue", "10.001"], 2, "more than 2 decimals"),
    (["--period", "2026-11", "--revenue", "10", "--currency", "ABC"], 2, "unknown currency"),
    (["--period", "2026-11", "--master-pct", "120"], 2, "from 0 to 100"),
    (["--period", "2026-11", "--record"], 2, "--record needs --revenue"),
])
def test_cli_errors_exit_non_zero_with_a_message(store: Store, capsys, args, code,
                                                 message) -> None:
    assert dj(["report", "royalties", *args, "--data-dir", str(store.path.parent)]) == code
    out, err = capsys.readouterr()
    assert message in err and "Traceback" not in err and out == ""


def test_the_old_report_still_works(store: Store, capsys) -> None:
    assert dj(["report", "--method", "user-centric", "--data-dir", str(store.path.parent)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "party,role,user-centric share"
    # all time: November's nine plays and October's and December's (L2 and L1 on t1)
    assert len(out) == 6


# -- the artist's statement -----------------------------------------------------------------
def test_statement_counts_shares_and_recorded_amounts(store: Store) -> None:
    bo = artist_statement(store, "bo", NOV)
    assert (bo["plays"], bo["listeners"], bo["station"]) == (1, 1, {"plays": 9, "listeners": 3})
    (track,) = bo["tracks"]
    holders = {(h["role"], h["party"]): h for h in track["rightsholders"]}
    # t2's one play of nine: X and Y each half of the master part
    assert holders[("master", "Y")]["pro_rata"] == pytest.approx(1 / 18)
    assert holders[("master", "Y")]["user_centric"] == pytest.approx(1 / 12)
    assert holders[("publishing", "Q")]["pro_rata_amount"] is None and bo["revenue"] is None
    record_revenue(store, NOV, parse_money("100.00", "EUR"))
    cy = artist_statement(store, "cy", NOV)
    assert cy["revenue"]["pools"] == {"master": 5000, "publishing": 5000}
    holders = {(h["role"], h["party"]): h for h in cy["tracks"][0]["rightsholders"]}
    # R is paid for t3 only: its whole amount; Y's is split between t2 and t3
    assert holders[("publishing", "R")]["pro_rata_amount"] == 1111
    assert holders[("publishing", "R")]["user_centric_amount"] == 2500
    bo = artist_statement(store, "bo", NOV)
    y_bo = next(h for h in bo["tracks"][0]["rightsholders"] if h["party"] == "Y")
    y_cy = holders[("master", "Y")]
    assert y_bo["pro_rata_amount"] + y_cy["pro_rata_amount"] == 1389
    assert y_bo["user_centric_amount"] + y_cy["user_centric_amount"] == 2917
    empty = artist_statement(store, "bo", parse_period("2026-09"))
    assert (empty["plays"], empty["tracks"], empty["revenue"]) == (0, [], None)


async def test_statement_endpoint_access(fast, demo_station) -> None:
    """Plays far in the past for an artist of the test's own: nothing else sees them."""
    artist, other = f"stmt-{uuid.uuid4().hex[:8]}", f"stmt-{uuid.uuid4().hex[:8]}"
    listeners = [f"{artist}-l{i}" for i in range(3)]
    events: list[Event] = []
    for i, listener in enumerate(listeners):
        events += play(f"{artist}-p{i}", listener, f"{artist}-track", "2003-04-05T06:07:08Z",
                       holders=[(f"{artist} Label", "master", 100),
                                (f"{artist} Songs", "publishing", 100)], artist=artist)
    demo_station.ledger.append(events)
    tokens = TokenStore(demo_station.catalog.store)
    own = tokens.create("artist", artist, label="statement test")
    foreign = tokens.create("artist", other, label="statement test")
    url = str(fast.make_url(f"/api/artists/{artist}/statement"))
    async with aiohttp.ClientSession() as http:
        async with http.get(url, params={"period": "2003-04"},
                            headers={"Authorization": f"Bearer {own}"}) as resp:
            assert resp.status == 200
            body = await resp.json()
        assert (body["artist"], body["plays"], body["listeners"]) == (artist, 3, 3)
        (track,) = body["tracks"]
        assert {h["party"]: h["pro_rata"] for h in track["rightsholders"]} == {
            f"{artist} Label": 1.0, f"{artist} Songs": 1.0}
        async with http.get(url, params={"period": "2003-04"},
                            headers={"Authorization": f"Bearer {foreign}"}) as resp:
            assert resp.status == 403
        async with http.get(url, params={"period": "2003-04"}) as resp:
            assert resp.status == 401
        for bad in ["2003-4", "2003-13", "april"]:
            async with http.get(url, params={"period": bad},
                                headers={"Authorization": f"Bearer {own}"}) as resp:
                assert resp.status == 400
                assert "period" in (await resp.json())["error"]
        async with http.get(url, headers={"Authorization": f"Bearer {own}"}) as resp:
            assert resp.status == 200  # this month, by default: nothing yet
            body = await resp.json()
            assert body["plays"] == 0 and body["period"] == datetime.now(UTC).strftime("%Y-%m")
