"""The model currently on air, swapped for a retrained one without a restart.

Live feedback is logged per listener and replayed onto each new model, so a retrain never makes
a station forget the skip it heard a minute ago.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Collection
from pathlib import Path

import numpy as np

from dj.recommend.base import MAX_LISTENERS, BaseRecommender, read_model_file
from dj.recommend.feedback import FEEDBACK_KINDS
from dj.recommend.model import StationModel
from dj.recommend.popularity import PopularityModel
from dj.recommend.threads import pin_blas_threads

logger = logging.getLogger(__name__)


def load_model(path: Path) -> BaseRecommender:
    """Load whichever recommender kind a model file holds."""
    meta, _ = read_model_file(path)
    kinds: dict[str, type[StationModel] | type[PopularityModel]] = {
        StationModel.kind: StationModel, PopularityModel.kind: PopularityModel,
    }
    if meta["kind"] not in kinds:
        raise ValueError(f"{path}: unknown model kind {meta['kind']!r}")
    return kinds[meta["kind"]].load(path)


class LiveRecommender:
    """Holds the serving model; ``swap`` installs a retrained one and replays live feedback.

    The log is bounded: the last ``max_events_per_listener`` events (``rules.max_logged_events``
    by default) of at most ``max_listeners`` listeners (:data:`MAX_LISTENERS` by default; the one
    who gave feedback least recently is dropped first). :meth:`forget` drops a listener at once.
    """

    def __init__(self, model: BaseRecommender, max_events_per_listener: int | None = None,
                 max_listeners: int = MAX_LISTENERS) -> None:
        pin_blas_threads()
        self._model = model
        self._lock = threading.Lock()
        self._max_events = max_events_per_listener or model.rules.max_logged_events
        self.max_listeners = max_listeners
        self._log: OrderedDict[str, deque[tuple[str, str]]] = OrderedDict()  # LRU
        self._version = 0
        self.on_latency: Callable[[float], None] | None = None  # seconds per candidates call

    @property
    def version(self) -> int:
        """Bumped by every swap: key cached ``allowed_mask`` results by it."""
        return self._version

    @property
    def model(self) -> BaseRecommender:
        return self._model

    def swap(self, model: BaseRecommender) -> None:
        """Make ``model`` the serving one, with every listener's live feedback replayed onto it.

        Feedback that arrives during the swap waits on the lock, so none is lost between models.
        """
        with self._lock:
            model.replay(
                (listener, track, kind)
                for listener, events in self._log.items()
                for track, kind in events
            )
            old, self._model = self._model, model
            self._version += 1
        logger.info("recommender swapped: %d → %d tracks, %d listeners with live feedback",
                    len(old.item_ids), len(model.item_ids), len(self._log))

    def allowed_mask(self, track_ids: Collection[str]) -> np.ndarray:
        return self._model.allowed_mask(track_ids)

    def candidates(
        self,
        listener_id: str,
        allowed: np.ndarray,
        n: int = 50,
        *,
        exclude: Collection[str] = (),
        seed: Collection[str] = (),
    ) -> list[tuple[str, float]]:
        """As :meth:`StationModel.candidates`; ``allowed`` must come from the current model.

        A mask built for a previous model (another length) is rejected with ``ValueError``:
        the caller rebuilds it with :meth:`allowed_mask` after a swap.
        """
        started = time.perf_counter()
        try:
            return self._model.candidates(listener_id, allowed, n, exclude=exclude, seed=seed)
        finally:
            if self.on_latency is not None:
                self.on_latency(time.perf_counter() - started)

    def warm(self, listener_id: str, seed: Collection[str] = ()) -> None:
        """See :meth:`BaseRecommender.warm`: call when a listener's session starts."""
        self._model.warm(listener_id, seed)

    def feedback(self, listener_id: str, track_id: str, kind: str) -> None:
        """Log the event for future swaps, then apply it to the serving model.

        Logged first and under the lock: if a swap slips in between, its replay carries the event
        to the new model, and applying it to the old one afterwards is harmless.
        """
        if kind not in FEEDBACK_KINDS:
            raise ValueError(f"unknown feedback kind {kind!r}; expected one of {FEEDBACK_KINDS}")
        with self._lock:
            model = self._model
            log = self._log.setdefault(listener_id, deque(maxlen=self._max_events))
            log.append((track_id, kind))
            self._log.move_to_end(listener_id)
            while len(self._log) > self.max_listeners:
                self._log.popitem(last=False)
        model.feedback(listener_id, track_id, kind)

    def similar(self, track_id: str, n: int = 10) -> list[tuple[str, float]]:
        return self._model.similar(track_id, n)

    def forget(self, listener_id: str) -> None:
        """Drop a listener's logged feedback and the model's live state for them (call when they
        leave for good; their plays stay in the ledger for the next retrain)."""
        with self._lock:
            self._log.pop(listener_id, None)
            self._model.forget(listener_id)
