"""Events reach the ledger through one writer thread, in batches, never from the event loop.

:meth:`EventWriter.append` only queues (a deque append) and returns a future that resolves once
the event is committed: that is when the station may call it acknowledged. The thread writes
whatever is queued in one transaction. A database error (locked past ``busy_timeout_s``, a full
disk) is logged once per outage, counted, and the same batch is tried again with a growing
pause: nothing is dropped while the database is locked or slow; the queue just grows (its depth
is on ``/healthz``), and the music never waits for it.

What a crash can lose: events queued but not yet committed (normally under ``BATCH_WAIT_S``;
while the database is unavailable, everything queued since).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future

from dj.ledger.log import Event, Ledger

logger = logging.getLogger(__name__)

BATCH_WAIT_S = 0.05  # gathers events that arrive together into one transaction
MAX_BATCH = 2000
RETRY_S = (0.1, 0.25, 0.5, 1.0, 2.0)  # pauses between tries of a failing batch (last repeats)

#: Something to write: an event, or a function that makes it on the writer thread (one that
#: must read the database first, e.g. the rightsholders of a play as they stand).
Pending = Event | Callable[[], Event | None]


class EventWriter:
    def __init__(self, ledger: Ledger, on_failure: Callable[[str], None] = lambda kind: None,
                 *, busy_timeout_s: float = 2.0) -> None:
        self.ledger = ledger
        self._failure = on_failure
        self._busy_timeout_ms = int(busy_timeout_s * 1000)
        self._queue: deque[tuple[Pending, Future[bool]]] = deque()
        self._wake = threading.Condition()
        self._stopping = False
        self.written = 0
        self.errors = 0  # failed tries, each retried
        self._thread = threading.Thread(target=self._run, name="dj-ledger", daemon=True)
        self._thread.start()

    @property
    def depth(self) -> int:
        """Events queued and not yet committed."""
        return len(self._queue)

    def append(self, pending: Pending) -> Future[bool]:
        """Queue an event; the future gives True once it is committed (an event written before
        under the same id counts), False when the maker gave nothing. Thread-safe, never
        blocks."""
        future: Future[bool] = Future()
        with self._wake:
            if self._stopping:
                raise RuntimeError("the ledger writer is stopped")
            self._queue.append((pending, future))
            self._wake.notify()
        return future

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued so far is committed (blocking). False on timeout."""
        with self._wake:
            if not self._queue:
                return True
            last = self._queue[-1][1]
        try:
            last.result(timeout)
            return True
        except TimeoutError:
            return False

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop (blocking)."""
        with self._wake:
            self._stopping = True
            self._wake.notify()
        self._thread.join(timeout)
        if self._queue:
            logger.error("%d ledger events not written at shutdown", len(self._queue))

    # -- the thread ---------------------------------------------------------------------------
    def _run(self) -> None:
        self.ledger.store.query(f"PRAGMA busy_timeout={self._busy_timeout_ms}")
        while True:
            with self._wake:
                while not self._queue and not self._stopping:
                    self._wake.wait()
                if not self._queue:
                    return
            time.sleep(BATCH_WAIT_S)
            with self._wake:
                batch = [self._queue[i] for i in range(min(MAX_BATCH, len(self._queue)))]
            self._write(batch)
            with self._wake:
                for _ in batch:
                    self._queue.popleft()

    def _make(self, pending: Pending) -> Event | None:
        if isinstance(pending, Event):
            return pending
        try:
            return pending()
        except (sqlite3.Error, OSError):
            raise  # the database: the batch is tried again
        except Exception:  # a fault in the maker itself: that one event is lost, said loudly
            logger.exception("a ledger event could not be made")
            self._failure("events")
            return None

    def _write(self, batch: list[tuple[Pending, Future[bool]]]) -> None:
        tries = 0
        while True:
            try:
                events = [self._make(p) for p, _ in batch]
                self.ledger.append(e for e in events if e is not None)
                break
            except (sqlite3.Error, OSError) as exc:
                self.errors += 1
                self._failure("database")
                if tries == 0:
                    logger.error("ledger write failed, retrying (%d events held): %s",
                                 len(batch), exc)
                time.sleep(RETRY_S[min(tries, len(RETRY_S) - 1)])
                tries += 1
        if tries:
            logger.warning("ledger write went through after %d retries", tries)
        self.written += len(batch)
        for event, (_, future) in zip(events, batch, strict=True):
            future.set_result(event is not None)
