"""Changes made by another process (here: a separate Python process writing the same SQLite file)
reach a running server within 2 s: a deal that ends, a consent that is revoked. The licence check
just before airing reads the database itself and sees the deal at once."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import UTC, datetime

import pytest

REACH_S = 2.0


def _other_process(db_path, sql: str, params: tuple) -> None:
    script = ("import sqlite3, sys, json; c = sqlite3.connect(sys.argv[1], timeout=30);"
              " c.execute(sys.argv[2], json.loads(sys.argv[3])); c.commit()")
    import json

    subprocess.run([sys.executable, "-c", script, str(db_path), sql, json.dumps(list(params))],
                   check=True, timeout=30)


async def _within(predicate, seconds: float) -> float:
    """Seconds until ``predicate()`` holds, polled on the loop; fails after ``seconds``."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not predicate():
        if loop.time() - start > seconds:
            pytest.fail(f"not seen within {seconds} s")
        await asyncio.sleep(0.05)
    return loop.time() - start


async def test_a_deal_ended_elsewhere_is_in_force_within_2_s(fast, demo_station, demo_config):
    catalog = demo_station.catalog
    today = datetime.now(UTC).date()
    tier = demo_config.default_tier
    playable = sorted(catalog.playable_ids("US", tier, today))
    track = playable[0]
    before = [tuple(r) for r in catalog.store.query(
        'SELECT id, "end" FROM deals WHERE track_id = ?', (track,))]
    try:
        _other_process(demo_config.db_path, 'UPDATE deals SET "end" = ? WHERE track_id = ?',
                       ("2001-01-01", track))
        # the check before airing reads the file: no wait at all
        assert not catalog.is_playable_now(track, "US", tier, today)
        took = await _within(lambda: track not in catalog.playable_ids("US", tier, today),
                             REACH_S)
        print(f"deal change in force after {took:.2f} s")
    finally:
        for deal_id, end in before:
            _other_process(demo_config.db_path, 'UPDATE deals SET "end" = ? WHERE id = ?',
                           (end, deal_id))
        await _within(lambda: track in catalog.playable_ids("US", tier, today), REACH_S)


async def test_a_consent_revoked_elsewhere_is_in_force_within_2_s(fast, demo_station,
                                                                  demo_config):
    lines = demo_station.narrator.lines
    row = demo_station.catalog.store.query_one(
        "SELECT artist_id, kind FROM narrate_consents WHERE active = 1 ORDER BY artist_id")
    artist, kind = row["artist_id"], row["kind"]
    silenced: list[str] = []
    demo_station.narrator.on_revoke(silenced.append)
    try:
        _other_process(demo_config.db_path,
                       "UPDATE narrate_consents SET active = 0 WHERE artist_id = ? AND kind = ?",
                       (artist, kind))
        mine = {ln.id for ln in lines.lines(artist)}
        assert mine
        # in force, and announced like a revocation made here (the artist's lines silenced in
        # sessions), both within the bound: the announcement follows the refresh that reads
        # the change, so it may come a moment after the consent reads inactive
        took = await _within(lambda: not lines.consent(artist, kind).active
                             and mine <= set(silenced), REACH_S)
        print(f"consent revocation in force and announced after {took:.2f} s")
    finally:
        _other_process(demo_config.db_path,
                       "UPDATE narrate_consents SET active = 1 WHERE artist_id = ? AND kind = ?",
                       (artist, kind))
        await _within(lambda: lines.consent(artist, kind).active, REACH_S)
