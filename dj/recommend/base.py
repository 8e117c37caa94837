"""What every dj recommender shares: ids, the licence mask, live feedback and a score cache.

A subclass supplies only its base scores for a listener (and its arrays for saving); ranking,
penalties for skips, the cold-start popularity prior and thread safety live here, so every
recommender obeys the same station contract.

Per-listener memory is bounded: live state and seeds for at most ``max_listeners`` listeners
(:data:`MAX_LISTENERS`, least recently used dropped first) and scores for at most ``cache_size``
listeners (one float32 per item each). :meth:`BaseRecommender.forget` drops a listener at once.
"""

from __future__ import annotations

import abc
import io
import json
import logging
import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from dj.recommend.feedback import FEEDBACK_KINDS, ArtistItems, ListenerState, adjust_scores
from dj.recommend.params import DEFAULT_RULES, FeedbackRules
from dj.recommend.ranking import top_n

logger = logging.getLogger(__name__)

FORMAT = "dj.recommend/1"
Event = tuple[str, str, str]  # listener id, track id, feedback kind
CacheKey = tuple[int, tuple[int, ...]]  # listener state version, seed items
#: Listeners whose live state and seeds are held (least recently used dropped first). A dropped
#: listener is served from the model alone (trained vector or cold start, with the seed the next
#: pick passes); their live feedback since training is lost until a swap replays
#: :class:`dj.recommend.live.LiveRecommender`'s log, or the next retrain reads it from the ledger.
MAX_LISTENERS = 10_000


def artist_index(
    item_ids: Sequence[str], item_artists: Mapping[str, str] | None
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Per-item artist index (-1 when unknown) and the artist ids it points into."""
    item_artists = item_artists or {}
    artist_ids = tuple(sorted({a for t, a in item_artists.items() if a}))
    lookup = {a: i for i, a in enumerate(artist_ids)}
    item_artist = np.fromiter(
        (lookup.get(item_artists.get(t, ""), -1) for t in item_ids), dtype=np.int32,
        count=len(item_ids),
    )
    return item_artist, artist_ids


class BaseRecommender(abc.ABC):
    """Shared station behaviour; see :class:`dj.recommend.model.StationModel` for the contract."""

    kind: ClassVar[str] = ""

    def __init__(
        self,
        item_ids: Sequence[str],
        popularity: np.ndarray,
        item_artist: np.ndarray,
        artist_ids: Sequence[str],
        rules: FeedbackRules = DEFAULT_RULES,
        cache_size: int = 128,
    ) -> None:
        self._item_ids = tuple(item_ids)
        self._item_index = {t: i for i, t in enumerate(self._item_ids)}
        self._popularity = np.asarray(popularity, dtype=np.float32)
        top = float(np.log1p(self._popularity.max())) if self._popularity.size else 0.0
        self._prior = (np.log1p(self._popularity) / top if top > 0 else
                       np.zeros_like(self._popularity)).astype(np.float32)
        self._artist_ids = tuple(artist_ids)
        self._artists = ArtistItems.build(np.asarray(item_artist), len(self._artist_ids))
        self.rules = rules
        self.cache_size = cache_size
        self.max_listeners = MAX_LISTENERS
        self._lock = threading.RLock()
        self._states: OrderedDict[str, ListenerState] = OrderedDict()  # LRU, ≤ max_listeners
        self._seeds: OrderedDict[str, tuple[int, ...]] = OrderedDict()  # LRU, ≤ max_listeners
        self._cache: OrderedDict[str, tuple[CacheKey, np.ndarray]] = OrderedDict()

    # -- ids and masks ------------------------------------------------------------------------
    @property
    def item_ids(self) -> Sequence[str]:
        return self._item_ids

    @property
    def artist_ids(self) -> Sequence[str]:
        return self._artist_ids

    def allowed_mask(self, track_ids: Collection[str]) -> np.ndarray:
        """Bool mask over the model's items; ids the model does not know are ignored."""
        mask = np.zeros(len(self._item_ids), dtype=bool)
        mask[self._indices(track_ids)] = True
        return mask

    def _indices(self, track_ids: Iterable[str]) -> np.ndarray:
        index = self._item_index
        found = [index[t] for t in track_ids if t in index]
        return np.asarray(found, dtype=np.int64)

    # -- serving ------------------------------------------------------------------------------
    def candidates(
        self,
        listener_id: str,
        allowed: np.ndarray,
        n: int = 50,
        *,
        exclude: Collection[str] = (),
        seed: Collection[str] = (),
    ) -> list[tuple[str, float]]:
        """The ``n`` best allowed tracks for a listener, best first, never an excluded one.

        ``seed`` (persona or experiment seed tracks) shapes the station of a listener the model
        was not trained on; it is ignored for listeners it knows.
        """
        scores = self._listener_scores(listener_id, seed)
        picked = top_n(scores, allowed, n, self._indices(exclude))
        ids = self._item_ids
        return [(ids[i], float(scores[i])) for i in picked]

    def warm(self, listener_id: str, seed: Collection[str] = ()) -> None:
        """Compute and cache a listener's scores now (call when their session starts), so that
        even the first pick is a masked top-n rather than a pass over every item vector."""
        self._listener_scores(listener_id, seed)

    def feedback(self, listener_id: str, track_id: str, kind: str) -> None:
        """Fold a live event into the listener's preferences; the next pick already reflects it.

        The listener's scores are recomputed here rather than at the next pick, so the pick on
        the programme's critical path stays a masked top-n. Unknown tracks are ignored.
        """
        if not self._record(listener_id, track_id, kind):
            return
        with self._lock:
            state = self._states.get(listener_id)
            if state is None:
                return  # dropped meanwhile (forgotten, or the least recently used)
            state = state.copy()
            seeds = self._seeds.get(listener_id, ())
        self._store(listener_id, state, seeds, self._scores_for(listener_id, state, seeds))

    def replay(self, events: Iterable[Event]) -> None:
        """Fold many events in without recomputing scores (used when a new model is swapped in)."""
        for listener_id, track_id, kind in events:
            self._record(listener_id, track_id, kind)

    def forget(self, listener_id: str) -> None:
        """Drop a listener's live state and cached scores (their session ended for good)."""
        with self._lock:
            self._states.pop(listener_id, None)
            self._seeds.pop(listener_id, None)
            self._cache.pop(listener_id, None)

    def _touch(self, listener_id: str) -> None:
        """Mark a listener most recently used and drop the least recent ones over the bound.

        The caller holds the lock.
        """
        for table in (self._states, self._seeds):
            if listener_id in table:
                table.move_to_end(listener_id)
            while len(table) > self.max_listeners:
                dropped, _ = table.popitem(last=False)
                self._cache.pop(dropped, None)

    def _record(self, listener_id: str, track_id: str, kind: str) -> bool:
        if kind not in FEEDBACK_KINDS:
            raise ValueError(f"unknown feedback kind {kind!r}; expected one of {FEEDBACK_KINDS}")
        item = self._item_index.get(track_id)
        if item is None:
            logger.debug("feedback for unknown track %s ignored", track_id)
            return False
        with self._lock:
            state = self._states.setdefault(listener_id, ListenerState())
            state.apply(item, self._artists.artist_of(item), kind, self.rules)
            self._cache.pop(listener_id, None)
            self._touch(listener_id)
        return True

    def _listener_scores(self, listener_id: str, seed: Collection[str]) -> np.ndarray:
        seeds = tuple(sorted(set(self._indices(seed).tolist()))) if seed else ()
        with self._lock:
            if seeds:
                self._seeds[listener_id] = seeds
            else:
                seeds = self._seeds.get(listener_id, ())
            self._touch(listener_id)
            state = self._states.get(listener_id)
            state = state.copy() if state is not None else ListenerState()
            hit = self._cache.get(listener_id)
            if hit is not None and hit[0] == (state.version, seeds):
                self._cache.move_to_end(listener_id)
                return hit[1]
        scores = self._scores_for(listener_id, state, seeds)
        self._store(listener_id, state, seeds, scores)
        return scores

    def _store(
        self, listener_id: str, state: ListenerState, seeds: tuple[int, ...], scores: np.ndarray
    ) -> None:
        with self._lock:
            current = self._states.get(listener_id)
            if (current.version if current is not None else 0) != state.version:
                return  # a newer event arrived while we computed; it will recompute
            self._cache[listener_id] = ((state.version, seeds), scores)
            self._cache.move_to_end(listener_id)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)

    def _scores_for(
        self, listener_id: str, state: ListenerState, seeds: tuple[int, ...]
    ) -> np.ndarray:
        scores, cold = self._base_scores(listener_id, state, seeds)
        scores = np.nan_to_num(np.asarray(scores, dtype=np.float32), nan=0.0, posinf=0.0,
                               neginf=0.0)
        peak = float(np.max(np.abs(scores))) if scores.size else 0.0
        if peak > 0:
            scores /= peak
        if cold:
            rules = self.rules
            fade = 1.0 + state.events / rules.cold_fade_events
            scores += (rules.cold_popularity / fade) * self._prior
            for artist in {self._artists.artist_of(i) for i in seeds}:
                scores[self._artists.items(artist)] += rules.seed_artist_bonus / fade
        adjust_scores(scores, state, self.rules, self._artists)
        scores.setflags(write=False)
        return scores

    @abc.abstractmethod
    def _base_scores(
        self, listener_id: str, state: ListenerState, seeds: tuple[int, ...]
    ) -> tuple[np.ndarray, bool]:
        """Raw scores over all items, and whether the popularity prior applies (cold listener)."""

    def _same_artist_then_popular(self, item: int, n: int) -> list[tuple[str, float]]:
        """Fallback for :meth:`similar` when a track has no learnt vector."""
        scores = self._prior.copy()
        artist = self._artists.artist_of(item)
        if artist >= 0:
            scores[self._artists.items(artist)] += 1.0
        allowed = np.ones(scores.size, dtype=bool)
        picked = top_n(scores, allowed, n, np.asarray([item]))
        return [(self._item_ids[i], float(scores[i])) for i in picked]

    # -- persistence --------------------------------------------------------------------------
    def _arrays(self) -> dict[str, np.ndarray]:
        return {"popularity": self._popularity, "item_artist": self._artists.item_artist}

    def _meta(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "kind": self.kind,
            "item_ids": list(self._item_ids),
            "artist_ids": list(self._artist_ids),
        }

    def save(self, path: Path) -> None:
        """Write one ``.npz`` file (arrays plus a JSON header, no pickle), atomically."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = json.dumps(self._meta()).encode("utf-8")
        buffer = io.BytesIO()
        np.savez(buffer, meta=np.frombuffer(meta, dtype=np.uint8), **self._arrays())
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(buffer.getbuffer())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def read_model_file(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The JSON header and arrays of a saved model; refuses files of another format."""
    with np.load(Path(path), allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(arrays.pop("meta").tobytes().decode("utf-8"))
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: not a dj recommender model (format {meta.get('format')!r})")
    return meta, arrays
