"""Synthetic listening histories: listeners with distinct tastes for the recommender to learn.

Each listener belongs to a latent taste cluster (a weighting over the demo artists), sometimes
with a little of a second cluster mixed in; how much they listen follows a power law, as real
play counts do. Two named listeners, ``alice`` and ``bob``, have obvious tastes for demos.
Everything is deterministic for a seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dj.catalog.models import Listener
from dj.demo.catalog import DemoTrack

CLUSTERS: dict[str, dict[str, float]] = {
    "chill": {"nova-lake": 1.0, "night-orchard": 0.9, "lowlight": 0.5, "mira-sol": 0.25},
    "indie": {"copper-kites": 1.0, "dust-parade": 0.6, "saffron-youth": 0.35},
    "pop": {"saffron-youth": 1.0, "copper-kites": 0.55, "nova-lake": 0.4},
    "electronic": {"kai-ferro": 1.0, "night-orchard": 0.45, "saffron-youth": 0.25},
    "latin-jazz": {"mira-sol": 1.0, "lowlight": 0.85},
    "rock": {"dust-parade": 1.0, "kai-ferro": 0.5, "copper-kites": 0.4},
}
CLUSTER_WEIGHTS = {"chill": 0.22, "indie": 0.17, "pop": 0.2, "electronic": 0.14,
                   "latin-jazz": 0.12, "rock": 0.15}
TERRITORIES = {"US": 0.38, "GB": 0.14, "DE": 0.1, "FR": 0.08, "JP": 0.1, "BR": 0.08,
               "MX": 0.04, "ES": 0.04, "CA": 0.04}
SUBSCRIPTION_SHARE = 0.4
_FIRST = ("Ada", "Ben", "Chloe", "Dev", "Elif", "Finn", "Grace", "Hiro", "Ines", "Jonas", "Kira",
          "Luca", "Maya", "Noor", "Omar", "Priya", "Quinn", "Rosa", "Sami", "Tara", "Uma", "Viktor",
          "Wen", "Ximena", "Yusuf", "Zoe", "Aiko", "Bruno", "Carmen", "Dmitri", "Emeka", "Freya")
_LAST = "ABCDEFGHJKLMNOPRSTVWYZ"


@dataclass(frozen=True, slots=True)
class ListenerHistories:
    listeners: list[Listener]
    rows: list[tuple[str, str, float]]  # (listener_id, track_id, plays)
    clusters: dict[str, str]  # listener id -> taste cluster (for tests and evaluation)


def _pick(rng: np.random.Generator, weights: dict[str, float]) -> str:
    keys = list(weights)
    p = np.array([weights[k] for k in keys], dtype=float)
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


def make_listeners(tracks: Sequence[DemoTrack], n: int = 240, seed: int = 0) -> ListenerHistories:
    """``n`` synthetic listeners ("listener-001" …) plus the named demo listeners alice and bob."""
    rng = np.random.default_rng([seed, 42])
    artists = sorted({t.artist_id for t in tracks})
    track_ids = [t.id for t in tracks]
    track_artist = np.array([artists.index(t.artist_id) for t in tracks])
    listeners: list[Listener] = []
    rows: list[tuple[str, str, float]] = []
    clusters: dict[str, str] = {}
    width = max(3, len(str(n)))
    for i in range(1, n + 1):
        lid = f"listener-{i:0{width}d}"
        cluster = _pick(rng, CLUSTER_WEIGHTS)
        taste = np.array([CLUSTERS[cluster].get(a, 0.03) for a in artists])
        if rng.random() < 0.3:
            other = CLUSTERS[_pick(rng, CLUSTER_WEIGHTS)]
            taste = taste + 0.2 * np.array([other.get(a, 0.0) for a in artists])
        taste = taste * rng.lognormal(0.0, 0.35, len(artists))
        affinity = taste[track_artist] * rng.lognormal(0.0, 0.5, len(track_ids))
        n_tracks = int(min(len(track_ids), 3 + rng.pareto(1.5) * 4))
        p = affinity**2 / (affinity**2).sum()
        chosen = rng.choice(len(track_ids), size=n_tracks, replace=False, p=p)
        total = int(min(3000, n_tracks + 8 * (1 + rng.pareto(1.2)) * n_tracks))
        plays = 1 + rng.multinomial(total - n_tracks, affinity[chosen] / affinity[chosen].sum())
        rows += [(lid, track_ids[j], float(c)) for j, c in zip(chosen, plays, strict=True)]
        name = f"{_FIRST[int(rng.integers(len(_FIRST)))]} {_LAST[int(rng.integers(len(_LAST)))]}."
        tier = "subscription" if rng.random() < SUBSCRIPTION_SHARE else "ad-supported"
        listeners.append(Listener(lid, _pick(rng, TERRITORIES), tier, name, (cluster,)))
        clusters[lid] = cluster
    for lid, name, tier, loves, likes, cluster in (
        ("alice", "Alice", "subscription", ("nova-lake", "night-orchard"), ("lowlight",), "chill"),
        ("bob", "Bob", "ad-supported", ("dust-parade",), ("copper-kites", "kai-ferro"), "rock"),
    ):
        for t in tracks:
            if t.artist_id in loves:
                rows.append((lid, t.id, float(25 + rng.integers(0, 20))))
            elif t.artist_id in likes:
                rows.append((lid, t.id, float(2 + rng.integers(0, 4))))
        listeners.append(Listener(lid, "US", tier, name, (cluster,)))
        clusters[lid] = cluster
    return ListenerHistories(listeners, rows, clusters)
