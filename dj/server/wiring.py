"""Builds the station from a configuration: the one place that knows every part (blocking)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from dj.catalog import Catalog
from dj.config import Config
from dj.experiments import Experiments, load_all
from dj.ledger import Ledger
from dj.store import Store
from dj.stream import Station

logger = logging.getLogger(__name__)

MODEL_FILE = "station-als.npz"


def pin_blas_threads() -> None:
    """Serving processes use one BLAS thread: implicit is several times faster per call so."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1, "blas")
    except Exception:  # pragma: no cover - threadpoolctl is a dependency; never fatal
        logger.warning("could not pin BLAS threads")


def open_store(config: Config) -> Store:
    return Store(config.db_path)


def training_interactions(catalog: Catalog, ledger: Ledger | None) -> list[tuple[str, str, float]]:
    """The histories plus what the station logged, per (listener, track): every qualifying play
    counts once, a like three times, a skip takes half a play away; a dislike removes the pair,
    history included (implicit feedback is positive only, so what is not wanted is left out)."""
    rows = list(catalog.interactions())
    if ledger is None:
        return rows
    logged: dict[tuple[str, str], float] = {}
    disliked: set[tuple[str, str]] = set()
    for r in ledger.store.query(
        "SELECT listener_id, track_id, SUM(qualified) AS q,"
        " SUM(outcome = 'skipped') AS k FROM plays GROUP BY listener_id, track_id"
    ):
        logged[(r["listener_id"], r["track_id"])] = float(r["q"] or 0) - 0.5 * (r["k"] or 0)
    for r in ledger.store.query(
        "SELECT listener_id, track_id, kind, COUNT(*) AS n FROM feedback"
        " WHERE kind IN ('like', 'dislike') GROUP BY listener_id, track_id, kind"
    ):
        pair = (r["listener_id"], r["track_id"])
        if r["kind"] == "dislike":
            disliked.add(pair)
        else:
            logged[pair] = logged.get(pair, 0.0) + 3.0 * r["n"]
    rows = [r for r in rows if (r[0], r[1]) not in disliked]
    rows += [(lid, tid, w) for (lid, tid), w in logged.items()
             if w > 0 and (lid, tid) not in disliked]
    return rows


def load_or_train(
    config: Config, catalog: Catalog, *, retrain: bool = False, ledger: Ledger | None = None
):
    """The served recommender: loaded from the data dir, or trained (at first start, or when asked
    to retrain) and saved."""
    from dj.recommend import StationModel

    path: Path = config.model_dir / MODEL_FILE
    item_ids = [t.id for t in catalog.tracks()]
    if path.exists() and not retrain:
        try:
            model = StationModel.load(path)
            if set(model.item_ids) == set(item_ids):
                return model
            logger.info("catalog changed since the model was trained; retraining")
        except Exception as exc:
            logger.warning("model %s unreadable (%s); retraining", path, exc)
    interactions = training_interactions(catalog, ledger)
    item_artists = {t.id: t.artist_id for t in catalog.tracks()}
    model = StationModel.train(
        interactions, config.recommend, item_ids=item_ids, item_artists=item_artists
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    logger.info(
        "trained the station model on %d interactions, %d tracks", len(interactions), len(item_ids)
    )
    return model


def build_station(config: Config) -> Station:
    from dj.narrate import Narrator
    from dj.recommend import LiveRecommender

    pin_blas_threads()
    store = open_store(config)
    catalog = Catalog(store, config.media_dir)
    ledger = Ledger(store)
    ledger.close_orphans()  # plays a crash left open, closed at their last durable position
    experiments = Experiments(store, load_all(config.experiments_dir, config.experiments_file))
    recommender = LiveRecommender(load_or_train(config, catalog))
    narrator = None
    try:
        narrator = Narrator(store, catalog, config)
        for problem in narrator.problems:
            logger.warning("narrator: %s", problem)
    except Exception:
        logger.exception("the narrator could not start; the station plays music only")
    def retrain():
        return load_or_train(config, catalog, retrain=True, ledger=ledger)

    return Station(
        config=config,
        catalog=catalog,
        ledger=ledger,
        recommender=recommender,
        narrator=narrator,
        experiments=experiments,
        trainer=retrain,
    )
