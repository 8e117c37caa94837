"""Recommender at catalog scale: fit time, model size, and next-pick latency under a licence mask.

Synthetic data: 100,000 tracks (10 per artist), 50,000 listeners and 5,000,000 plays drawn from
power laws (track popularity and listener activity), with genre structure so ALS has something to
learn. A listener's territory leaves 30 % of the catalog unlicensed. BLAS is pinned to one thread.

    python bench/recommend.py [--tracks 100000 --listeners 50000 --plays 5000000]
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np

from dj.recommend import StationModel, pin_blas_threads, tuned_config


def synthetic_plays(tracks: int, listeners: int, plays: int, seed: int = 0
                    ) -> tuple[list[tuple[str, str, float]], list[str], dict[str, str]]:
    """Power-law plays with genres: 70 % of a listener's plays come from their own genre."""
    rng = np.random.default_rng(seed)
    genres = 50
    track_genre = rng.integers(0, genres, tracks)
    popularity = 1.0 / np.arange(1, tracks + 1) ** 0.9
    rng.shuffle(popularity)
    activity = rng.pareto(1.5, listeners) + 1.0
    user = rng.choice(listeners, size=plays, p=activity / activity.sum())
    user_genre = rng.integers(0, genres, listeners)
    own = rng.random(plays) < 0.7
    item = rng.choice(tracks, size=plays, p=popularity / popularity.sum())
    by_genre = [np.flatnonzero(track_genre == g) for g in range(genres)]
    weights = [popularity[idx] / popularity[idx].sum() for idx in by_genre]
    for g in range(genres):
        sel = np.flatnonzero(own & (user_genre[user] == g))
        item[sel] = rng.choice(by_genre[g], size=sel.size, p=weights[g])
    pairs, counts = np.unique(user.astype(np.int64) * tracks + item, return_counts=True)
    track_ids = [f"t{i}" for i in range(tracks)]
    user_ids = [f"u{i}" for i in range(listeners)]
    rows = [(user_ids[p // tracks], track_ids[p % tracks], float(c))
            for p, c in zip(pairs.tolist(), counts.tolist(), strict=True)]
    artists = {t: f"a{i // 10}" for i, t in enumerate(track_ids)}
    return rows, track_ids, artists


def percentiles(samples: list[float]) -> str:
    ms = np.asarray(samples) * 1e3
    return f"{np.percentile(ms, 50):8.2f} {np.percentile(ms, 99):8.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, default=100_000)
    parser.add_argument("--listeners", type=int, default=50_000)
    parser.add_argument("--plays", type=int, default=5_000_000)
    parser.add_argument("--picks", type=int, default=1_000)
    parser.add_argument("--factors", type=int, default=None, help="default: the tuned value")
    args = parser.parse_args()
    pin_blas_threads()
    rng = np.random.default_rng(1)

    started = time.perf_counter()
    rows, track_ids, artists = synthetic_plays(args.tracks, args.listeners, args.plays)
    generated = time.perf_counter() - started
    config = tuned_config()
    if args.factors:
        config = dataclasses.replace(config, factors=args.factors)
    started = time.perf_counter()
    model = StationModel.train(rows, config, item_ids=track_ids, item_artists=artists)
    fit_s = time.perf_counter() - started

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.npz"
        started = time.perf_counter()
        model.save(path)
        save_s = time.perf_counter() - started
        size_mb = path.stat().st_size / 1e6
        started = time.perf_counter()
        model = StationModel.load(path)
        load_s = time.perf_counter() - started

    licensed = [t for t in track_ids if rng.random() >= 0.3]
    started = time.perf_counter()
    allowed = model.allowed_mask(licensed)
    mask_s = time.perf_counter() - started

    listeners = [f"u{i}" for i in rng.choice(args.listeners, args.picks, replace=False)]
    recent = {u: [f"t{i}" for i in rng.integers(0, args.tracks, 20)] for u in listeners}
    first, warm, fb, after, cold, warmup = [], [], [], [], [], []
    for listener in listeners:
        t0 = time.perf_counter()
        picks = model.candidates(listener, allowed, 50, exclude=recent[listener])
        t1 = time.perf_counter()
        model.candidates(listener, allowed, 50, exclude=[*recent[listener], picks[0][0]])
        t2 = time.perf_counter()
        model.feedback(listener, picks[0][0], "skip")
        t3 = time.perf_counter()
        model.candidates(listener, allowed, 50, exclude=[*recent[listener], picks[0][0]])
        t4 = time.perf_counter()
        first.append(t1 - t0)
        warm.append(t2 - t1)
        fb.append(t3 - t2)
        after.append(t4 - t3)
    for i in range(min(args.picks, 300)):
        model.warm(f"warm-{i}", seed=[f"t{j}" for j in rng.integers(0, args.tracks, 5)])
        t1 = time.perf_counter()
        model.candidates(f"warm-{i}", allowed, 50)
        warmup.append(time.perf_counter() - t1)
        seeds = [f"t{j}" for j in rng.integers(0, args.tracks, 5)]
        t0 = time.perf_counter()
        model.candidates(f"new-{i}", allowed, 50, seed=seeds)
        cold.append(time.perf_counter() - t0)

    nnz = len(rows)
    print(f"synthetic: {args.tracks:,} tracks, {args.listeners:,} listeners, {args.plays:,} plays"
          f" ({nnz:,} listener-track pairs; generated in {generated:.1f} s)")
    print(f"model: ALS {model.params.weighting} factors={model.params.factors}"
          f" reg={model.params.regularization:g} iters={model.params.iterations}"
          f" debias={model.params.debias:g}; licensed share {allowed.mean():.0%}; BLAS 1 thread")
    print(f"{'measure':<44}{'value':>18}")
    print(f"{'fit time (train, incl. matrix build) s':<44}{fit_s:>18.1f}")
    print(f"{'model size MB (one .npz)':<44}{size_mb:>18.1f}")
    print(f"{'save / load s':<44}{f'{save_s:.2f} / {load_s:.2f}':>18}")
    print(f"{'allowed_mask() for 70k licensed ids ms':<44}{mask_s * 1e3:>18.1f}")
    print(f"{'latency ms (n=50, 20 excluded)':<44}{'p50      p99':>18}")
    print(f"{'  first pick of a session (scores computed)':<44}{percentiles(first):>18}")
    print(f"{'  next pick (scores cached)':<44}{percentiles(warm):>18}")
    print(f"{'  feedback() (vector re-solved + rescored)':<44}{percentiles(fb):>18}")
    print(f"{'  next pick after feedback()':<44}{percentiles(after):>18}")
    print(f"{'  cold start, unknown listener + 5 seeds':<44}{percentiles(cold):>18}")
    print(f"{'  first pick after warm() at session start':<44}{percentiles(warmup):>18}")


if __name__ == "__main__":
    main()
