"""Retraining while the station plays: a new model is trained off the event loop and swapped in;
a failure keeps the current one."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from dj.stream import Station

logger = logging.getLogger(__name__)


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


def periodic_retraining(station: Station, interval_s: float):
    """An aiohttp cleanup context that retrains every ``interval_s`` (0 turns it off)."""

    async def ctx(app):
        loop = asyncio.get_running_loop()

        async def run() -> None:
            while True:
                await asyncio.sleep(interval_s)
                # its own thread: training must not wait behind, or hold up, a render
                await loop.run_in_executor(None, retrain, station)

        task = asyncio.create_task(run()) if interval_s > 0 else None
        yield
        if task is not None:
            task.cancel()

    return ctx
