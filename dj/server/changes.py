"""Changes made by other processes reach this one: the catalog (deals, licences) and the
narrator's lines and consents are read again within ``POLL_S`` of another process committing
them (``dj ingest``, a second server on the same database, an operator's SQL).

Each package counts writes to its own tables with triggers (:func:`dj.store.change_counter`);
this polls the counters, one small read, and refreshes only what changed. Token checks need
none of this: they read the database at every request.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiohttp import web

from dj.catalog.repository import CHANGE_TOPIC as CATALOG_TOPIC
from dj.narrate.registry import CHANGE_TOPIC as NARRATE_TOPIC
from dj.server.keys import STATION

logger = logging.getLogger(__name__)

POLL_S = 0.5  # well inside the 2 s in which a change must be in force everywhere


async def watch_changes(app: web.Application):
    station = app[STATION]
    store = station.catalog.store
    refreshers: dict[str, Callable[[], object]] = {CATALOG_TOPIC: station.catalog.refresh}
    if station.narrator is not None:
        refreshers[NARRATE_TOPIC] = station.narrator.lines.refresh

    async def run() -> None:
        loop = asyncio.get_running_loop()
        seen: dict[str, int] | None = None
        while True:
            try:
                versions = await loop.run_in_executor(None, store.change_versions)
                if seen is not None:
                    for topic, refresh in refreshers.items():
                        if versions.get(topic) != seen.get(topic):
                            await loop.run_in_executor(None, refresh)
                seen = versions
            except Exception:  # the database may be busy or broken: keep serving, try again
                logger.exception("reading other processes' changes failed")
                station.count_failure("database")
            await asyncio.sleep(POLL_S)

    task = asyncio.create_task(run())
    yield
    task.cancel()
