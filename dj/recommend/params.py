"""The served model's tuned defaults, found by ``dj eval`` on lastfm-2k's validation split.

``RecommendConfig`` (owned by ``dj.config``) carries factors, regularization, iterations and alpha;
the values below are what ``config/default.toml`` ``[recommend]`` should hold. Settings that have no
place in the config schema (the popularity debiasing exponent, cold-start blending) live here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from dj.config import RecommendConfig

#: Validation-tuned on lastfm-2k (see ``dj.recommend.evaluate``): ALS on BM25-weighted plays
#: (implicit's ``bm25_weight`` damps heavy listeners and ubiquitous tracks) beat log confidence
#: ``1 + alpha·log1p(plays)`` there; ``alpha`` scales the BM25 confidence.
TUNED_WEIGHTING = "bm25"
TUNED_K1 = 3.0
TUNED_B = 0.8
TUNED_FACTORS = 256
TUNED_REGULARIZATION = 80.0
TUNED_ITERATIONS = 15
TUNED_ALPHA = 1.0
#: Scores use item vectors divided by ``‖v‖^debias``; popular items have long vectors, so this
#: trades a little accuracy for a much wider catalog coverage.
TUNED_DEBIAS = 0.4
#: Mean BM25 confidence mass per listener (K1=3, B=0.8) of lastfm-2k, where the regularization
#: above was tuned. ALS regularization is absolute, so on a station whose listeners have far less
#: history (a fresh demo station) the same value would flatten every listener onto popularity;
#: ``StationModel.train`` shrinks it in proportion below this mass.
REFERENCE_MASS_PER_LISTENER = 810.0


def tuned_config(base: RecommendConfig | None = None) -> RecommendConfig:
    """``base`` (or the schema defaults) with the tuned model fields."""
    return dataclasses.replace(
        base or RecommendConfig(),
        factors=TUNED_FACTORS,
        regularization=TUNED_REGULARIZATION,
        iterations=TUNED_ITERATIONS,
        alpha=TUNED_ALPHA,
    )


@dataclass(frozen=True, slots=True)
class FeedbackRules:
    """How a live event moves a listener's preferences.

    Event weights are in play-count units and go through the same log confidence as training
    plays. Penalties and bonuses are in score units: scores are scaled so the best item is 1.
    """

    play: float = 1.0
    complete: float = 1.0
    like: float = 20.0
    skip: float = 2.0  # negative evidence, in play-count units
    dislike: float = 20.0
    skip_penalty: float = 0.5  # per skip of that very item
    dislike_penalty: float = 10.0
    artist_strike_limit: int = 3  # skips (a dislike counts 2) before the artist is pushed down
    artist_penalty: float = 10.0
    liked_artist_bonus: float = 0.15
    seed_plays: float = 5.0  # a cold-start seed track counts as this many plays
    seed_artist_bonus: float = 0.2  # cold listeners: the seed tracks' artists come forward
    cold_popularity: float = 0.35  # popularity prior for listeners the model was not trained on
    cold_fade_events: float = 5.0  # the prior halves after this many events
    max_logged_events: int = 2000  # per listener, replayed onto a retrained model


DEFAULT_RULES = FeedbackRules()
