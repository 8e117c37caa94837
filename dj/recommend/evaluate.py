"""Offline evaluation: a seeded per-user holdout, validation tuning, and the comparison table.

Protocol (``dj eval``): every user with at least 5 items gives a random 20 % of them to the test
set. A validation split is carved the same way from the *training* part only, and every model's
settings are chosen there; the test set is touched once, by the final models. "dj (served)" is
exactly what :meth:`StationModel.train` builds with the chosen settings, ranked through
:meth:`StationModel.candidates`, so the number reported is the number the station serves.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np
import scipy.sparse as sp

from dj.config import RecommendConfig
from dj.recommend.interactions import (
    InteractionMatrix,
    InteractionsError,
    build_matrix,
    confidence,
    read_interactions,
)
from dj.recommend.metrics import Metrics, evaluate_rankings
from dj.recommend.model import StationModel
from dj.recommend.params import TUNED_ITERATIONS, TUNED_K1, tuned_config
from dj.recommend.threads import pin_blas_threads

logger = logging.getLogger(__name__)

__all__ = [
    "Holdout", "InteractionsError", "holdout_split", "read_interactions", "run_eval",
    "run_recommend",
]

K = 10
TEST_FRACTION = 0.2
MIN_ITEMS = 5
#: The served model takes, among settings whose validation nDCG is within this share of the best,
#: the one whose top-10 lists cover the most of the catalog: a station that only plays the hits
#: is a worse station, and a few hundredths of nDCG buy a much wider catalog.
NDCG_TOLERANCE = 0.05
TARGET_NDCG, TARGET_COVERAGE = 0.23, 0.08

#: (factors, regularization) shapes searched for every ALS variant.
SHAPES: tuple[tuple[int, float], ...] = ((64, 30.0), (128, 30.0), (192, 50.0), (256, 80.0))
#: Per weighting: the parameter searched (alpha for raw and log, K1 for BM25).
WEIGHT_PARAMS: dict[str, tuple[float, ...]] = {
    "raw": (0.01, 0.1),
    "log": (1.0, 2.0),
    "bm25": (1.2, 3.0),
}
SERVED_WEIGHTINGS = ("log", "bm25")
DEBIAS_GRID = (0.0, 0.2, 0.3, 0.4, 0.5)


@dataclass(frozen=True, slots=True)
class Holdout:
    train: sp.csr_matrix
    held_out: dict[int, set[int]]  # user row → held-out item columns


def holdout_split(
    counts: sp.csr_matrix, seed: int, test_fraction: float = TEST_FRACTION,
    min_items: int = MIN_ITEMS,
) -> Holdout:
    """Hold out ``round(n·test_fraction)`` (≥ 1) random items of each user with ≥ ``min_items``."""
    counts = counts.tocsr()
    counts.sort_indices()
    rng = np.random.default_rng(seed)
    keep = np.ones(counts.nnz, dtype=bool)
    held_out: dict[int, set[int]] = {}
    for user in range(counts.shape[0]):
        start, end = int(counts.indptr[user]), int(counts.indptr[user + 1])
        n = end - start
        if n < min_items:
            continue
        k = max(1, int(round(n * test_fraction)))
        picked = rng.choice(np.arange(start, end), size=k, replace=False)
        keep[picked] = False
        held_out[user] = set(counts.indices[picked].tolist())
    rows = np.repeat(np.arange(counts.shape[0]), np.diff(counts.indptr))
    train = sp.csr_matrix(
        (counts.data[keep], (rows[keep], counts.indices[keep])), shape=counts.shape
    )
    return Holdout(train, held_out)


# -- ranking in batches ---------------------------------------------------------------------
ScoreFn = Callable[[np.ndarray], np.ndarray]  # user rows → dense (len(rows), items) scores


def rank_users(score: ScoreFn, train: sp.csr_matrix, users: Sequence[int], k: int = K,
               batch: int = 512) -> dict[int, list[int]]:
    """Top-k unseen items per user, best first."""
    out: dict[int, list[int]] = {}
    users_arr = np.asarray(list(users), dtype=np.int64)
    for lo in range(0, users_arr.size, batch):
        rows = users_arr[lo : lo + batch]
        scores = np.array(score(rows), dtype=np.float32)
        seen = train[rows]
        scores[np.repeat(np.arange(rows.size), np.diff(seen.indptr)), seen.indices] = -np.inf
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        part = np.take_along_axis(scores, top, axis=1)
        order = np.argsort(-part, axis=1, kind="stable")
        for user, ranked in zip(rows.tolist(), np.take_along_axis(top, order, 1), strict=True):
            out[user] = ranked.tolist()
    return out


def popularity_scorer(train: sp.csr_matrix) -> ScoreFn:
    popularity = np.bincount(train.indices, minlength=train.shape[1]).astype(np.float32)
    return lambda rows: np.broadcast_to(popularity, (rows.size, popularity.size))


@dataclass(frozen=True, slots=True)
class AlsSetting:
    weighting: str
    param: float
    factors: int
    regularization: float
    iterations: int = TUNED_ITERATIONS
    debias: float = 0.0

    def describe(self) -> str:
        name = "K1" if self.weighting == "bm25" else "alpha"
        text = (f"factors={self.factors} reg={self.regularization:g} {name}={self.param:g}"
                f" iters={self.iterations}")
        return text + (f" debias={self.debias:g}" if self.debias else "")


def fit_als(train: sp.csr_matrix, setting: AlsSetting, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Plain implicit ALS on one confidence weighting; returns (user, item) factors."""
    from implicit.cpu.als import AlternatingLeastSquares

    pin_blas_threads()
    model = AlternatingLeastSquares(
        factors=setting.factors, regularization=setting.regularization, alpha=1.0,
        iterations=setting.iterations, random_state=seed,
    )
    model.fit(confidence(train, setting.weighting, setting.param), show_progress=False)
    return np.asarray(model.user_factors), np.asarray(model.item_factors)


def als_scorer(user_factors: np.ndarray, item_factors: np.ndarray, debias: float) -> ScoreFn:
    norms = np.linalg.norm(item_factors, axis=1)
    scale = np.where(norms > 1e-12, np.maximum(norms, 1e-12) ** -debias, 0.0)
    items_t = np.ascontiguousarray((item_factors * scale[:, None]).T.astype(np.float32))
    return lambda rows: user_factors[rows] @ items_t


# -- tuning ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Trial:
    setting: AlsSetting
    metrics: Metrics


def tune(train: sp.csr_matrix, seed: int, n_items: int) -> dict[str, list[Trial]]:
    """Score every grid setting on a validation split carved from ``train``."""
    val = holdout_split(train, seed + 1)
    users = list(val.held_out)
    trials: dict[str, list[Trial]] = {"raw": [], "log": [], "bm25": []}
    for weighting, params in WEIGHT_PARAMS.items():
        for param in params:
            for factors, reg in SHAPES:
                setting = AlsSetting(weighting, param, factors, reg)
                uf, itf = fit_als(val.train, setting, seed)
                debiases = DEBIAS_GRID if weighting in SERVED_WEIGHTINGS else (0.0,)
                for debias in debiases:
                    ranked = rank_users(als_scorer(uf, itf, debias), val.train, users)
                    metrics = evaluate_rankings(ranked, val.held_out, n_items)
                    trials[weighting].append(
                        Trial(dataclasses.replace(setting, debias=debias), metrics))
                    logger.info("validation %s: nDCG %.4f cov %.4f", trials[weighting][-1]
                                .setting.describe(), metrics.ndcg, metrics.coverage)
    return trials


def best_plain(trials: list[Trial]) -> AlsSetting:
    plain = [t for t in trials if t.setting.debias == 0.0]
    return max(plain, key=lambda t: t.metrics.ndcg).setting


def best_served(trials: list[Trial]) -> AlsSetting:
    best = max(t.metrics.ndcg for t in trials)
    close = [t for t in trials if t.metrics.ndcg >= (1.0 - NDCG_TOLERANCE) * best]
    return max(close, key=lambda t: (t.metrics.coverage, t.metrics.ndcg)).setting


# -- the run --------------------------------------------------------------------------------
def _rows(matrix: InteractionMatrix, counts: sp.csr_matrix) -> Iterator[tuple[str, str, float]]:
    coo = counts.tocoo()
    users, items = matrix.user_ids, matrix.item_ids
    for u, i, c in zip(coo.row.tolist(), coo.col.tolist(), coo.data.tolist(), strict=True):
        yield users[u], items[i], c


def served_rankings(matrix: InteractionMatrix, split: Holdout, setting: AlsSetting, seed: int,
                    base: RecommendConfig | None = None) -> dict[int, list[int]]:
    """Train the station model on the training part and rank through ``candidates``."""
    bm25 = setting.weighting == "bm25"
    config = dataclasses.replace(
        base or RecommendConfig(), factors=setting.factors,
        regularization=setting.regularization, iterations=setting.iterations,
        alpha=1.0 if bm25 else setting.param,
    )
    model = StationModel.train(
        _rows(matrix, split.train), config, item_ids=matrix.item_ids, random_state=seed,
        debias=setting.debias, weighting=setting.weighting,
        k1=setting.param if bm25 else TUNED_K1,
        scale_regularization=False,  # the grid searched absolute values on this very data
    )
    column = {t: i for i, t in enumerate(matrix.item_ids)}
    allowed = np.ones(len(model.item_ids), dtype=bool)
    ranked: dict[int, list[int]] = {}
    train = split.train
    for user in split.held_out:
        own = train.indices[train.indptr[user] : train.indptr[user + 1]]
        seen = [matrix.item_ids[i] for i in own]
        picks = model.candidates(matrix.user_ids[user], allowed, K, exclude=seen)
        ranked[user] = [column[t] for t, _ in picks]
    return ranked


def _table(rows: list[tuple[str, Metrics, str]], out: TextIO) -> None:
    out.write(f"{'model':<18}{'P@10':>8}{'R@10':>8}{'nDCG@10':>9}{'MAP@10':>8}{'Cov@10':>8}"
              "   settings (chosen on validation)\n")
    for name, m, note in rows:
        out.write(f"{name:<18}{m.precision:>8.4f}{m.recall:>8.4f}{m.ndcg:>9.4f}{m.map:>8.4f}"
                  f"{m.coverage:>8.4f}   {note}\n")


def run_eval(interactions_path: Path, seed: int = 0, out: TextIO = sys.stdout) -> int:
    """Print the evaluation table for a TSV of plays; returns a process exit code."""
    started = time.perf_counter()
    try:
        rows = read_interactions(Path(interactions_path))
    except (OSError, InteractionsError) as exc:
        print(f"dj eval: {exc}", file=sys.stderr)
        return 2
    matrix = build_matrix(rows)
    n_users, n_items = matrix.counts.shape
    split = holdout_split(matrix.counts, seed)
    if not split.held_out:
        print(f"dj eval: no user has {MIN_ITEMS} or more items; nothing to evaluate",
              file=sys.stderr)
        return 2
    test_items = sum(len(v) for v in split.held_out.values())
    out.write(f"{interactions_path}: {n_users} users × {n_items} items, {matrix.counts.nnz} pairs;"
              f" seed {seed}: {len(split.held_out)} test users, {test_items} held-out items\n")
    out.flush()

    trials = tune(split.train, seed, n_items)
    users = list(split.held_out)
    results: list[tuple[str, Metrics, str]] = []
    ranked = rank_users(popularity_scorer(split.train), split.train, users)
    results.append(("popularity", evaluate_rankings(ranked, split.held_out, n_items), "-"))
    for weighting, name in (("raw", "ALS raw counts"), ("log", "ALS log conf."),
                            ("bm25", "ALS BM25")):
        setting = best_plain(trials[weighting])
        uf, itf = fit_als(split.train, setting, seed)
        ranked = rank_users(als_scorer(uf, itf, 0.0), split.train, users)
        results.append((name, evaluate_rankings(ranked, split.held_out, n_items),
                        f"{weighting}: {setting.describe()}"))
    served = best_served([t for w in SERVED_WEIGHTINGS for t in trials[w]])
    ranked = served_rankings(matrix, split, served, seed)
    served_metrics = evaluate_rankings(ranked, split.held_out, n_items)
    results.append(("dj (served)", served_metrics, f"{served.weighting}: {served.describe()}"))
    _table(results, out)
    met = served_metrics.ndcg >= TARGET_NDCG and served_metrics.coverage >= TARGET_COVERAGE
    out.write(f"served model: nDCG@10 {served_metrics.ndcg:.4f} (target ≥ {TARGET_NDCG}),"
              f" coverage@10 {served_metrics.coverage:.4f} (target ≥ {TARGET_COVERAGE}):"
              f" {'met' if met else 'not met'}; {time.perf_counter() - started:.0f} s\n")
    return 0


def _read_users(path: Path) -> list[str]:
    users = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        text = line.strip()
        if text and not text.startswith("#"):
            users.append(text)
    return users


def run_recommend(interactions_path: Path, users_path: Path, n: int = 10,
                  out: TextIO = sys.stdout) -> int:
    """Train the served model on a TSV and write ``user<TAB>item<TAB>rank`` for listed users.

    Items a user already has in the file are never recommended to them; a user absent from the
    file gets the cold-start (popularity) station.
    """
    try:
        rows = read_interactions(Path(interactions_path))
        users = _read_users(Path(users_path))
    except (OSError, InteractionsError) as exc:
        print(f"dj recommend: {exc}", file=sys.stderr)
        return 2
    model = StationModel.train(rows, tuned_config())
    seen: dict[str, list[str]] = {}
    for user, item, _ in rows:
        seen.setdefault(user, []).append(item)
    allowed = np.ones(len(model.item_ids), dtype=bool)
    for user in users:
        picks = model.candidates(user, allowed, n, exclude=seen.get(user, ()))
        for rank, (item, _) in enumerate(picks, start=1):
            out.write(f"{user}\t{item}\t{rank}\n")
    return 0

