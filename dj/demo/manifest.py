"""Writes the demo catalog as an ingest manifest (TOML), the same format `dj ingest` reads."""

from __future__ import annotations

import json
from collections.abc import Sequence

from dj.catalog.models import RADIO_USE, TIERS, Artist, Deal
from dj.demo.catalog import DemoTrack


def _s(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def _list(values: Sequence[str]) -> str:
    return "[" + ", ".join(_s(v) for v in values) + "]"


def _deal(deal: Deal) -> str:
    parts = [f"territories = {_list(sorted(deal.territories))}"]
    if deal.excluded:
        parts.append(f"exclude = {_list(sorted(deal.excluded))}")
    if deal.start is not None:
        parts.append(f"start = {_s(deal.start.isoformat())}")
    if deal.end is not None:
        parts.append(f"end = {_s(deal.end.isoformat())}")
    if set(deal.tiers) != set(TIERS):
        parts.append(f"tiers = {_list(sorted(deal.tiers))}")
    if set(deal.uses) != {RADIO_USE}:
        parts.append(f"uses = {_list(sorted(deal.uses))}")
    return "{ " + ", ".join(parts) + " }"


def manifest_toml(artists: Sequence[Artist], tracks: Sequence[DemoTrack], file_of) -> str:
    """The manifest text; ``file_of(track)`` names each track's audio file, relative to it."""
    out = ["# dj demo catalog: synthesized by dj.demo, license-clean.", ""]
    for a in artists:
        out += ["[[artist]]", f"id = {_s(a.id)}", f"name = {_s(a.name)}", ""]
    for t in tracks:
        out += [
            "[[track]]",
            f"file = {_s(file_of(t))}",
            f"id = {_s(t.id)}",
            f"title = {_s(t.title)}",
            f"artist = {_s(t.artist_id)}",
            f"album = {_s(t.album)}",
            f"year = {t.year}",
            f"isrc = {_s(t.isrc)}",
            f"tags = {_list(t.tags)}",
            "shares = [",
            *(f"  {{ party = {_s(s.party)}, role = {_s(s.role)}, share = {s.share_pct:g} }},"
              for s in t.shares),
            "]",
            "deals = [",
            *(f"  {_deal(d)}," for d in t.deals),
            "]",
            "",
        ]
    return "\n".join(out)
