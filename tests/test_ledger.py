"""The ledger writes each event once and the payout methods divide the pool as documented."""

from __future__ import annotations

import pytest

from dj.catalog import Catalog
from dj.ledger import Ledger
from dj.ledger.report import payout_shares
from dj.store import Store


@pytest.fixture
def ledger(tmp_path):
    store = Store(tmp_path / "dj.sqlite3")
    return Ledger(store), Catalog(store)


def play(ledger: Ledger, event: str, listener: str, holders: list[dict], played_s: float) -> None:
    ledger.play_started(event_id=event, listener_id=listener, session_id="s", track_id="t",
                        artist_id="a", territory="US", tier="ad-supported", rightsholders=holders)
    ledger.play_ended(event, played_s, "completed")


A = [{"party": "A", "role": "master", "share_pct": 100.0}]
B = [{"party": "B", "role": "master", "share_pct": 60.0},
     {"party": "C", "role": "master", "share_pct": 40.0}]


def test_an_event_recorded_twice_is_stored_once(ledger):
    log, _ = ledger
    for _ in range(3):
        play(log, "e1", "l1", A, 100.0)
        log.line_aired(event_id="air1", line_id="x", artist_id="a", persona="nova",
                       listener_id="l1", session_id="s")
    assert len(log.plays()) == 1
    assert len(log.airings()) == 1


def test_the_first_end_of_a_play_is_kept(ledger):
    log, _ = ledger
    play(log, "e1", "l1", A, 100.0)
    log.play_ended("e1", 5.0, "skipped")
    (p,) = log.plays()
    assert p.played_s == 100.0 and p.outcome == "completed"


def test_pro_rata_and_user_centric_differ_as_they_should(ledger):
    log, catalog = ledger
    # l1 hears A nine times; l2 hears B once; a short play never qualifies
    for i in range(9):
        play(log, f"a{i}", "l1", A, 120.0)
    play(log, "b0", "l2", B, 120.0)
    play(log, "short", "l2", A, 10.0)
    pro = payout_shares(catalog, "pro-rata")
    user = payout_shares(catalog, "user-centric")
    assert pro[("A", "master")] == pytest.approx(0.9)
    assert pro[("B", "master")] == pytest.approx(0.06)
    assert pro[("C", "master")] == pytest.approx(0.04)
    # user-centric: each listener's half goes only to what they heard
    assert user[("A", "master")] == pytest.approx(0.5)
    assert user[("B", "master")] == pytest.approx(0.3)
    assert user[("C", "master")] == pytest.approx(0.2)
    assert sum(pro.values()) == pytest.approx(1.0)
    assert sum(user.values()) == pytest.approx(1.0)
