"""The station model: implicit ALS on log-scaled play confidence, served per listener.

Scores are ``u · v_i / ‖v_i‖^debias``: popular tracks learn long item vectors, and dividing a
little of that length away spreads picks across much more of the catalog for a small loss in
accuracy (tuned on validation data, see :mod:`dj.recommend.evaluate`). A listener's vector is
solved in closed form from their plays plus live feedback — the same normal equations implicit's
``recalculate_user`` solves — so a skip or like counts at the very next pick.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from dj.config import RecommendConfig
from dj.recommend.base import BaseRecommender, artist_index, read_model_file
from dj.recommend.feedback import ListenerState
from dj.recommend.interactions import (
    BM25_FLOOR,
    Bm25Stats,
    bm25_confidence,
    build_matrix,
    log_confidence,
)
from dj.recommend.params import (
    DEFAULT_RULES,
    REFERENCE_MASS_PER_LISTENER,
    TUNED_B,
    TUNED_DEBIAS,
    TUNED_K1,
    TUNED_WEIGHTING,
    FeedbackRules,
)
from dj.recommend.ranking import top_n
from dj.recommend.threads import pin_blas_threads

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ModelParams:
    factors: int
    regularization: float
    iterations: int
    alpha: float
    debias: float
    random_state: int
    weighting: str = TUNED_WEIGHTING  # "bm25" or "log"
    k1: float = TUNED_K1
    b: float = TUNED_B


class StationModel(BaseRecommender):
    """Implicit-ALS recommender with licence masks, live feedback and cold start.

    Thread-safe: many sessions may call :meth:`candidates` and :meth:`feedback` concurrently.
    Constructing one pins BLAS to one thread for the process (serving must not oversubscribe).
    """

    kind = "als"

    def __init__(
        self,
        *,
        item_ids: Sequence[str],
        user_ids: Sequence[str],
        user_factors: np.ndarray,
        item_factors: np.ndarray,
        counts: sp.csr_matrix,
        popularity: np.ndarray,
        item_artist: np.ndarray,
        artist_ids: Sequence[str],
        params: ModelParams,
        rules: FeedbackRules = DEFAULT_RULES,
    ) -> None:
        pin_blas_threads()
        super().__init__(item_ids, popularity, item_artist, artist_ids, rules)
        self.params = params
        self._user_ids = tuple(user_ids)
        self._user_index = {u: i for i, u in enumerate(self._user_ids)}
        self._user_factors = np.ascontiguousarray(user_factors, dtype=np.float32)
        self._item_factors = np.ascontiguousarray(item_factors, dtype=np.float32)
        self._counts = counts.tocsr().astype(np.float32)
        norms = np.linalg.norm(self._item_factors, axis=1)
        self._norms = norms.astype(np.float32)
        scale = np.where(norms > 1e-12, np.maximum(norms, 1e-12) ** -params.debias, 0.0)
        # Stored factors × items: a single-thread BLAS streams this layout ~2x faster (the
        # scoring is bound by memory bandwidth at 100k tracks).
        self._scoring_t = np.ascontiguousarray(
            (self._item_factors * scale[:, None].astype(np.float32)).T)
        f = self._item_factors.shape[1]
        y = self._item_factors.astype(np.float64)
        self._gram = y.T @ y + params.regularization * np.eye(f)
        self._bm25 = Bm25Stats.of(self._counts, params.k1, params.b)

    # -- training -----------------------------------------------------------------------------
    @classmethod
    def train(
        cls,
        interactions: Iterable[tuple[str, str, float]],
        config: RecommendConfig,
        *,
        item_ids: Sequence[str] | None = None,
        item_artists: Mapping[str, str] | None = None,
        random_state: int = 0,
        debias: float | None = None,
        weighting: str | None = None,
        k1: float = TUNED_K1,
        b: float = TUNED_B,
        rules: FeedbackRules = DEFAULT_RULES,
        num_threads: int = 0,
        scale_regularization: bool = True,
    ) -> StationModel:
        """Fit ALS on ``(listener, track, plays)`` rows.

        ``item_ids`` is the whole catalog: tracks nobody has played yet stay recommendable
        through the popularity prior and same-artist similarity. Plays of tracks outside it are
        dropped. With ``scale_regularization`` the configured regularization shrinks in
        proportion when listeners' mean confidence mass is below the tuning data's
        (:data:`~dj.recommend.params.REFERENCE_MASS_PER_LISTENER`). Training may use many
        threads (``num_threads=0``: all cores); BLAS is pinned to one
        for the process (:func:`dj.recommend.threads.pin_blas_threads`).
        """
        matrix = build_matrix(interactions, item_ids=item_ids)
        params = ModelParams(
            factors=int(config.factors),
            regularization=float(config.regularization),
            iterations=int(config.iterations),
            alpha=float(config.alpha),
            debias=TUNED_DEBIAS if debias is None else float(debias),
            random_state=int(random_state),
            weighting=weighting or TUNED_WEIGHTING,
            k1=float(k1),
            b=float(b),
        )
        if params.weighting not in ("bm25", "log"):
            raise ValueError(f"unknown weighting {params.weighting!r}; expected 'bm25' or 'log'")
        counts = matrix.counts
        n_users, n_items = counts.shape
        weights = cls._confidence(counts, params) if counts.nnz else counts
        if scale_regularization and counts.nnz:
            mass = float(weights.sum()) / max(n_users, 1)
            shrink = min(1.0, mass / REFERENCE_MASS_PER_LISTENER)
            if shrink < 1.0:
                params = dataclasses.replace(
                    params, regularization=params.regularization * shrink)
                logger.info("regularization scaled by %.3f for a mean listener mass of %.0f",
                            shrink, mass)
        user_factors = np.zeros((n_users, params.factors), dtype=np.float32)
        item_factors = np.zeros((n_items, params.factors), dtype=np.float32)
        if counts.nnz:
            from implicit.cpu.als import AlternatingLeastSquares

            pin_blas_threads()
            als = AlternatingLeastSquares(
                factors=params.factors,
                regularization=params.regularization,
                alpha=1.0,  # alpha is folded into the confidence below
                iterations=params.iterations,
                random_state=params.random_state,
                num_threads=num_threads,
            )
            als.fit(weights, show_progress=False)
            user_factors = np.asarray(als.user_factors, dtype=np.float32)
            item_factors = np.asarray(als.item_factors, dtype=np.float32)
        else:
            logger.warning("no interactions: the station model serves popularity and seeds only")
        popularity = np.bincount(counts.indices, minlength=n_items).astype(np.float32)
        item_artist, artist_ids = artist_index(matrix.item_ids, item_artists)
        logger.info("trained ALS: %d listeners × %d tracks, %d plays rows, %s",
                    n_users, n_items, counts.nnz, params)
        return cls(
            item_ids=matrix.item_ids, user_ids=matrix.user_ids, user_factors=user_factors,
            item_factors=item_factors, counts=counts, popularity=popularity,
            item_artist=item_artist, artist_ids=artist_ids, params=params, rules=rules,
        )

    @staticmethod
    def _confidence(counts: sp.csr_matrix, params: ModelParams) -> sp.csr_matrix:
        if params.weighting == "log":
            return log_confidence(counts, params.alpha)
        weights = bm25_confidence(counts, params.k1, params.b)
        weights.data *= params.alpha
        return weights

    # -- scoring ------------------------------------------------------------------------------
    @property
    def user_ids(self) -> Sequence[str]:
        return self._user_ids

    def knows(self, listener_id: str) -> bool:
        """Whether the listener was in the training data (otherwise they start cold)."""
        return listener_id in self._user_index

    def _base_scores(
        self, listener_id: str, state: ListenerState, seeds: tuple[int, ...]
    ) -> tuple[np.ndarray, bool]:
        row = self._user_index.get(listener_id)
        if row is not None and state.events == 0:
            vector = self._user_factors[row]
        else:
            vector = self._solve(self._evidence(row, state, seeds))
        return vector @ self._scoring_t, row is None

    def _evidence(
        self, row: int | None, state: ListenerState, seeds: tuple[int, ...]
    ) -> dict[int, float]:
        """Net play-count evidence per item: training plays, seeds (cold only), live events."""
        counts: dict[int, float] = {}
        if row is not None:
            start, end = self._counts.indptr[row], self._counts.indptr[row + 1]
            for item, value in zip(self._counts.indices[start:end].tolist(),
                                   self._counts.data[start:end].tolist(), strict=True):
                counts[item] = value
        else:
            for item in seeds:
                counts[item] = self.rules.seed_plays
        for item, value in state.net_counts().items():
            counts[item] = counts.get(item, 0.0) + value
        return counts

    def _solve(self, counts: dict[int, float]) -> np.ndarray:
        """Closed-form implicit-ALS user vector; negative counts are confident dislikes (p=0)."""
        f = self._item_factors.shape[1]
        items = np.fromiter((i for i, v in counts.items() if v != 0), dtype=np.int64)
        if items.size == 0:
            return np.zeros(f, dtype=np.float32)
        values = np.fromiter((counts[i] for i in items.tolist()), dtype=np.float64)
        positive = values > 0
        if not positive.any():
            return np.zeros(f, dtype=np.float32)
        magnitude = np.abs(values)
        if self.params.weighting == "log":
            confidence = 1.0 + self.params.alpha * np.log1p(magnitude)
        else:
            confidence = np.empty_like(magnitude)
            alpha = self.params.alpha
            confidence[positive] = np.maximum(
                alpha * self._bm25.row(items[positive], magnitude[positive]), BM25_FLOOR)
            negative = ~positive
            if negative.any():
                # A dislike must weigh more than silence (confidence 1 at preference 0).
                confidence[negative] = 1.0 + alpha * self._bm25.row(
                    items[negative], magnitude[negative])
        y = self._item_factors[items].astype(np.float64)
        a = self._gram + (y.T * (confidence - 1.0)) @ y
        b = confidence[positive] @ y[positive]
        return scipy.linalg.solve(a, b, assume_a="pos", check_finite=False).astype(np.float32)

    def user_vector(self, listener_id: str) -> np.ndarray:
        """The vector the next pick uses (the trained one, or re-solved after feedback)."""
        row = self._user_index.get(listener_id)
        with self._lock:
            state = self._states.get(listener_id)
            state = state.copy() if state is not None else ListenerState()
            seeds = self._seeds.get(listener_id, ())
        if row is not None and state.events == 0:
            return self._user_factors[row].copy()
        return self._solve(self._evidence(row, state, seeds))

    def similar(self, track_id: str, n: int = 10) -> list[tuple[str, float]]:
        """Tracks whose item vectors point the same way (cosine), most similar first."""
        item = self._item_index.get(track_id)
        if item is None:
            raise KeyError(track_id)
        if self._norms[item] <= 1e-12:
            return self._same_artist_then_popular(item, n)
        scores = (self._item_factors @ self._item_factors[item]) / (
            np.maximum(self._norms, 1e-12) * self._norms[item]
        )
        scores[self._norms <= 1e-12] = -1.0
        allowed = np.ones(scores.size, dtype=bool)
        picked = top_n(scores, allowed, n, np.asarray([item]))
        return [(self._item_ids[i], float(scores[i])) for i in picked]

    # -- persistence --------------------------------------------------------------------------
    def _arrays(self) -> dict[str, np.ndarray]:
        return {
            **super()._arrays(),
            "user_factors": self._user_factors,
            "item_factors": self._item_factors,
            "counts_indptr": self._counts.indptr,
            "counts_indices": self._counts.indices,
            "counts_data": self._counts.data,
        }

    def _meta(self) -> dict[str, Any]:
        return {**super()._meta(), "user_ids": list(self._user_ids), "params": asdict(self.params),
                "rules": asdict(self.rules)}

    @classmethod
    def load(cls, path: Path) -> StationModel:
        meta, arrays = read_model_file(path)
        if meta["kind"] != cls.kind:
            raise ValueError(f"{path}: holds a {meta['kind']!r} model, not {cls.kind!r}")
        shape = (len(meta["user_ids"]), len(meta["item_ids"]))
        counts = sp.csr_matrix(
            (arrays["counts_data"], arrays["counts_indices"], arrays["counts_indptr"]), shape=shape
        )
        return cls(
            item_ids=meta["item_ids"], user_ids=meta["user_ids"],
            user_factors=arrays["user_factors"], item_factors=arrays["item_factors"],
            counts=counts, popularity=arrays["popularity"], item_artist=arrays["item_artist"],
            artist_ids=meta["artist_ids"], params=ModelParams(**meta["params"]),
            rules=FeedbackRules(**meta["rules"]),
        )
