"""Who is waiting to hear that a listener's now-playing state changed (a player's event stream).

The station calls :meth:`NowWatch.notify` when what a listener hears changes (the ear reached a
track or a DJ line, a session was attached, taken over or released); every watcher of that
listener wakes. A watcher holds no copy of the state, only "something changed since you last
looked", so a burst of changes wakes it once and it reads the state as it is then.

Watchers live on the event loop of the request that made them; ``notify`` may be called from any
thread (a revoked line arrives from an executor) and hands over to that loop. The number of
watchers is bounded per listener and in all, so event streams cannot be opened without limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

WATCHERS_PER_LISTENER = 8  # a listener's tabs and devices
WATCHERS_TOTAL = 2048


class TooManyWatchers(Exception):
    """The listener (or the station) has as many watchers as it allows."""


class Watcher:
    """One subscriber's wake-up flag. Starts set, so the first state is sent at once."""

    def __init__(self, watch: NowWatch, listener_id: str) -> None:
        self.listener_id = listener_id
        self.stopped = False
        self._watch = watch
        self._loop = asyncio.get_running_loop()
        self._changed = asyncio.Event()
        self._changed.set()

    def _wake(self) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._changed.set()
        elif not self._loop.is_closed():  # an asyncio.Event belongs to its loop's thread
            with contextlib.suppress(RuntimeError):  # the loop closed in between
                self._loop.call_soon_threadsafe(self._changed.set)

    async def wait(self, timeout_s: float) -> bool:
        """True when something changed (or the watcher was stopped) within ``timeout_s``."""
        try:
            await asyncio.wait_for(self._changed.wait(), timeout_s)
        except TimeoutError:
            return False
        self._changed.clear()
        return True

    def stop(self) -> None:
        """Wake the subscriber for the last time (the server stops)."""
        self.stopped = True
        self._wake()

    def close(self) -> None:
        self._watch.remove(self)


class NowWatch:
    def __init__(self, per_listener: int = WATCHERS_PER_LISTENER,
                 total: int = WATCHERS_TOTAL) -> None:
        self.per_listener = per_listener
        self.total = total
        self._by_listener: dict[str, set[Watcher]] = {}
        self._lock = threading.Lock()  # notify may run on another thread
        self._count = 0

    def subscribe(self, listener_id: str) -> Watcher:
        """A watcher of ``listener_id`` (on the event loop); close it when done."""
        watcher = Watcher(self, listener_id)
        with self._lock:
            mine = self._by_listener.get(listener_id, set())
            if len(mine) >= self.per_listener:
                raise TooManyWatchers(f"at most {self.per_listener} event streams per listener")
            if self._count >= self.total:
                raise TooManyWatchers(f"the station serves at most {self.total} event streams")
            mine.add(watcher)
            self._by_listener[listener_id] = mine
            self._count += 1
        return watcher

    def remove(self, watcher: Watcher) -> None:
        with self._lock:
            mine = self._by_listener.get(watcher.listener_id)
            if mine is None or watcher not in mine:
                return
            mine.discard(watcher)
            self._count -= 1
            if not mine:  # nothing kept for a listener nobody watches
                del self._by_listener[watcher.listener_id]

    def notify(self, listener_id: str) -> None:
        """What ``listener_id`` hears changed: wake their watchers (any thread)."""
        with self._lock:
            watchers = list(self._by_listener.get(listener_id, ()))
        for watcher in watchers:
            watcher._wake()

    def watching(self, listener_id: str | None = None) -> int:
        """Watchers of one listener, or of all."""
        with self._lock:
            if listener_id is None:
                return self._count
            return len(self._by_listener.get(listener_id, ()))
