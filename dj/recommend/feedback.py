"""Per-listener live feedback: what they played, liked, skipped, and which artists they tire of.

The state is small plain dicts keyed by item and artist index, so it is cheap to copy for a
lock-free score computation and cheap to replay onto a retrained model.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from dj.recommend.params import FeedbackRules

FEEDBACK_KINDS = ("play", "complete", "skip", "like", "dislike")


@dataclass(slots=True)
class ListenerState:
    """Evidence gathered from one listener since the model was trained."""

    positive: dict[int, float] = field(default_factory=dict)  # item → play-count units
    negative: dict[int, float] = field(default_factory=dict)
    item_strikes: Counter[int] = field(default_factory=Counter)  # skips; a dislike is heavier
    disliked: set[int] = field(default_factory=set)
    artist_strikes: Counter[int] = field(default_factory=Counter)
    artist_likes: Counter[int] = field(default_factory=Counter)
    events: int = 0
    version: int = 0

    def copy(self) -> ListenerState:
        return ListenerState(
            dict(self.positive), dict(self.negative), Counter(self.item_strikes),
            set(self.disliked), Counter(self.artist_strikes), Counter(self.artist_likes),
            self.events, self.version,
        )

    def apply(self, item: int, artist: int, kind: str, rules: FeedbackRules) -> None:
        """Fold one event in. ``artist`` is -1 when the item's artist is unknown."""
        if kind not in FEEDBACK_KINDS:
            raise ValueError(f"unknown feedback kind {kind!r}; expected one of {FEEDBACK_KINDS}")
        self.events += 1
        self.version += 1
        if kind in ("play", "complete", "like"):
            self.positive[item] = self.positive.get(item, 0.0) + getattr(rules, kind)
            if kind == "like":
                # A like forgives earlier skips of the track and of its artist.
                self.item_strikes.pop(item, None)
                self.disliked.discard(item)
                self.negative.pop(item, None)
                if artist >= 0:
                    self.artist_likes[artist] += 1
                    self.artist_strikes.pop(artist, None)
            return
        weight = rules.skip if kind == "skip" else rules.dislike
        self.negative[item] = self.negative.get(item, 0.0) + weight
        self.item_strikes[item] += 1
        if kind == "dislike":
            self.disliked.add(item)
        if artist >= 0:
            self.artist_strikes[artist] += 1 if kind == "skip" else 2

    def net_counts(self) -> dict[int, float]:
        """Positive minus negative evidence per item, in play-count units."""
        out = dict(self.positive)
        for item, weight in self.negative.items():
            out[item] = out.get(item, 0.0) - weight
        return out


def adjust_scores(
    scores: np.ndarray,
    state: ListenerState,
    rules: FeedbackRules,
    artist_items: ArtistItems,
) -> None:
    """Apply a listener's penalties and bonuses in place (scores are scaled to a best of 1)."""
    for item, strikes in state.item_strikes.items():
        scores[item] -= rules.skip_penalty * strikes
    for item in state.disliked:
        scores[item] -= rules.dislike_penalty
    for artist, strikes in state.artist_strikes.items():
        if strikes >= rules.artist_strike_limit:
            scores[artist_items.items(artist)] -= rules.artist_penalty
    for artist, likes in state.artist_likes.items():
        scores[artist_items.items(artist)] += rules.liked_artist_bonus * min(likes, 3)


@dataclass(frozen=True, slots=True)
class ArtistItems:
    """Item indices grouped by artist index, for applying an artist-wide penalty in one slice."""

    item_artist: np.ndarray  # int32 per item, -1 = unknown
    order: np.ndarray
    starts: np.ndarray

    @classmethod
    def build(cls, item_artist: np.ndarray, n_artists: int) -> ArtistItems:
        item_artist = np.asarray(item_artist, dtype=np.int32)
        known = item_artist >= 0
        order = np.flatnonzero(known)[np.argsort(item_artist[known], kind="stable")]
        counts = np.bincount(item_artist[known], minlength=n_artists)
        starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return cls(item_artist, order.astype(np.int64), starts)

    def items(self, artist: int) -> np.ndarray:
        if artist < 0 or artist + 1 >= self.starts.size:
            return np.empty(0, dtype=np.int64)
        return self.order[self.starts[artist] : self.starts[artist + 1]]

    def artist_of(self, item: int) -> int:
        return int(self.item_artist[item])


