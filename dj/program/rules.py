"""Radio rules as a pure function over scored candidates: no repeat within the window, artist
separation, artists the listener keeps skipping are rested, and some exploration so a station does
not collapse onto a handful of tracks."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RadioRules:
    repeat_window_s: float = 3600.0
    exploration: float = 0.15  # chance of picking beyond the top few
    top_k: int = 8  # the pool the weighted pick draws from
    temperature: float = 0.35


@dataclass(frozen=True, slots=True)
class PlayedTrack:
    track_id: str
    artist_id: str
    at_s: float  # programme time the track started


def pick_track(
    candidates: Sequence[tuple[str, float]],
    artist_of: Mapping[str, str],
    history: Sequence[PlayedTrack],
    now_s: float,
    rules: RadioRules,
    rng: random.Random,
    blocked_artists: frozenset[str] = frozenset(),
) -> str | None:
    """Choose one track id from ``candidates`` (best first) under the radio rules.

    Rules relax in order when nothing survives (a small licensed catalog must still play):
    blocked artists and artist separation are kept longest; repeats fall back to the track heard
    longest ago.
    """
    if not candidates:
        return None
    last_played = {p.track_id: p.at_s for p in history}
    last_artist = history[-1].artist_id if history else None
    recent = {t for t, at in last_played.items() if now_s - at < rules.repeat_window_s}

    def ok(track_id: str, *, separation: bool, repeats: bool, blocked: bool) -> bool:
        artist = artist_of.get(track_id, "")
        if blocked and artist in blocked_artists:
            return False
        if separation and last_artist is not None and artist == last_artist:
            return False
        return not (repeats and track_id in recent)

    for separation, repeats, blocked in (
        (True, True, True),
        (False, True, True),
        (True, False, True),
        (False, False, True),
        (False, False, False),
    ):
        pool = [
            (t, s)
            for t, s in candidates
            if ok(t, separation=separation, repeats=repeats, blocked=blocked)
        ]
        if not pool:
            continue
        if not repeats:
            # every candidate aired within the window: the one heard longest ago comes back first
            pool.sort(key=lambda ts: last_played.get(ts[0], -math.inf))
            return pool[0][0]
        return _weighted_choice(pool, rules, rng, explore=bool(history))
    return None


def _weighted_choice(
    pool: Sequence[tuple[str, float]], rules: RadioRules, rng: random.Random, *, explore: bool
) -> str:
    best = pool[0][1]
    if explore and rng.random() < rules.exploration:
        # beyond the top few, but only among tracks the model still rates well: a station that
        # wanders into what the listener dislikes is worse than one that stays close to home
        floor = best - 0.5 * abs(best)
        wider = [t for t, s in pool[rules.top_k : rules.top_k * 4] if s >= floor]
        if wider:
            return rng.choice(wider)
    head = pool[: rules.top_k]
    weights = [
        math.exp((s - best) / max(rules.temperature * (abs(best) + 1e-6), 1e-6)) for _, s in head
    ]
    return rng.choices([t for t, _ in head], weights=weights)[0]
