"""The popularity fallback: most-played tracks first, shaped by seeds and live feedback.

It serves when no ALS model exists yet (a fresh station) and is the baseline every evaluation
reports. It obeys the same station contract as the ALS model.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from dj.config import RecommendConfig
from dj.recommend.base import BaseRecommender, artist_index, read_model_file
from dj.recommend.feedback import ListenerState
from dj.recommend.interactions import build_matrix
from dj.recommend.params import DEFAULT_RULES, FeedbackRules

logger = logging.getLogger(__name__)


class PopularityModel(BaseRecommender):
    """Ranks by how many listeners played a track; seeds lift their artists for cold listeners."""

    kind = "popularity"

    @classmethod
    def train(
        cls,
        interactions: Iterable[tuple[str, str, float]],
        config: RecommendConfig | None = None,
        *,
        item_ids: Sequence[str] | None = None,
        item_artists: Mapping[str, str] | None = None,
        random_state: int = 0,
        rules: FeedbackRules = DEFAULT_RULES,
    ) -> PopularityModel:
        """Count distinct listeners per track (``config`` and ``random_state`` are unused)."""
        matrix = build_matrix(interactions, item_ids=item_ids)
        popularity = np.bincount(matrix.counts.indices, minlength=len(matrix.item_ids))
        item_artist, artist_ids = artist_index(matrix.item_ids, item_artists)
        return cls(matrix.item_ids, popularity.astype(np.float32), item_artist, artist_ids, rules)

    def _base_scores(
        self, listener_id: str, state: ListenerState, seeds: tuple[int, ...]
    ) -> tuple[np.ndarray, bool]:
        return self._prior.copy(), True  # every listener is a cold listener here

    def similar(self, track_id: str, n: int = 10) -> list[tuple[str, float]]:
        """Same-artist tracks by popularity, then the most popular others."""
        item = self._item_index.get(track_id)
        if item is None:
            raise KeyError(track_id)
        return self._same_artist_then_popular(item, n)

    def _meta(self) -> dict[str, Any]:
        return {**super()._meta(), "rules": asdict(self.rules)}

    @classmethod
    def load(cls, path: Path) -> PopularityModel:
        meta, arrays = read_model_file(path)
        if meta["kind"] != cls.kind:
            raise ValueError(f"{path}: holds a {meta['kind']!r} model, not {cls.kind!r}")
        return cls(meta["item_ids"], arrays["popularity"], arrays["item_artist"],
                   meta["artist_ids"], FeedbackRules(**meta["rules"]))
