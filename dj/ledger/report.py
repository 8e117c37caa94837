"""Payout shares from the ledger. Pro-rata pools every qualifying play; user-centric splits each
listener's own contribution across only what that listener heard. Both read the same play log."""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from typing import TextIO

from dj.catalog import Catalog

QUALIFYING_PLAY_S = 30.0


def _qualifying(catalog: Catalog) -> list[tuple[str, list[dict]]]:
    rows = catalog.store.query(
        "SELECT listener_id, rightsholders FROM plays WHERE played_s >= ?",
        (QUALIFYING_PLAY_S,),
    )
    return [(r["listener_id"], json.loads(r["rightsholders"])) for r in rows]


def payout_shares(catalog: Catalog, method: str = "pro-rata") -> dict[tuple[str, str], float]:
    """Fraction of the pool per ``(party, role)``; fractions per role sum to 1 when any play
    qualified. Roles are pooled separately (master and publishing are paid from different pools)."""
    plays = _qualifying(catalog)
    out: dict[tuple[str, str], float] = defaultdict(float)
    if not plays:
        return {}
    if method == "pro-rata":
        weight = {listener: 1.0 / len(plays) for listener, _ in plays}
        per_play = lambda listener: weight[listener]  # noqa: E731
    elif method == "user-centric":
        listeners = defaultdict(int)
        for listener, _ in plays:
            listeners[listener] += 1
        n = len(listeners)
        per_play = lambda listener: 1.0 / n / listeners[listener]  # noqa: E731
    else:
        raise ValueError(f"unknown payout method {method!r}")
    for listener, holders in plays:
        for h in holders:
            out[(h["party"], h["role"])] += per_play(listener) * h["share_pct"] / 100.0
    return dict(out)


def run_report(catalog: Catalog, method: str, out: TextIO) -> int:
    shares = payout_shares(catalog, method)
    writer = csv.writer(out)
    writer.writerow(["party", "role", f"{method} share"])
    for (party, role), value in sorted(shares.items(), key=lambda kv: (kv[0][1], -kv[1])):
        writer.writerow([party, role, f"{value:.6f}"])
    return 0
