"""Retraining while the station plays: a new model is trained off the event loop and swapped in;
a failure keeps the current one. A model saved by another process (``dj train``, another node)
is picked up within ``WATCH_S`` the same way."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dj.stream import Station

logger = logging.getLogger(__name__)

WATCH_S = 5.0  # how often the model file is looked at for another process's training


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def pick_up(station: Station, path: Path) -> bool:
    """Load the model file another process saved and swap it in (blocking). A file that does
    not load, or does not fit the catalog, is logged and the current model stays."""
    from dj.recommend import StationModel

    try:
        model = StationModel.load(path)
    except Exception as exc:
        logger.warning("model %s saved elsewhere does not load (%s); the current one stays",
                       path, exc)
        station.count_failure("retrain")
        return False
    station.recommender.swap(model)
    logger.info("model trained by another process picked up from %s", path)
    return True


def retrain(station: Station) -> bool:
    """Train on the histories and everything logged since, and swap the new model in while the
    sessions play on (blocking). False when there is no trainer or it failed."""
    trainer: Callable[[], Any] | None = station.trainer
    if trainer is None:
        return False
    try:
        model = trainer()
    except Exception:
        logger.exception("retraining failed; the current model stays")
        station.count_failure("retrain")
        return False
    station.recommender.swap(model)
    logger.info("recommender retrained and swapped in (version %s)",
                getattr(station.recommender, "version", "?"))
    return True


def periodic_retraining(station: Station, interval_s: float, model_path: Path | None = None):
    """An aiohttp cleanup context that retrains every ``interval_s`` (0 turns it off) and, when
    ``model_path`` is given, picks up a model another process saved there."""

    async def ctx(app):
        loop = asyncio.get_running_loop()
        seen = _stamp(model_path) if model_path is not None else None

        async def run() -> None:
            nonlocal seen
            waited = 0.0
            while True:
                await asyncio.sleep(WATCH_S if model_path is not None else interval_s)
                waited += WATCH_S if model_path is not None else interval_s
                # its own thread: training must not wait behind, or hold up, a render
                if interval_s > 0 and waited >= interval_s:
                    waited = 0.0
                    await loop.run_in_executor(None, retrain, station)
                    seen = _stamp(model_path) if model_path is not None else None
                elif model_path is not None:
                    stamp = _stamp(model_path)
                    if stamp is not None and stamp != seen:
                        seen = stamp
                        await loop.run_in_executor(None, pick_up, station, model_path)

        task = (asyncio.create_task(run()) if interval_s > 0 or model_path is not None
                else None)
        yield
        if task is not None:
            task.cancel()

    return ctx
